"""Cold-chain limits: the range a temperature-watched pocket must stay in, and for how long it may
leave it before its stock is quarantined.

Every pocket with a temperature point (a fridge) is watched: 2–8 °C by default (the range of
refrigerated medicines in the labelling of most products) with an allowed excursion of
`DEFAULT_EXCURSION_MIN` minutes. A pocket's own limits are a setting,
`cold-chain.<CABINET>.<POCKET>` = `MIN:MAX:MINUTES` in the `setting` table (no schema change),
set by a pharmacist with `adc quarantine limits --set` (audited as `settings.set`), because the
range is the product's, a clinical judgement. The rule itself lives in `supervision.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from adc.controller.context import Actor, Controller
from adc.controller.models import Pocket, Setting
from adc.controller.notifications import PHARMACIST_ACTION, require_pharmacist
from adc.controller.stock import find_pocket
from adc.errors import BadInput, Refused

DEFAULT_MIN_C = 2.0
DEFAULT_MAX_C = 8.0
DEFAULT_EXCURSION_MIN = 30.0
PREFIX = "cold-chain."


@dataclass(frozen=True)
class Limits:
    min_c: float = DEFAULT_MIN_C
    max_c: float = DEFAULT_MAX_C
    excursion_s: float = DEFAULT_EXCURSION_MIN * 60.0

    def text(self) -> str:
        return f"{self.min_c:g}:{self.max_c:g}:{self.excursion_s / 60:g}"

    def describe(self) -> str:
        return f"{self.min_c:g}–{self.max_c:g} °C, excursion allowed {self.excursion_s / 60:g} min"


def parse_limits(raw: str) -> Limits:
    """`MIN:MAX:MINUTES` (e.g. `2:8:30`); BadInput naming what is wrong."""
    parts = raw.strip().split(":")
    if len(parts) != 3:
        raise BadInput(f"cold-chain limits are MIN:MAX:MINUTES (e.g. 2:8:30), got {raw!r}")
    try:
        low, high, minutes = (float(p) for p in parts)
    except ValueError:
        raise BadInput(f"cold-chain limits take numbers (MIN:MAX:MINUTES), got {raw!r}") from None
    if not -40 <= low < high <= 40:
        raise BadInput(f"cold-chain range must have -40 <= MIN < MAX <= 40 °C, got {raw!r}")
    if not 0 <= minutes <= 24 * 60:
        raise BadInput(f"cold-chain excursion must be 0 to 1440 minutes, got {raw!r}")
    return Limits(low, high, minutes * 60.0)


def _key(cabinet: str, pocket: str) -> str:
    return f"{PREFIX}{cabinet}.{pocket}"


def limits_of(session: Session, cabinet: str) -> dict[str, Limits]:
    """Limits of every temperature-watched pocket of the cabinet (defaults where none is set)."""
    watched = session.execute(
        select(Pocket.code).where(
            Pocket.cabinet_id == cabinet,
            Pocket.temperature_point.is_not(None),  # type: ignore[union-attr]
        )
    ).scalars()
    stored = dict(
        session.execute(
            select(Setting.key, Setting.value).where(Setting.key.startswith(f"{PREFIX}{cabinet}."))  # type: ignore[attr-defined]
        ).all()
    )
    out = {}
    for code in watched:
        raw = stored.get(_key(cabinet, code))
        out[code] = parse_limits(raw) if raw else Limits()
    return out


def set_limits(ctl: Controller, actor: Actor, cabinet: str, pocket: str, raw: str) -> Limits:
    """A pocket's own cold-chain limits (a pharmacist's decision; audited, refusals audited)."""
    limits = parse_limits(raw)
    require_pharmacist(ctl, actor, "set cold-chain limits", {"cabinet": cabinet, "pocket": pocket})
    with ctl.write(actor, PHARMACIST_ACTION) as tx:
        row = find_pocket(tx.session, cabinet, pocket)
        if row.temperature_point is None:
            raise Refused(f"pocket {pocket} of cabinet {cabinet} has no temperature point")
        key = _key(cabinet, row.code)
        if len(key) > 64:
            raise BadInput(f"cabinet and pocket names too long for a setting key: {key!r}")
        setting = tx.session.get(Setting, key)
        before = setting.value if setting else None
        if setting is None:
            tx.session.add(Setting(key=key, value=limits.text()))
        else:
            setting.value = limits.text()
            tx.session.add(setting)
        tx.audit("settings.set", {"key": key, "before": before, "after": limits.text()})
    return limits
