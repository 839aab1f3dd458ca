"""CU16-style RS-485 lock-board frames: encode, decode, and a streaming decoder that resynchronises.

Pure byte work, no I/O: the lock-board driver (`lockboard.py`) and the lock-board emulator
(`adc/sim/emulator_lockboard.py`) share it, and hypothesis tests hold it to round trips and to
"garbage in, only `LockboardFrameError` out".

Every frame is `STX ADDR CMD [DATA...] ETX SUM`, with STX = 0x02, ETX = 0x03 and SUM the sum of all
preceding bytes & 0xFF. ADDR is `(board & 0x0F) << 4 | lock_index`; the low nibble is 0 where no lock
is meant. The frame's length follows from CMD alone, which is what lets a receiver find frame ends in
a byte stream that a USB adapter cuts anywhere:

| CMD  | direction       | length | meaning                                                          |
|------|-----------------|--------|------------------------------------------------------------------|
| 0x30 | master → board  | 5      | status of one board                                              |
| 0x31 | master → board  | 5      | unlock (pulse) one lock; public firmware sends no answer         |
| 0x32 | master → all    | 5      | query all boards on the bus, ADDR 0xF0 (broadcast)               |
| 0x33 | master → board  | 5      | unlock (pulse) all 16 locks of one board                         |
| 0x35 | board → master  | 9      | status: `02 ADDR 35 L1-8 L9-16 S1-8 S9-16 03 SUM`                 |
| 0x36 | board → master  | 9      | all-status: a board's answer to query all, laid out as 0x35      |
| 0x37 | both            | 7      | unlock time: `02 B0 37 HI LO 03 SUM`, milliseconds, big-endian;   |
|      |                 |        | master → board sets it, the board answers with the same frame    |
| 0x38 | master → board  | 5      | read the unlock time; the board answers with a 0x37 frame        |

Sources and choices (docs/wire-protocols.md has the full account):
- Public KR-CU16 implementations send 0x31 and read nothing back: the master confirms an unlock
  by reading status (0x30) after the bolt's retract time and never resends an unlock.
- 0x36 is the all-status reply to 0x32 (sent to the broadcast address 0xF0), not "busy"; a busy
  refusal is no part of the public protocol. The all-status frame's layout is taken to be the
  status frame's (the public code names the command, not a different layout).
- 0x37 / 0x38: public code names set / read of the unlock time; the 2-byte big-endian millisecond
  value and the 0x37 answer to both are our choice (so that every CMD keeps one length).
- **Bit order.** L1-8 carries locks 1-8 (indices 0-7) with lock 1 in bit 0, L9-16 locks 9-16;
  S1-8 / S9-16 the same for inputs. Raw bits are returned; polarity is applied by the driver.
- The 48-lock CU48 family uses other, longer frames: a different protocol, not spoken here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

STX = 0x02
ETX = 0x03


BROADCAST_BOARD = 0x0F  # ADDR 0xF0: query all is sent to every board


class Cmd(IntEnum):
    STATUS = 0x30
    UNLOCK = 0x31
    QUERY_ALL = 0x32
    UNLOCK_ALL = 0x33
    STATUS_REPLY = 0x35
    ALL_STATUS_REPLY = 0x36
    UNLOCK_TIME = 0x37
    READ_UNLOCK_TIME = 0x38


STATUS_FRAMES = (Cmd.STATUS_REPLY, Cmd.ALL_STATUS_REPLY)  # frames that carry lock/input bits

FRAME_LENGTH: dict[int, int] = {
    Cmd.STATUS: 5,
    Cmd.UNLOCK: 5,
    Cmd.QUERY_ALL: 5,
    Cmd.UNLOCK_ALL: 5,
    Cmd.STATUS_REPLY: 9,
    Cmd.ALL_STATUS_REPLY: 9,
    Cmd.UNLOCK_TIME: 7,
    Cmd.READ_UNLOCK_TIME: 5,
}
MAX_FRAME_LENGTH = max(FRAME_LENGTH.values())


class LockboardFrameError(ValueError):
    """Bytes that are not a valid lock-board frame (bad start, command, end byte or checksum)."""


@dataclass(frozen=True)
class Frame:
    """One lock-board frame. `board` 0–15, `lock` 0–15 (0 where the command names no lock).

    `locks` and `inputs` are the raw 16-bit wire bits of a status or all-status reply (bit i =
    lock/input i), 0 for every other command; `ms` the unlock time of a 0x37 frame.
    """

    cmd: Cmd
    board: int = 0
    lock: int = 0
    locks: int = 0
    inputs: int = 0
    ms: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.board <= 15 or not 0 <= self.lock <= 15:
            raise ValueError(f"board and lock must be 0-15, got {self.board}, {self.lock}")
        if not 0 <= self.locks <= 0xFFFF or not 0 <= self.inputs <= 0xFFFF:
            raise ValueError("locks and inputs are 16-bit values")
        if not 0 <= self.ms <= 0xFFFF:
            raise ValueError("an unlock time is a 16-bit number of milliseconds")
        if self.cmd not in STATUS_FRAMES and (self.locks or self.inputs):
            raise ValueError(f"only a status reply carries bits, not {self.cmd.name}")
        if self.cmd is not Cmd.UNLOCK_TIME and self.ms:
            raise ValueError(f"only an unlock-time frame carries a time, not {self.cmd.name}")

    @property
    def address(self) -> int:
        return (self.board << 4) | self.lock


def checksum(data: bytes) -> int:
    """SUM: the sum of all preceding bytes, & 0xFF."""
    return sum(data) & 0xFF


def encode(frame: Frame) -> bytes:
    """Wire bytes of a frame."""
    body = bytes([STX, frame.address, frame.cmd])
    if frame.cmd is Cmd.UNLOCK_TIME:
        body += bytes([frame.ms >> 8, frame.ms & 0xFF])
    if frame.cmd in STATUS_FRAMES:
        body += bytes(
            [
                frame.locks & 0xFF,
                frame.locks >> 8,
                frame.inputs & 0xFF,
                frame.inputs >> 8,
            ]
        )
    body += bytes([ETX])
    return body + bytes([checksum(body)])


# Constructors that say what a frame is for.
def status_request(board: int) -> Frame:
    return Frame(Cmd.STATUS, board)


def unlock_request(board: int, lock: int) -> Frame:
    return Frame(Cmd.UNLOCK, board, lock)


def query_all_request() -> Frame:
    """Query all, to the broadcast address 0xF0."""
    return Frame(Cmd.QUERY_ALL, BROADCAST_BOARD)


def unlock_all_request(board: int) -> Frame:
    return Frame(Cmd.UNLOCK_ALL, board)


def status_reply(board: int, locks: int, inputs: int) -> Frame:
    return Frame(Cmd.STATUS_REPLY, board, 0, locks, inputs)


def all_status_reply(board: int, locks: int, inputs: int) -> Frame:
    return Frame(Cmd.ALL_STATUS_REPLY, board, 0, locks, inputs)


def set_unlock_time_request(board: int, ms: int) -> Frame:
    return Frame(Cmd.UNLOCK_TIME, board, ms=ms)


def unlock_time_reply(board: int, ms: int) -> Frame:
    return Frame(Cmd.UNLOCK_TIME, board, ms=ms)


def read_unlock_time_request(board: int) -> Frame:
    return Frame(Cmd.READ_UNLOCK_TIME, board)


def decode(data: bytes) -> Frame:
    """Decode exactly one frame; raises LockboardFrameError saying what is wrong."""
    if len(data) < 5:
        raise LockboardFrameError(f"frame too short ({len(data)} bytes): {data.hex(' ')}")
    if data[0] != STX:
        raise LockboardFrameError(f"frame does not start with STX 0x02: {data.hex(' ')}")
    try:
        cmd = Cmd(data[2])
    except ValueError:
        raise LockboardFrameError(f"unknown command 0x{data[2]:02x}: {data.hex(' ')}") from None
    length = FRAME_LENGTH[cmd]
    if len(data) != length:
        raise LockboardFrameError(
            f"{cmd.name} frame must be {length} bytes, got {len(data)}: {data.hex(' ')}"
        )
    if data[-2] != ETX:
        raise LockboardFrameError(f"no ETX 0x03 before the checksum: {data.hex(' ')}")
    if checksum(data[:-1]) != data[-1]:
        raise LockboardFrameError(
            f"bad checksum 0x{data[-1]:02x} (expected 0x{checksum(data[:-1]):02x}): {data.hex(' ')}"
        )
    board, lock = data[1] >> 4, data[1] & 0x0F
    if cmd in STATUS_FRAMES:
        if lock:
            raise LockboardFrameError(f"status reply with a lock nibble: {data.hex(' ')}")
        return Frame(cmd, board, 0, data[3] | data[4] << 8, data[5] | data[6] << 8)
    if cmd is Cmd.UNLOCK_TIME:
        return Frame(cmd, board, lock, ms=data[3] << 8 | data[4])
    return Frame(cmd, board, lock)


class StreamDecoder:
    """Finds frames in a byte stream delivered in arbitrary chunks.

    `feed()` bytes as they arrive, then call `next_frame()` until it returns None (needs more bytes).
    On garbage it raises `LockboardFrameError` once per run of bad bytes and skips them up to the next
    STX, so the caller counts the error and calls again: decoding resumes at the next start byte. The
    outcome (frames and errors, in order) depends only on the bytes, never on how they were chunked,
    because a candidate frame is judged only once all of its bytes are there.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def reset(self) -> None:
        """Forget buffered bytes (before a new request, so a stale tail cannot pair with a reply)."""
        self._buf.clear()
        self._skipping = False

    def next_frame(self) -> Frame | None:
        buf = self._buf
        while buf and buf[0] != STX:
            start = buf.find(STX)
            skipped = len(buf) if start < 0 else start
            bad = bytes(buf[:skipped])
            del buf[:skipped]
            if not self._skipping:
                # One error per run of garbage, however the run was chunked.
                self._skipping = True
                raise LockboardFrameError(f"bytes outside any frame: {bad[:16].hex(' ')}")
        if len(buf) < 3:
            return None
        self._skipping = False
        length = FRAME_LENGTH.get(buf[2])
        if length is None:
            bad = bytes(buf[:3])
            self._reject()
            raise LockboardFrameError(f"unknown command 0x{bad[2]:02x} after {bad[:2].hex(' ')}")
        if len(buf) < length:
            return None
        candidate = bytes(buf[:length])
        try:
            frame = decode(candidate)
        except LockboardFrameError:
            self._reject()
            raise
        del buf[:length]
        return frame

    def drain(self) -> tuple[list[Frame], list[LockboardFrameError]]:
        """Every complete frame now buffered, and the garbage met on the way (never raises)."""
        frames: list[Frame] = []
        errors: list[LockboardFrameError] = []
        while True:
            try:
                frame = self.next_frame()
            except LockboardFrameError as err:
                errors.append(err)
                continue
            if frame is None:
                return frames, errors
            frames.append(frame)

    def _reject(self) -> None:
        """Drop the start byte of a bad candidate; the bytes up to the next STX belong to the
        same error and are skipped without another."""
        del self._buf[:1]
        self._skipping = True
