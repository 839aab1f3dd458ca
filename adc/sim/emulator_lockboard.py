"""Lock-board emulator: a VirtualCabinet's CU16 boards on one RS-485 line (a pty or a pyserial URL).

Frames and the answers chosen where boards disagree are in `adc.drivers.lockboard_protocol`:
status (0x30) and unlock (0x31) are answered with the board's status frame, an unlock inside the
re-arm window with busy (0x36); unlock all (0x33) pulses every lock not re-arming and answers with
the status; query all (0x32) is answered by every board in board-number order, one after the other.
A board that is offline (or absent) stays silent; `cabinet.bus_noise(bus)` corrupts that share of
answers (one flipped byte: a bad checksum), drawn from `cabinet.rng_for(bus)`.
Garbage and frames meant for the master (another master's answers, an echo) are ignored.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from adc.drivers import lockboard_protocol as lp
from adc.sim.emulator_modbus import SerialEmulator
from adc.sim.errors import DeviceBusy, VirtualHardwareError

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
                        out.append(lp.status_reply(board.board, locks, inputs))
                return out
            if frame.cmd not in (lp.Cmd.STATUS, lp.Cmd.UNLOCK, lp.Cmd.UNLOCK_ALL):
                return []  # a reply frame on the line is not for us
            device = self.cabinet.device_at(self.bus, frame.board)
            if device is None or not hasattr(device, "board") or not device.online:
                return []
            board: VirtualLockboard = device  # type: ignore[assignment]
            try:
                if frame.cmd is lp.Cmd.UNLOCK:
                    board.unlock(frame.lock)
                elif frame.cmd is lp.Cmd.UNLOCK_ALL:
                    board.unlock_all()
                locks, inputs = board.status()
            except DeviceBusy:
                return [lp.busy_reply(board.board, frame.lock)]
            except VirtualHardwareError:
                return []  # offline (or a fault with no wire form): silence
            return [lp.status_reply(board.board, locks, inputs)]
