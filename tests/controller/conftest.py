"""Controller fixtures: a database per test on SQLite and PostgreSQL, a site with users, a
formulary and a registered cabinet, and the virtual cabinet's driver for restock sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import Site, build_site, fast_pins


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: SQLite always, PostgreSQL when ADC_TEST_DATABASE_URL is set."""
    if request.param == "postgresql" and not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    url, drop = fresh_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture(autouse=True)
def _fast_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at production cost takes ~50 ms a PIN; tests use a cheaper N (stored in the hash)."""
    fast_pins(monkeypatch)


@pytest.fixture
def site(db_url: str) -> Iterator[Site]:
    built = build_site(db_url)
    yield built
    built.ctl.db.close()
