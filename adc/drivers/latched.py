"""Latched lock coils: a plain DIO output the driver switches off itself after the pulse.

A DIO module with `coil_mode = "latched"` is a plain output module: a coil holds what was written,
so the driver writes 1 to start a pulse and must write 0 after `solenoid.pulse_ms`, then read the
coil back. The controller never waits (DESIGN: drivers never sleep in controller code), so the
off-write is *deferred work the driver owns*, done by whichever comes first:

- a timer on the driver's clock: a daemon `threading.Timer` when the clock is the real one
  (so the coil goes off on time even while nobody calls the driver), or, for the in-process
  driver, a SimPy process on the cabinet's own clock;
- the next call into the driver (every port call services what is due first), which makes the
  off-write deterministic where a test or a scenario owns the clock.

A coil that still reads 1 after its off-write is an alarm: the device's health counts an error and
names the coil (`last_error`), the lock reads released (its coil is on), the off-write is retried
on every later call, and the lock is not pulsed again (`DeviceFault`) until the coil reads off.
A failed off-write (device offline) is recorded the same way and retried.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from adc.drivers.base import DeviceFault, DeviceHealth, DriverError
from adc.drivers.cabinet_points import PointInfo


class LatchedOffWrites:
    """The pending off-writes of one driver's latched lock coils."""

    def __init__(
        self,
        clock: Callable[[], float],
        write_off: Callable[[PointInfo], None],
        read_coil: Callable[[PointInfo], bool],
        health_of: Callable[[str], DeviceHealth],
        *,
        real_time: bool = False,
    ) -> None:
        self.clock = clock
        self._write_off = write_off
        self._read_coil = read_coil
        self._health_of = health_of
        self.real_time = real_time
        self._due: dict[str, tuple[float, PointInfo, float]] = {}  # point → (due, info, pulse_s)
        self.stuck: set[str] = set()
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._closed = False

    def started(self, info: PointInfo, pulse_s: float) -> None:
        """A latched coil was switched on: switch it off `pulse_s` from now."""
        with self._lock:
            self._due[info.text] = (self.clock() + pulse_s, info, pulse_s)
            if self.real_time and not self._closed:
                timer = threading.Timer(pulse_s, self.service)
                timer.daemon = True
                self._timers = [t for t in self._timers if t.is_alive()] + [timer]
                timer.start()

    def check(self, info: PointInfo) -> None:
        """A lock whose coil stayed on after its pulse is not pulsed again."""
        if info.text in self.stuck:
            raise DeviceFault(
                info.ref.device,
                f"coil {info.text} is still on after its pulse (latched output): not pulsed "
                "again until it reads off",
                info.text,
            )

    def pending(self) -> bool:
        return bool(self._due)

    def service(self) -> None:
        """Switch off every coil whose pulse is over and read it back; never raises."""
        if not self._due:
            return
        with self._lock:
            now = self.clock()
            for text, (due, info, pulse_s) in sorted(self._due.items()):
                if now < due:
                    continue
                health = self._health_of(info.ref.device)
                try:
                    self._write_off(info)
                    still_on = self._read_coil(info)
                except DriverError as err:
                    health.last_error = f"coil {text}: switching it off failed ({err.message})"
                    self.stuck.add(text)
                    continue
                if still_on:
                    health.errors += 1
                    health.last_error = (
                        f"coil {text} still on after its {pulse_s * 1000:.0f} ms pulse "
                        "(latched output did not switch off)"
                    )
                    self.stuck.add(text)
                    continue
                self.stuck.discard(text)
                del self._due[text]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
