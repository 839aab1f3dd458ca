"""One station per cabinet on a host: an exclusive `flock` on a file named after the cabinet.

The kernel drops the lock when the process ends, however it ends (SIGKILL included), so a lock
file never outlives its station. Across hosts (a central PostgreSQL) the database record of the
running station (`supervision.station_started`) is what refuses a second one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from adc.errors import Refused

STATE_ENV = "ADC_STATION_DIR"


def state_dir() -> Path:
    """Where stations keep their lock and status files: `$ADC_STATION_DIR`, else
    `$XDG_RUNTIME_DIR/adc`, else `/tmp/adc-station-UID`."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "adc"
    return Path(f"/tmp/adc-station-{os.getuid()}")


def _safe(cabinet: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in cabinet)


def status_path(directory: Path, cabinet: str) -> Path:
    return directory / f"station-{_safe(cabinet)}.json"


class CabinetLock:
    """The station's hold on a cabinet on this host; Refused where another process has it."""

    def __init__(self, directory: Path, cabinet: str) -> None:
        self.path = directory / f"station-{_safe(cabinet)}.lock"
        self.cabinet = cabinet
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o770)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise Refused(
                f"cabinet {self.cabinet} is held by another station on this host (pid {holder}, "
                f"lock {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
