"""Per-cabinet policy for counts, discrepancy deadlines and witnesses.

A site's policy (policy.py) holds what every cabinet shares; these values differ between a ward
cabinet and an anaesthesia cabinet, so they are set per cabinet. They live in the `setting` table
under `cabinet.<ID>.<name>` (no schema change), are validated here, and are changed only through
`set_cabinet_setting`, which audits the change like any other setting.

- `count-mode`: how a person counts a pocket of a *non-controlled* item on access: `none` (no
  count), `verify` (the expected number is shown and confirmed), `blind` (entered without seeing
  it). Controlled substances are always counted blind, whatever this says.
- `resolve-by`: the deadline of a controlled-substance discrepancy: `end-of-shift` (the next of
  `shift-ends`, in the site's time zone) or a number of hours like `12h`; unset = the site's
  `cs-discrepancy-hours`.
- `shift-ends`: the local times shifts end, e.g. `07:00,19:00`.
- `cs-refill-witness`: whether refilling or loading a controlled item needs a witness.
- `recount`: whether a differing count may be recounted once, at once, by the same person before
  the discrepancy stands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from adc.controller.models import Setting
from adc.controller.permissions import Action
from adc.errors import BadInput

if TYPE_CHECKING:
    from sqlmodel import Session

    from adc.controller.context import Actor, Controller
    from adc.controller.policy import Policy


class CountMode(StrEnum):
    NONE = "none"
    VERIFY = "verify"
    BLIND = "blind"


@dataclass(frozen=True)
class CabinetPolicy:
    count_mode: CountMode = CountMode.NONE
    resolve_by: str | None = None  # "end-of-shift", "12h"; None = the site's cs-discrepancy-hours
    shift_ends: tuple[time, ...] = (time(7, 0), time(19, 0))
    cs_refill_witness: bool = False
    recount: bool = True

    def deadline(self, opened: datetime, site: Policy) -> datetime:
        """When a controlled-substance discrepancy opened at `opened` must be resolved."""
        if self.resolve_by is None:
            return opened + timedelta(hours=site.cs_discrepancy_hours)
        if self.resolve_by != "end-of-shift":
            return opened + timedelta(hours=int(self.resolve_by.removesuffix("h")))
        zone = site.zone()
        local = opened.astimezone(zone)
        for days in range(2):
            day = local.date() + timedelta(days=days)
            for end in sorted(self.shift_ends):
                candidate = datetime.combine(day, end, tzinfo=zone)
                if candidate > local:
                    return candidate.astimezone(opened.tzinfo)
        raise AssertionError("no shift end within two days")  # shift_ends is never empty

    def as_settings(self) -> dict[str, Any]:
        return {
            "count-mode": self.count_mode.value,
            "resolve-by": self.resolve_by or "site default",
            "shift-ends": ",".join(t.strftime("%H:%M") for t in self.shift_ends),
            "cs-refill-witness": self.cs_refill_witness,
            "recount": self.recount,
        }


def cabinet_setting_names() -> list[str]:
    return [f.name.replace("_", "-") for f in fields(CabinetPolicy)]


def _bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise BadInput(f"setting {name} takes true or false, got {raw!r}")


def parse_cabinet_setting(name: str, raw: str) -> tuple[str, Any]:
    """Validate one cabinet setting given as text: (field name, typed value) or BadInput."""
    key = name.replace("-", "_")
    if key not in {f.name for f in fields(CabinetPolicy)}:
        raise BadInput(
            f"unknown cabinet setting {name!r}; known: {', '.join(cabinet_setting_names())}"
        )
    text = raw.strip()
    if key == "count_mode":
        try:
            return key, CountMode(text.lower())
        except ValueError:
            raise BadInput(f"count-mode is one of none, verify, blind; got {raw!r}") from None
    if key == "resolve_by":
        if text.lower() in ("", "default", "site default"):
            return key, None
        if text.lower() in ("end-of-shift", "shift"):
            return key, "end-of-shift"
        match = re.fullmatch(r"(\d{1,3})\s*h?", text.lower())
        if not match or not 1 <= int(match.group(1)) <= 24 * 14:
            raise BadInput(
                f"resolve-by is end-of-shift or a number of hours from 1h to 336h, got {raw!r}"
            )
        return key, f"{int(match.group(1))}h"
    if key == "shift_ends":
        ends = []
        for part in (p.strip() for p in text.split(",")):
            match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", part)
            if not match:
                raise BadInput(f"shift-ends takes local times like 07:00,19:00; got {raw!r}")
            ends.append(time(int(match.group(1)), int(match.group(2))))
        return key, tuple(sorted(set(ends)))
    return key, _bool(name, text)


def _prefix(cabinet_id: str) -> str:
    return f"cabinet.{cabinet_id}."


def cabinet_policy(session: Session, cabinet_id: str) -> CabinetPolicy:
    """The policy in force for one cabinet (defaults for what was never set)."""
    rows = session.execute(
        select(Setting.key, Setting.value).where(Setting.key.startswith(_prefix(cabinet_id)))
    ).all()
    return policy_from_rows(cabinet_id, [(key, raw) for key, raw in rows])


def settings_prefix(cabinet_id: str) -> str:
    """The setting keys of one cabinet's policy start with this."""
    return _prefix(cabinet_id)


def policy_from_rows(cabinet_id: str, rows: list[tuple[str, str]]) -> CabinetPolicy:
    """The cabinet's policy from its (key, value) setting rows, however they were read."""
    values = {}
    for key, raw in rows:
        name, value = parse_cabinet_setting(key.removeprefix(_prefix(cabinet_id)), raw)
        values[name] = value
    return replace(CabinetPolicy(), **values)


def read_cabinet_policy(ctl: Controller, cabinet_id: str) -> CabinetPolicy:
    from adc.controller.cabinets import get_cabinet

    with ctl.read() as session:
        get_cabinet(session, cabinet_id)
        return cabinet_policy(session, cabinet_id)


def set_cabinet_setting(
    ctl: Controller, actor: Actor, cabinet_id: str, name: str, value: str
) -> CabinetPolicy:
    """Set one value of a cabinet's policy (an admin's action, audited); returns the new policy."""
    from adc.controller.cabinets import get_cabinet

    field, _typed = parse_cabinet_setting(name, value)
    stored_name = field.replace("_", "-")
    with ctl.write(actor, Action.SETTINGS_MANAGE) as tx:
        get_cabinet(tx.session, cabinet_id)
        key = _prefix(cabinet_id) + stored_name
        row = tx.session.get(Setting, key)
        before = row.value if row else None
        if row is None:
            tx.session.add(Setting(key=key, value=value.strip()))
        else:
            row.value = value.strip()
        tx.audit(
            "settings.cabinet_set",
            {"cabinet": cabinet_id, "key": stored_name, "before": before, "after": value.strip()},
        )
        tx.session.flush()
        return cabinet_policy(tx.session, cabinet_id)
