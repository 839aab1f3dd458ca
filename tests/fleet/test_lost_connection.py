"""A PostgreSQL connection that drops in the middle of a change (the server ends the backend:
pg_terminate_backend from another connection, as a failover or an admin would): one line for the
person, nothing of the change written, and the next change reconnects and goes through."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from adc.controller import inventory, shortages
from adc.controller.audit import verify_trail
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.models import StockLot
from tests.fleet.fleet import Fleet, stock_problems
from tests.fleet.test_timeouts import _state


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


@pytest.fixture
def pg_fleet(fleet: Fleet) -> Fleet:
    if fleet.site.ctl.db.dialect != "postgresql":
        pytest.skip("a server backend to terminate: PostgreSQL only")
    fleet.refill("W1", 10)
    return fleet


def test_a_removal_whose_connection_drops_midway_records_nothing(
    pg_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = pg_fleet
    before = _state(fleet)
    original = shortages.update_levels_fast

    def drop_then_continue(tx: Any, pocket: Any) -> Any:
        # the lots and on-hand are already updated in this transaction: now the server goes
        _terminate(fleet.site.url, tx.store.cursor.connection.info.backend_pid)
        return original(tx, pocket)

    monkeypatch.setattr(inventory.shortages, "update_levels_fast", drop_then_continue)
    with pytest.raises(DatabaseUnavailable) as refused:
        fleet.remove("W1", 3)
    line = str(refused.value)
    assert "\n" not in line and "connection to the database" in line and "lost" in line
    assert line.endswith("nothing of it was recorded")
    monkeypatch.setattr(inventory.shortages, "update_levels_fast", original)
    assert _state(fleet) == before  # no entry, no stock moved
    fleet.remove("W1", 3)  # the next change reconnects
    entries, on_hand = _state(fleet)
    assert entries == before[0] + 1 and on_hand["W1"] == before[1]["W1"] - 3
    assert stock_problems(fleet.site) == []
    verify_trail(fleet.site.ctl)


def test_an_orm_change_whose_connection_drops_before_commit_records_nothing(
    pg_fleet: Fleet,
) -> None:
    fleet = pg_fleet
    before = _state(fleet)

    def change_then_drop() -> None:
        with fleet.site.ctl.write(None, None, cabinet="W1") as tx:
            tx.session.execute(text("UPDATE stock_lot SET qty = qty + 1"))
            tx.audit("test.partial", {"cabinet": "W1"})
            pid = tx.session.execute(text("SELECT pg_backend_pid()")).scalar()
            _terminate(fleet.site.url, int(pid))

    with pytest.raises(DatabaseUnavailable, match=r"connection to the database .*lost"):
        change_then_drop()
    assert _state(fleet) == before
    with fleet.site.ctl.read() as session:
        lots = session.execute(select(StockLot.qty)).scalars().all()
        assert lots and all(qty <= 10 for qty in lots)
    fleet.remove("W1", 1)
    verify_trail(fleet.site.ctl)
