"""The formulary: items with their NDC, GTINs, DEA schedule, high-alert flag and unit weight.

`import_items` reads a CSV (columns: name, strength, form, ndc, gtins, schedule, high_alert,
unit_weight_g; GTINs separated by ';'), validates every row (GTIN check digits, the NDC a GTIN
carries matching the row's NDC, a GTIN belonging to one item only) and writes all rows or none.
Re-importing the same file changes nothing: items are matched by NDC (or by name, strength and
form when there is no NDC), and GTINs are only ever added, so stock already scanned stays known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from adc.controller.context import Actor, Controller
from adc.controller.csvfile import bad_rows, read_rows
from adc.controller.gs1 import ndc_in_gtin, normalize_gtin, normalize_ndc
from adc.controller.models import Item, ItemGtin
from adc.controller.permissions import Action
from adc.errors import AdcError, BadInput

COLUMNS = ["name", "strength", "form", "ndc", "gtins", "schedule", "high_alert", "unit_weight_g"]
_SCHEDULES = {"II": 2, "III": 3, "IV": 4, "V": 5, "CII": 2, "CIII": 3, "CIV": 4, "CV": 5}
_SCHEDULES |= {str(n): n for n in range(2, 6)}
_TRUE, _FALSE = {"yes", "y", "true", "1", "x"}, {"no", "n", "false", "0", ""}
SCHEDULE_NAMES = {2: "II", 3: "III", 4: "IV", 5: "V"}


@dataclass
class ItemRow:
    line: int
    name: str
    strength: str
    form: str
    ndc: str | None
    gtins: list[str]
    schedule: int | None
    high_alert: bool
    unit_weight_g: float | None

    def key(self) -> tuple[str, ...]:
        if self.ndc:
            return ("ndc", self.ndc)
        return ("name", self.name.lower(), self.strength.lower(), self.form.lower())


def parse_row(line: int, row: dict[str, str]) -> ItemRow:
    """One CSV row as an item, or BadInput naming every problem of the row."""
    if "__error__" in row:
        raise BadInput(row["__error__"])
    problems: list[str] = []
    for column in ("name", "strength", "form"):
        if not row[column]:
            problems.append(f"{column} is empty")
    ndc = None
    if row["ndc"]:
        try:
            ndc = normalize_ndc(row["ndc"])
        except BadInput as err:
            problems.append(err.message)
    gtins: list[str] = []
    for text in filter(None, (g.strip() for g in row["gtins"].split(";"))):
        try:
            gtin = normalize_gtin(text)
        except BadInput as err:
            problems.append(err.message)
            continue
        carried = ndc_in_gtin(gtin)
        if carried and ndc and carried != ndc:
            problems.append(f"GTIN {gtin} carries NDC {carried}, the row says {ndc}")
        gtins.append(gtin)
    if not row["gtins"].strip():
        problems.append("gtins is empty: an item needs at least one GTIN to be scanned")
    schedule = _SCHEDULES.get(row["schedule"].upper().replace(" ", ""), None)
    if row["schedule"] and schedule is None:
        problems.append(f"schedule {row['schedule']!r} is not II, III, IV or V (or empty)")
    flag = row["high_alert"].lower()
    if flag not in _TRUE | _FALSE:
        problems.append(f"high_alert {row['high_alert']!r} is not yes or no")
    weight = None
    if row["unit_weight_g"]:
        try:
            weight = float(row["unit_weight_g"])
        except ValueError:
            problems.append(f"unit_weight_g {row['unit_weight_g']!r} is not a number")
        else:
            if not 0 < weight <= 5000:
                problems.append(f"unit_weight_g {weight:g} is not between 0 and 5000 grams")
    if problems:
        raise BadInput("; ".join(problems))
    return ItemRow(
        line, row["name"], row["strength"], row["form"], ndc, gtins, schedule, flag in _TRUE, weight
    )


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    gtins_added: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)


def _validate(path: Path) -> list[ItemRow]:
    rows: list[ItemRow] = []
    problems: list[tuple[int, str]] = []
    seen_gtin: dict[str, int] = {}
    seen_key: dict[tuple[str, ...], int] = {}
    for line, raw in read_rows(path, COLUMNS):
        try:
            item = parse_row(line, raw)
        except AdcError as err:
            problems.append((line, err.message))
            continue
        clashes = [f"GTIN {g} is on line {seen_gtin[g]} too" for g in item.gtins if g in seen_gtin]
        if item.key() in seen_key:
            clashes.append(f"the same item is on line {seen_key[item.key()]} too")
        if clashes:
            problems.append((line, "; ".join(clashes)))
            continue
        seen_key[item.key()] = line
        seen_gtin.update(dict.fromkeys(item.gtins, line))
        rows.append(item)
    if problems:
        raise bad_rows(path, problems, "items")
    if not rows:
        raise BadInput(f"{path}: no items in the file")
    return rows


def _find(session: Any, row: ItemRow) -> Item | None:
    if row.ndc:
        return session.execute(select(Item).where(Item.ndc == row.ndc)).scalar()
    return session.execute(
        select(Item).where(
            Item.ndc.is_(None),
            func.lower(Item.name) == row.name.lower(),
            func.lower(Item.strength) == row.strength.lower(),
            func.lower(Item.form) == row.form.lower(),
        )
    ).scalar()


def import_items(ctl: Controller, actor: Actor, path: Path) -> ImportResult:
    """Import a formulary CSV: all rows or, if any row is bad, none (every bad row listed)."""
    ctl.check(actor, Action.FORMULARY_MANAGE)  # say "not allowed" before judging the file
    rows = _validate(path)
    result = ImportResult()
    with ctl.write(actor, Action.FORMULARY_MANAGE) as tx:
        session = tx.session
        owners = dict(
            session.execute(
                select(ItemGtin.gtin, ItemGtin.item_id).where(
                    ItemGtin.gtin.in_([g for r in rows for g in r.gtins])
                )
            ).all()
        )
        problems: list[tuple[int, str]] = []
        plans: list[tuple[ItemRow, Item | None]] = []
        for row in rows:
            item = _find(session, row)
            for gtin in row.gtins:
                owner = owners.get(gtin)
                if owner is not None and (item is None or owner != item.id):
                    other = session.get(Item, owner)
                    problems.append(
                        (row.line, f"GTIN {gtin} belongs to {other.name} {other.strength} already")
                    )
            plans.append((row, item))
        if problems:
            raise bad_rows(path, problems, "items")
        for row, item in plans:
            values = {
                "name": row.name,
                "strength": row.strength,
                "form": row.form,
                "ndc": row.ndc,
                "schedule": row.schedule,
                "high_alert": row.high_alert,
                "unit_weight_g": row.unit_weight_g,
            }
            if item is None:
                item = Item(**values)
                session.add(item)
                session.flush()
                action = "added"
            elif any(getattr(item, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(item, key, value)
                action = "updated"
            else:
                action = "unchanged"
            new = [g for g in row.gtins if owners.get(g) != item.id]
            session.add_all(ItemGtin(gtin=g, item_id=item.id or 0) for g in new)
            result.gtins_added += len(new)
            if new and action == "unchanged":
                action = "updated"
            setattr(result, action, getattr(result, action) + 1)
            if action != "unchanged":
                result.items.append(
                    {
                        "id": item.id,
                        "ndc": item.ndc,
                        "name": item.name,
                        "action": action,
                        "gtins_added": new,
                    }
                )
        if result.items:
            tx.audit(
                "formulary.import",
                {
                    "file": str(path),
                    "added": result.added,
                    "updated": result.updated,
                    "items": result.items,
                },
            )
    return result


@dataclass(frozen=True)
class ItemView:
    id: int
    name: str
    strength: str
    form: str
    ndc: str | None
    gtins: list[str]
    schedule: str | None
    high_alert: bool
    unit_weight_g: float | None


def list_items(ctl: Controller) -> list[ItemView]:
    with ctl.read() as session:
        gtins: dict[int, list[str]] = {}
        for gtin, item_id in session.execute(
            select(ItemGtin.gtin, ItemGtin.item_id).order_by(ItemGtin.gtin)
        ):
            gtins.setdefault(item_id, []).append(gtin)
        items = session.execute(select(Item).order_by(Item.name, Item.strength)).scalars()
        return [
            ItemView(
                i.id or 0,
                i.name,
                i.strength,
                i.form,
                i.ndc,
                gtins.get(i.id or 0, []),
                SCHEDULE_NAMES.get(i.schedule or 0),
                i.high_alert,
                i.unit_weight_g,
            )
            for i in items
        ]


def find_item(session: Any, ref: str) -> Item:
    """An item by id (`#12` or `12`), NDC (with or without hyphens) or GTIN."""
    text = ref.strip().removeprefix("#")
    digits = text.replace("-", "")
    if not digits.isascii():  # `isdigit()` also takes other scripts' digits: '١٢' is not item 12
        digits = ""
    conditions = []
    if digits == text and digits.isdigit() and len(text) < 8:
        conditions.append(Item.id == int(text))
    if len(digits) == 10 and digits.isdigit():
        conditions.append(Item.ndc == digits)
    if digits.isdigit() and len(digits) in (8, 12, 13, 14):
        gtin = digits.zfill(14)
        conditions.append(Item.id.in_(select(ItemGtin.item_id).where(ItemGtin.gtin == gtin)))
    item = session.execute(select(Item).where(or_(*conditions))).scalar() if conditions else None
    if item is None:
        raise BadInput(f"no item {ref!r} in the formulary (give an item id, NDC or GTIN)")
    return item
