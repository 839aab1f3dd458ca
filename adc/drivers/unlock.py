"""`unlock_together`, the part every backend shares: the order of the pulses and the account.

A backend resolves and checks the points (see `Locks.unlock_together` in base.py), then hands its
groups to `pulse_groups` with a function that pulses one group (the locks of one device) and
raises `GroupFailed` saying exactly what of that group went out. `pulse_groups` turns a failure
into the typed error of the lock that failed when nothing was released, else `PartialUnlock`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adc.drivers.base import DriverError, LockNotReleased, PartialUnlock, RearmRefused
from adc.drivers.cabinet_points import PointInfo, Use
from adc.errors import AdcError, BadInput


class GroupFailed(Exception):
    """Internal: one group's pulses failed; `released` went out, the rest did not (of which
    `unconfirmed` were sent without a sound answer)."""

    def __init__(
        self,
        released: Sequence[str],
        not_released: Sequence[str],
        cause: AdcError,
        unconfirmed: Sequence[str] = (),
    ) -> None:
        super().__init__(cause.message)
        self.released = list(released)
        self.not_released = list(not_released)
        self.cause = cause
        self.unconfirmed = list(unconfirmed)


def unlock_groups(infos: Sequence[PointInfo], drawer_locks: set[str]) -> list[list[PointInfo]]:
    """The locks in pulse order, grouped by device: repeats dropped, pockets' own locks before
    drawer locks (each kept in the caller's order otherwise), one group per device in the order
    its first lock comes."""
    if not infos:
        raise BadInput("unlock_together needs at least one lock")
    seen: dict[str, PointInfo] = {}
    for info in infos:
        seen.setdefault(info.text, info)
    ordered = sorted(seen.values(), key=lambda i: i.text in drawer_locks)
    groups: dict[str, list[PointInfo]] = {}
    for info in ordered:
        groups.setdefault(info.ref.device, []).append(info)
    return list(groups.values())


def pulse_each(group: Sequence[PointInfo], pulse_one: Callable[[PointInfo], None]) -> None:
    """Back-to-back single pulses; GroupFailed at the first that fails. A refusal (re-arming)
    was not carried out and a lock whose feedback never showed the bolt out was not released;
    any other error leaves its lock unconfirmed."""
    released: list[str] = []
    for i, info in enumerate(group):
        try:
            pulse_one(info)
        except (RearmRefused, LockNotReleased) as err:
            raise GroupFailed(released, [g.text for g in group[i:]], err) from None
        except DriverError as err:
            rest = [g.text for g in group[i:]]
            raise GroupFailed(released, rest, err, [info.text]) from None
        released.append(info.text)


def pulse_groups(
    groups: Sequence[Sequence[PointInfo]], pulse_group: Callable[[Sequence[PointInfo]], None]
) -> None:
    """Pulse every group in order; on a failure raise the failing lock's own typed error if
    nothing was released, else PartialUnlock with the whole account."""
    released: list[str] = []
    for i, group in enumerate(groups):
        try:
            pulse_group(group)
        except GroupFailed as failed:
            released += failed.released
            later = [info.text for g in groups[i + 1 :] for info in g]
            if not released:
                raise failed.cause from None
            raise PartialUnlock(
                released, failed.not_released + later, failed.cause, failed.unconfirmed
            ) from None
        released += [info.text for info in group]


def coil_span(group: Sequence[PointInfo], points: dict[str, PointInfo]) -> tuple[int, int] | None:
    """(first, last) coil index of a DIO group that one write-multiple-coils can pulse: more than
    one lock, and every coil between them a lock too (a pulse output ignores a written 0; a light
    in between would be switched off). None otherwise."""
    if len(group) < 2:
        return None
    indexes = [info.ref.index for info in group]
    first, last = min(indexes), max(indexes)
    device, family = group[0].ref.device, group[0].ref.family
    for index in range(first, last + 1):
        info = points.get(f"{device}:{family}.{index}")
        if info is None or info.use is not Use.LOCK:
            return None
    return first, last


def account_after_failed_write(
    group: Sequence[PointInfo],
    first: int,
    cause: AdcError,
    read_back: Callable[[], Sequence[int]],
    busy_remaining_ms: float | None,
) -> tuple[list[PointInfo], GroupFailed | None]:
    """What a failed write-multiple-coils of `group` (coils from index `first`) did, from one read
    of the same coils right after it: a lock coil reads 1 for its whole pulse, so a 1 is a pulse
    that went out and a 0 one that did not. Returns the locks released and the failure to raise
    (None when every pulse went out: an earlier attempt landed and only its answer was lost).

    A device refusing a write-multiple as busy (`busy_remaining_ms` not None) is taken to have
    refused the first of our coils, in address order, that reads 0. The emulated modules, like
    real pulse-output modules, check every pulse coil of the write before starting any and
    refuse it whole (their exception names no coil); a device that carried the coils out in
    order and stopped at a re-arming one would be accounted exactly too. If the read fails
    too, nothing is confirmed and every lock of the group is unconfirmed."""
    try:
        bits = read_back()
    except (DriverError, RearmRefused):
        texts = [info.text for info in group]
        return [], GroupFailed([], texts, cause, texts)
    released = [info for info in group if bits[info.ref.index - first]]
    missing = [info for info in group if not bits[info.ref.index - first]]
    if not missing:
        return released, None
    if busy_remaining_ms is not None:
        refused = min(missing, key=lambda info: info.ref.index)
        cause = RearmRefused(refused.text, busy_remaining_ms)
    return released, GroupFailed(
        [info.text for info in released], [info.text for info in missing], cause
    )
