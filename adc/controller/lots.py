"""Lot numbers and recalls: how two lots compare, and which stock a recall covers.

- Lots compare the way GS1 and recall notices do: case and surrounding whitespace do not count
  (`lot_key` in Python, `sql_lot_key` in SQL; they agree because lots are ASCII: scans are checked
  against GS1's character set by `gs1.check_lot`, recalls by `check_ascii`).
- A recall names a GTIN and a lot, but what is recalled is the product's lot: it covers stock of
  that lot under the GTIN it names, under any GTIN of the item that GTIN belongs to, and under any
  GTIN of an item with the NDC that GTIN carries (indicator + '03' + NDC10 + check). It is resolved
  when it is consulted, through the item's GTIN table, never copied: a GTIN added to an item after
  the recall is covered too. A recall of a GTIN the formulary does not know matches that GTIN.
- `recall_covers` is the one SQL condition every reader uses (the restock check, the blocks on
  removal, the pull list, the pockets blocked when a recall is entered). Its first test is on the
  lot key, which the index `ix_recall_lot_key` (schema step 4) serves, so the hot path probes the
  recall table by index whatever its size.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, literal_column, or_
from sqlalchemy.orm import aliased

from adc.controller.models import Item, ItemGtin, Recall
from adc.errors import BadInput


def index_recall_lot_key(conn: Connection) -> None:
    """Schema step 4: recalls indexed by lot key (the expression `sql_lot_key` writes, which
    SQLite and PostgreSQL both match to the index), so every scan, removal and block check finds
    the recalls of its lot without reading the whole recall table."""
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_recall_lot_key ON recall (upper(trim(lot)))"
    )


def lot_key(lot: str) -> str:
    """The lot as recalls and stock compare it: case and surrounding whitespace ignored."""
    return lot.strip().upper()


def sql_lot_key(column: Any) -> ColumnElement[str]:
    """`lot_key` in SQL (the same expression as the index on recall lots)."""
    return func.upper(func.trim(column))


def same_lot(a: Any, b: Any) -> ColumnElement[bool]:
    return sql_lot_key(a) == sql_lot_key(b)


def check_ascii(field: str, text: str) -> str:
    """GTINs, NDCs and lots are ASCII: `str.isdigit` and `\\d` also accept Arabic-Indic or
    fullwidth digits, which no barcode carries. BadInput names the field."""
    if not text.isascii():
        raise BadInput(f"{field} {text!r} must be ASCII (digits 0-9, letters A-Z)")
    return text


# GS1 "CSET 82", the characters of AI 10: a recall lot outside it could never match a scan.
_CSET82 = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+""")


def check_recall_lot(lot: str, max_len: int) -> str:
    """The lot of a recall notice, stripped; BadInput naming the lot if no scan could carry it."""
    lot = check_ascii("lot", lot.strip())
    if not lot:
        raise BadInput("lot is empty")
    if len(lot) > max_len:
        raise BadInput(f"lot {lot!r} is not a GS1 lot (at most {max_len} characters)")
    if not _CSET82.fullmatch(lot):
        raise BadInput(f"lot {lot!r} has characters outside the GS1 character set")
    return lot


def _ndc_of(gtin: Any) -> tuple[ColumnElement[bool], ColumnElement[str]]:
    """SQL: whether a GTIN-14 carries an NDC, and the NDC (see `gs1.ndc_in_gtin`)."""

    def at(start: int, length: int) -> ColumnElement[str]:
        return func.substr(gtin, literal_column(str(start)), literal_column(str(length)))

    return at(2, 2) == literal_column("'03'"), at(4, 10)


def recall_covers(gtin: Any, item_id: Any, lot: Any, recall: Any = None) -> ColumnElement[bool]:
    """SQL: the recall row covers stock of `lot` scanned as `gtin` for item `item_id` (columns
    or bound parameters). `recall` is the Recall table or an alias of it. The EXISTS below are
    correlated explicitly: the stock lot's columns may come from two levels up (a recall probed
    from inside an EXISTS over the pocket's lots), where automatic correlation does not reach."""
    r = recall if recall is not None else Recall.__table__
    known = aliased(ItemGtin)
    sibling = aliased(ItemGtin)
    item = aliased(Item)
    carries, ndc = _ndc_of(r.c.gtin)
    sibling_carries, sibling_ndc = _ndc_of(sibling.gtin)
    return and_(
        sql_lot_key(r.c.lot) == sql_lot_key(lot),
        or_(
            r.c.gtin == gtin,
            exists()
            .where(known.gtin == r.c.gtin, known.item_id == item_id)
            .correlate_except(known),
            and_(
                carries,
                or_(
                    exists().where(item.id == item_id, item.ndc == ndc).correlate_except(item),
                    exists()
                    .where(sibling.item_id == item_id, sibling_carries, sibling_ndc == ndc)
                    .correlate_except(sibling),
                ),
            ),
        ),
    )
