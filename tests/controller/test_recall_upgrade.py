"""Schema step 4 (recalls indexed by lot key) on a database made before it: `adc init` upgrades
it, recalls entered before the upgrade match by lot key, and the hot path probes the index."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from adc.controller import db as dbmod
from adc.controller import inventory, recalls, rows
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.gs1 import parse_scan
from adc.controller.models import Recall
from adc.errors import Refused
from tests.controller.site import CABINET, HEPARIN, START, build_site, hri

HEPARIN_2 = "50363323047011"


def test_a_database_from_before_step_4_upgrades_and_its_recalls_match_by_key(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Today's code writes this database's rows, so it has every later feature's tables (each of
    # those steps is idempotent) but not step 4; recorded as version 3, `adc init` runs step 4 on.
    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in dbmod.MIGRATIONS if m.version != 4])
    site = build_site(db_url)
    site.assign("D1-P1", HEPARIN)
    inventory.refill(
        site.ctl,
        site.tech,
        CABINET,
        "D1-P1",
        parse_scan(hri(HEPARIN_2, date(2028, 1, 31), "X9")),
        3,
    )
    with site.ctl.db.write() as session:  # a recall as the old code stored it: lower case
        session.add(Recall(gtin=HEPARIN, lot="x9", created_by=1, created_at=START))
        session.execute(text("DELETE FROM schema_version WHERE version > 3"))
    site.ctl.db.close()
    monkeypatch.undo()
    db = open_database(db_url, create=True)
    assert init_database(db, START).applied == list(range(4, dbmod.current_version() + 1))
    with db.read() as session:
        found = session.execute(
            text("SELECT name FROM sqlite_master WHERE name = 'ix_recall_lot_key'")
            if db.dialect == "sqlite"
            else text(  # every test has its own schema: count this one's index only
                "SELECT indexname FROM pg_indexes"
                " WHERE indexname = 'ix_recall_lot_key' AND schemaname = current_schema()"
            )
        ).all()
    assert len(found) == 1
    db.close()
    ctl = Controller(open_database(db_url), site.clock)
    try:
        assert [r.pocket for r in recalls.recalled_stock(ctl)] == ["D1-P1"]
        with pytest.raises(Refused, match="recalled lot X9"):
            inventory.remove(ctl, site.nurse, CABINET, "D1-P1", 1)
    finally:
        ctl.db.close()


def test_the_hot_path_finds_recalls_through_the_lot_key_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = build_site(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        with site.ctl.db.engine.connect() as conn:
            for statement in (rows._q_held_lots(), rows._q_recall_reason()):
                sql = str(statement.compile(dialect=conn.dialect))
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + sql, (None,) * sql.count("?")
                ).all()
                assert any("ix_recall_lot_key" in str(step[-1]) for step in plan), plan
    finally:
        site.ctl.db.close()
