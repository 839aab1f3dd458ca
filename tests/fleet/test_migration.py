"""Schema v7 on a database the wave-1 code wrote (tests/fleet/data/wave1-v5.db, built by
make_wave1_db.py from the wave-1 source): `adc init` upgrades it, the old single chain becomes the
start of the site chain and still verifies, and new changes go to their cabinets' chains.

PostgreSQL: the same wave-1 rows are copied into a PostgreSQL database given the v5 schema (the
v1..v5 steps, without the columns v7 adds), then upgraded the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import column as sa_column
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy import table as sa_table

from adc.controller import audit
from adc.controller import db as dbmod
from adc.controller.audit import verify_trail
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import open_database
from adc.controller.models import AuditEntry, SchemaVersion
from adc.controller.users import authenticate
from adc.errors import BadInput
from tests.conftest import run_adc
from tests.controller.site import START
from tests.fleet.fleet import Fleet

WAVE1 = Path(__file__).parent / "data" / "wave1-v5.db"
WAVE1_ENTRIES = 20


def _wave1_database(db_url: str, tmp_path: Path) -> str:
    """The wave-1 database at `db_url`'s kind: the file itself, or its rows in PostgreSQL."""
    if db_url.startswith("sqlite"):
        copy = tmp_path / "wave1.db"
        shutil.copy(WAVE1, copy)
        return f"sqlite:///{copy}"
    source = create_engine(f"sqlite:///{WAVE1}")
    target = create_engine(db_url)
    with target.begin() as conn:
        for step in dbmod.MIGRATIONS[:5]:
            step.apply(conn)
        conn.exec_driver_sql("DROP INDEX IF EXISTS ux_audit_chain_place")
        conn.exec_driver_sql("ALTER TABLE audit_entry DROP COLUMN chain")
        conn.exec_driver_sql("ALTER TABLE audit_entry DROP COLUMN chain_seq")
        names = set(inspect(source).get_table_names())
        tables = [t for t in dbmod.SQLModel.metadata.sorted_tables if t.name in names]
        with source.connect() as old:
            for table in tables:
                have = {c["name"] for c in inspect(old).get_columns(table.name)}
                columns = [c for c in table.columns if c.name in have]
                rows = [dict(r._mapping) for r in old.execute(select(*columns))]
                if rows:  # the wave-1 columns only (no model default for the new ones)
                    plain = sa_table(table.name, *(sa_column(c.name) for c in columns))
                    conn.execute(plain.insert(), rows)
                if "id" in have and table.name != "schema_version" and _serial(conn, table.name):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))"
                    )
    source.dispose()
    target.dispose()
    return db_url


def _serial(conn, name: str) -> bool:  # type: ignore[no-untyped-def]
    found = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{name}', 'id')").scalar()
    return found is not None


def test_a_wave1_database_upgrades_verifies_and_takes_cabinet_chains(
    db_url: str, tmp_path: Path
) -> None:
    url = _wave1_database(db_url, tmp_path)
    with pytest.raises(BadInput, match="schema version 5, this adc needs"):
        open_database(url)
    with create_engine(url).connect() as conn:
        before = {r.seq: r.hash for r in conn.execute(text("SELECT seq, hash FROM audit_entry"))}
    assert len(before) == WAVE1_ENTRIES
    upgraded = run_adc("init", "--db", url)
    assert upgraded.returncode == 0, upgraded.stderr
    verified = run_adc("audit", "verify", "--db", url)
    assert verified.returncode == 0, verified.stderr
    ctl = Controller(open_database(url), ManualClock(START))
    try:
        with ctl.read() as session:
            versions = session.execute(select(SchemaVersion.version)).scalars().all()
            entries = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert max(versions) == dbmod.current_version() and 7 in versions
        old = entries[:WAVE1_ENTRIES]
        assert {e.seq: e.hash for e in old} == before  # nothing of the old trail rewritten
        assert all(e.chain == "site" and e.chain_seq is None for e in old)
        upgrade = entries[WAVE1_ENTRIES]
        assert (upgrade.action, upgrade.chain, upgrade.chain_seq) == ("db.upgrade", "site", 21)
        assert upgrade.prev_hash == old[-1].hash
        # new changes go to the cabinet's chain, numbered after the old trail
        fleet = Fleet(_site_of(ctl, url))
        seq = fleet.refill("W1", 2)
        fleet.remove("W1", 1)
        assert seq > WAVE1_ENTRIES + 1
        assert ctl.anchor() is not None
        report = verify_trail(ctl)
        assert {c.chain: c.entries for c in report.chains} == {
            "site": WAVE1_ENTRIES + 2,
            "cabinet:W1": 2,
        }
        with ctl.read() as session:
            assert audit.verify_chain(session).entries == WAVE1_ENTRIES + 2
    finally:
        ctl.db.close()
    again = run_adc("init", "--db", url)  # idempotent: nothing applied, nothing appended
    assert again.returncode == 0, again.stderr
    assert run_adc("audit", "verify", "--db", url).returncode == 0


def _site_of(ctl: Controller, url: str):  # type: ignore[no-untyped-def]
    from adc.controller.models import Role
    from tests.controller.site import PIN, Site

    site = Site(ctl=ctl, clock=ctl.clock, url=url)
    for role in (Role.TECHNICIAN, Role.NURSE):
        site.actors[role] = authenticate(ctl, role.value, PIN)
    return site
