"""Lock-board emulator: a VirtualCabinet's CU16 boards on one RS-485 line (a pty or a pyserial URL).

Frames are in `adc.drivers.lockboard_protocol`; the boards behave as public CU16 firmware does:
status (0x30) is answered with the board's status frame (0x35); unlock (0x31) and unlock all
(0x33) pulse and answer nothing (an unlock inside a lock's re-arm window is not carried out, and
nothing says so: only the status shows it); query all (0x32, to the broadcast address 0xF0) is
answered by every board with its all-status frame (0x36), in board-number order, one after the
other; 0x37 sets the unlock time and 0x38 reads it, both answered with a 0x37 frame.
A board that is offline (or absent) stays silent; `cabinet.bus_noise(bus)` corrupts that share of
answers (one flipped byte: a bad checksum), drawn from `cabinet.rng_for(bus)`.
Garbage and frames meant for the master (another master's answers, an echo) are ignored.
A bus whose `protocol` is not `cu16` is refused (the CU48 family speaks other frames).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from adc.drivers import lockboard_protocol as lp
from adc.sim.emulator_modbus import SerialEmulator
from adc.sim.errors import VirtualHardwareError

if TYPE_CHECKING:
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.devices import VirtualLockboard


class LockboardEmulator(SerialEmulator):
    """Serves the lock boards of one bus; `line_timing=True` paces the line at its baud rate."""

    frame_error = lp.LockboardFrameError

    def __init__(
        self,
        cabinet: VirtualCabinet,
        bus: str,
        port: str | None = None,
        *,
        line_timing: bool = False,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        protocol = getattr(cabinet.profile.buses[bus], "protocol", "cu16")
        if protocol != "cu16":
            raise ValueError(
                f"bus {bus}: the lock-board emulator speaks cu16 only, not {protocol!r}"
            )
        super().__init__(
            cabinet, bus, port, line_timing=line_timing, lock=lock, name=f"lockboard-emulator-{bus}"
        )
        self._decoder = lp.StreamDecoder()
        self.served = 0

    def _line_silent(self) -> None:
        self._decoder.reset()  # a half frame followed by silence is noise

    def _serve_frame(self, frame: lp.Frame, first_byte_at: float) -> None:
        start = self._answer_at(first_byte_at, lp.FRAME_LENGTH[frame.cmd])
        for reply in self._answers(frame):
            self._send(self._corrupt(lp.encode(reply)), start)
            self.served += 1
            start = time.monotonic()

    def _boards(self) -> list[VirtualLockboard]:
        boards = [
            d for d in self.cabinet.devices.values() if d.bus == self.bus and hasattr(d, "board")
        ]
        return sorted(boards, key=lambda d: d.board)  # type: ignore[union-attr]

    def _answers(self, frame: lp.Frame) -> list[lp.Frame]:
        with self.lock:
            if frame.cmd is lp.Cmd.QUERY_ALL:
                out = []
                for board in self._boards():
                    if board.online:
                        locks, inputs = board.status()
                        out.append(lp.all_status_reply(board.board, locks, inputs))
                return out
            device = self.cabinet.device_at(self.bus, frame.board)
            if device is None or not hasattr(device, "board") or not device.online:
                return []
            board: VirtualLockboard = device  # type: ignore[assignment]
            try:
                if frame.cmd is lp.Cmd.STATUS:
                    return [lp.status_reply(board.board, *board.status())]
                if frame.cmd is lp.Cmd.UNLOCK:
                    board.unlock(frame.lock)
                elif frame.cmd is lp.Cmd.UNLOCK_ALL:
                    board.unlock_all()
                elif frame.cmd is lp.Cmd.UNLOCK_TIME:
                    board.set_unlock_time_ms(frame.ms)
                    return [lp.unlock_time_reply(board.board, board.unlock_time_ms())]
                elif frame.cmd is lp.Cmd.READ_UNLOCK_TIME:
                    return [lp.unlock_time_reply(board.board, board.unlock_time_ms())]
            except VirtualHardwareError:
                return []  # re-arming, offline, a bad value: public boards say nothing
            return []  # unlocks are not answered; a reply frame on the line is not for us
