"""Diagnostics fixtures: a bench over each tier of the contract rigs, with the simulated person.

`bench(rig)` wraps a rig's driver the way `adc diag` wraps a backend, except that time and the
person come from the rig: on the wire tiers the emulators serve a VirtualCabinet held in this
process, so a test can drive its simulated person and inject faults while the real wire drivers
talk to it over TCP or a pty. Time only moves when the procedure waits (the rig's `advance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from adc.diag.bench import Bench, bench_for
from adc.diag.person import NoPerson, Person, SimulatedPerson
from adc.profiles import load_profile, resolve_profile_path
from adc.waiting import SteppedTime
from tests.contract.rigs import RIGS, Rig
from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import Site, build_site, fast_pins

SEED = 3
TIERS = ["sim", "wire-tcp", "wire-rtu"]


def bench(rig: Rig, person: Person | None = None) -> Bench:
    cabinet = rig.cabinet
    return bench_for(
        rig.driver,
        target=rig.backend,
        waiter=SteppedTime(rig.advance, lambda: cabinet.env.now),
        person=person if person is not None else SimulatedPerson(cabinet),
    )


Open = Callable[[str], AbstractContextManager[Rig]]


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> Open:
    """Open a rig of this tier for a shipped profile: `with tier("rs485-2bus") as rig: ...`."""

    @contextmanager
    def open_rig(profile: str) -> Iterator[Rig]:
        with RIGS[request.param](load_profile(resolve_profile_path(profile)), SEED) as rig:
            yield rig

    return open_rig


@pytest.fixture
def nobody() -> Person:
    return NoPerson()


@pytest.fixture(params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    """The controller tests' site (users of every role, demo formulary, cabinet W1 of tcp-6drawer)
    on SQLite, and on PostgreSQL when ADC_TEST_DATABASE_URL is set."""
    if request.param == "postgresql" and not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    fast_pins(monkeypatch)
    url, drop = fresh_database(request.param, tmp_path)
    built = build_site(url)
    yield built
    built.ctl.db.close()
    drop()
