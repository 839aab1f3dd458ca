"""Fleet fixtures: the controller tests' databases (SQLite always, PostgreSQL when
ADC_TEST_DATABASE_URL is set) and a site with two cabinets, W1 and W2."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controller.conftest import _fast_pins, db_url  # noqa: F401  (fixtures)
from tests.fleet.fleet import Fleet, build_fleet


@pytest.fixture
def fleet(db_url: str) -> Iterator[Fleet]:  # noqa: F811
    built = build_fleet(db_url)
    yield built
    built.site.ctl.db.close()
