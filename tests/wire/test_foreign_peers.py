"""Our drivers against peers nobody here wrote: a scripted CU16-like board on a pty that speaks
the public protocol (it answers status, 0x30, and never answers an unlock, 0x31).

What the lock-board driver must do with such a board: send an unlock once and never again, and
confirm it by the lock's status after the bolt's retract time (after setting the board's unlock time, 0x37, from the profile's
`pulse_ms` and reading it back, 0x38); a lock whose status never shows
the bolt out is not released (LockNotReleased from `pulse`, PartialUnlock from
`unlock_together`), and silence to the unlock is no failure by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adc.drivers import lockboard_protocol as lp
from adc.drivers.base import DeviceOffline, LockNotReleased, PartialUnlock
from adc.drivers.registry import open_backend
from adc.profiles import load_profile
from adc.sim.emulator_line import PtyLine

PROFILE = Path(__file__).resolve().parents[2] / "hardware-profiles" / "rs485-2bus.toml"
RETRACT_S = 0.04  # the scripted bolt retracts this long after the unlock arrives
PULSE_S = 0.5  # rs485-2bus: pulse_ms 500


@dataclass
class ScriptedBoard:
    """CU16-like boards on one line, as public firmware behaves: status (0x30) answered with
    the 9-byte 0x35 frame (1 = locked, the profile's default polarity), unlock (0x31) pulses
    the lock and answers nothing. `jammed` locks never retract; `silent` answers nothing."""

    line: PtyLine = field(default_factory=PtyLine)
    jammed: set[tuple[int, int]] = field(default_factory=set)
    silent: bool = False
    frames: list[lp.Frame] = field(default_factory=list)
    unlock_ms: dict[int, int] = field(default_factory=lambda: {0: 300, 1: 300})
    _pulsed: dict[tuple[int, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def unlocks(self) -> list[tuple[int, int]]:
        return [(f.board, f.lock) for f in self.frames if f.cmd is lp.Cmd.UNLOCK]

    def _locks(self, board: int) -> int:
        now, bits = time.monotonic(), 0
        for lock in range(16):
            start = self._pulsed.get((board, lock))
            out = (
                start is not None
                and (board, lock) not in self.jammed
                and start + RETRACT_S <= now < start + PULSE_S
            )
            bits |= (not out) << lock
        return bits

    def serve(self) -> None:
        decoder = lp.StreamDecoder()
        while not self._stop.is_set():
            data = self.line.read(0.01)
            if not data:
                continue
            decoder.feed(data)
            frames, _ = decoder.drain()
            for frame in frames:
                self.frames.append(frame)
                if frame.cmd is lp.Cmd.UNLOCK:
                    self._pulsed[(frame.board, frame.lock)] = time.monotonic()
                    continue  # public firmware does not answer an unlock
                if self.silent or frame.board not in (0, 1):
                    continue
                if frame.cmd is lp.Cmd.STATUS:
                    reply = lp.status_reply(frame.board, self._locks(frame.board), 0xFFFF)
                elif frame.cmd is lp.Cmd.UNLOCK_TIME:
                    self.unlock_ms[frame.board] = frame.ms
                    reply = lp.unlock_time_reply(frame.board, frame.ms)
                elif frame.cmd is lp.Cmd.READ_UNLOCK_TIME:
                    reply = lp.unlock_time_reply(frame.board, self.unlock_ms[frame.board])
                else:
                    continue
                self.line.write(lp.encode(reply))

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def board() -> Iterator[ScriptedBoard]:
    scripted = ScriptedBoard()
    thread = threading.Thread(target=scripted.serve, daemon=True)
    thread.start()
    yield scripted
    scripted.close()
    thread.join(2)
    scripted.line.close()


def _driver(board: ScriptedBoard):  # type: ignore[no-untyped-def]
    return open_backend(f"lockboard://{board.line.name}", load_profile(PROFILE), timeout_s=0.05)


def test_an_unanswered_unlock_is_sent_once_and_confirmed_by_status(board: ScriptedBoard) -> None:
    driver = _driver(board)
    try:
        driver.pulse("lb0:lock.2")
        assert board.unlocks() == [(0, 2)], "the unlock was repeated"
        # before its first unlock the board's unlock time was set from pulse_ms and read back
        kinds = [f.cmd for f in board.frames]
        assert kinds[:3] == [lp.Cmd.UNLOCK_TIME, lp.Cmd.READ_UNLOCK_TIME, lp.Cmd.UNLOCK]
        assert board.unlock_ms[0] == 500
        after = board.frames[board.frames.index(lp.unlock_request(0, 2)) + 1 :]
        assert after and all(f.cmd is lp.Cmd.STATUS for f in after)
        assert not driver.lock_engaged("lb0:lock.2")
        assert driver.health()["lb0"].online
    finally:
        driver.close()


def test_a_lock_whose_bolt_never_shows_out_is_not_released_and_not_repulsed(
    board: ScriptedBoard,
) -> None:
    board.jammed.add((0, 2))
    driver = _driver(board)
    try:
        with pytest.raises(LockNotReleased) as err:
            driver.pulse("lb0:lock.2")
        assert err.value.point == "lb0:lock.2" and err.value.device == "lb0"
        assert board.unlocks() == [(0, 2)], "a lock that did not release was pulsed again"
    finally:
        driver.close()


def test_unlock_together_reports_the_jammed_lock_not_released(board: ScriptedBoard) -> None:
    board.jammed.add((0, 1))  # drawer D2's lock; lb0:lock.4 is a lid inside it
    driver = _driver(board)
    try:
        with pytest.raises(PartialUnlock) as err:
            driver.unlock_together(["lb0:lock.1", "lb0:lock.4"])
        assert err.value.released == ("lb0:lock.4",)
        assert err.value.not_released == ("lb0:lock.1",)
        assert err.value.unconfirmed == ()
        assert isinstance(err.value.cause, LockNotReleased)
        assert board.unlocks() == [(0, 4), (0, 1)], "one unlock per lock, pocket first"
    finally:
        driver.close()


def test_a_silent_board_gets_one_unlock_and_reads_retried(board: ScriptedBoard) -> None:
    driver = _driver(board)
    try:
        driver.pulse("lb0:lock.3")  # it answers now (and its unlock time is set)
        board.silent = True
        with pytest.raises(DeviceOffline) as err:
            driver.pulse("lb0:lock.2")
        assert err.value.point == "lb0:lock.2"
        assert board.unlocks() == [(0, 3), (0, 2)]
        after = board.frames[board.frames.index(lp.unlock_request(0, 2)) + 1 :]
        assert len(after) == 3 and all(f.cmd is lp.Cmd.STATUS for f in after), (
            "the status read after the unlock is retried (1 + 2 retries), the unlock never"
        )
    finally:
        driver.close()


def test_a_board_that_keeps_another_unlock_time_is_a_named_fault(board: ScriptedBoard) -> None:
    from adc.drivers.base import DeviceFault

    original = board.serve

    def stubborn() -> None:  # acknowledges 0x37 but keeps its own time
        board.unlock_ms = _Fixed({0: 300, 1: 300})  # type: ignore[assignment]
        original()

    board.serve = stubborn  # type: ignore[method-assign]
    thread = threading.Thread(target=board.serve, daemon=True)
    board._stop.set()  # stop the fixture's server, serve with the stubborn one
    time.sleep(0.05)
    board._stop.clear()
    thread.start()
    driver = _driver(board)
    try:
        with pytest.raises(
            DeviceFault, match="unlock time of 300 ms; the profile's pulse_ms is 500"
        ):
            driver.pulse("lb0:lock.2")
        assert board.unlocks() == [], "an unlock went out to a board with the wrong pulse time"
    finally:
        driver.close()
        board._stop.set()
        thread.join(2)


class _Fixed(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: object, value: object) -> None:
        pass


def test_a_cu48_bus_is_recognised_and_refused_by_name() -> None:
    from adc.drivers.base import BackendUnavailable
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.emulator_lockboard import LockboardEmulator

    p = load_profile(PROFILE)
    locks = p.buses["locks"].model_copy(update={"protocol": "cu48"})
    p = p.model_copy(update={"buses": {**p.buses, "locks": locks}})
    with pytest.raises(BackendUnavailable, match="protocol 'cu48' is not implemented"):
        open_backend("profile:", p, ports={"locks": "loop://", "field": "loop://"})
    with pytest.raises(BackendUnavailable, match="cu48"):
        open_backend("lockboard://loop://", p)
    with pytest.raises(ValueError, match="cu16 only"):
        LockboardEmulator(VirtualCabinet(p), "locks")
