"""The serial side of the emulators: a pseudo-terminal pair or any pyserial URL, with line timing.

A pty delivers bytes at once whatever baud rate the client sets, so an emulator that must show real
line timing paces its bytes itself: it waits as long as the request took on the wire plus a frame
gap (3.5 characters) before answering, then writes its answer one character time per byte. Without
timing it answers as fast as it can (what tests of behaviour want).
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import tty
from dataclasses import dataclass
from typing import Protocol


class Line(Protocol):
    """One end of a serial line, as the emulator sees it."""

    name: str  # where a client connects: a pty path or the URL

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class PtyLine:
    """A new pseudo-terminal pair: the emulator holds the master, clients open `name` (the slave).

    The slave is put in raw mode at once (no echo, no newline translation) and kept open by the
    emulator, so reads of the master do not fail while no client is attached.
    """

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.name = os.ttyname(self._slave)
        os.set_blocking(self._master, False)

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: the other side went away
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
                continue
            view = view[written:]

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SerialUrlLine:
    """A real port or any pyserial URL (`socket://`, `rfc2217://`, ...), opened with
    `serial.serial_for_url` like the drivers do."""

    def __init__(self, url: str, baudrate: int, bytesize: int, parity: str, stopbits: int) -> None:
        import serial

        self.name = url
        self._port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=0,
        )

    def read(self, timeout: float) -> bytes:
        self._port.timeout = timeout
        first = self._port.read(1)
        if not first:
            return b""
        return first + self._port.read(self._port.in_waiting)

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def close(self) -> None:
        self._port.close()


@dataclass(frozen=True)
class LineTiming:
    """Character time and frame gap of a serial line (`None` timing = as fast as possible)."""

    baudrate: int
    bits_per_char: int = 10  # start + 8 data + stop (8N1); parity and a second stop bit add one

    @classmethod
    def for_bus(cls, baudrate: int, bytesize: int, parity: str, stopbits: int) -> LineTiming:
        return cls(baudrate, 1 + bytesize + (parity != "N") + stopbits)

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def gap_s(self) -> float:
        """3.5 character times, fixed 1.75 ms above 19200 baud."""
        return 1.75e-3 if self.baudrate > 19200 else 3.5 * self.char_s


def serial_settings(bus: object) -> tuple[int, int, str, int]:
    """(baudrate, bytesize, parity, stopbits) of a profile bus; 19200 8N1 for a TCP bus served on
    a serial line."""
    return (
        getattr(bus, "baudrate", 19200),
        getattr(bus, "bytesize", 8),
        getattr(bus, "parity", "N"),
        getattr(bus, "stopbits", 1),
    )


def sleep_until(deadline: float) -> None:
    """Sleep to a monotonic deadline (short sleeps: a pty has no clock of its own)."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def paced_write(line: Line, data: bytes, timing: LineTiming | None, start: float) -> None:
    """Write `data` as a line at `timing` would deliver it, its first byte due at `start`."""
    if timing is None:
        line.write(data)
        return
    char = timing.char_s
    # Whole bytes as their last bit arrives; two at a time keeps the syscall count sane at 115200.
    step = 1 if timing.baudrate <= 38400 else 2
    for i in range(0, len(data), step):
        sleep_until(start + (i + step) * char)
        line.write(data[i : i + step])
