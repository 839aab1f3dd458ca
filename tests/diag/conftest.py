"""Diagnostics fixtures: a bench over each tier of the contract rigs, with the simulated person.

`bench(rig)` wraps a rig's driver the way `adc diag` wraps a backend, except that time and the
person come from the rig: on the wire tiers the emulators serve a VirtualCabinet held in this
process, so a test can drive its simulated person and inject faults while the real wire drivers
talk to it over TCP or a pty. Time only moves when the procedure waits (the rig's `advance`).

Every lock a procedure pulses goes through the controller's access machine (`Bench.gate`, a
recorded run's `ServiceCycle`s), so a bench has a real database: the `site`'s when a test passes
one, else a throwaway SQLite file with the rig's profile registered as cabinet `BENCH` and a
service user (`bench_site`). The controller's clock follows the rig's time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adc.controller import cabinets, users
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.models import Role
from adc.diag.bench import Bench, bench_for
from adc.diag.person import NoPerson, Person, SimulatedPerson
from adc.diag.recording import Recorder
from adc.profiles import load_profile, resolve_profile_path
from adc.waiting import SteppedTime
from tests.contract.rigs import RIGS, Rig
from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import CABINET, PIN, START, Site, build_site, fast_pins

SEED = 3
TIERS = ["sim", "wire-tcp", "wire-rtu"]
BENCH_CABINET = "BENCH"


class RigTime:
    """The controller's clock following a rig's simulated time from `start`."""

    def __init__(self, cabinet: Any, start: datetime) -> None:
        self.cabinet, self.start, self.t0 = cabinet, start, cabinet.env.now

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.cabinet.env.now - self.t0)


_BENCH_DIRS: list[str] = []
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _BENCH_DIRS])


def bench_site(rig: Rig) -> tuple[Controller, Any]:
    """A throwaway SQLite database: the rig's profile registered as BENCH, a service user."""
    where = tempfile.mkdtemp(prefix="adc-diag-bench-")
    _BENCH_DIRS.append(where)
    db = open_database(f"sqlite:///{where}/adc.db", create=True)
    init_database(db, START)
    ctl = Controller(db, RigTime(rig.cabinet, START))
    before, users.SCRYPT_N = users.SCRYPT_N, 2**8
    try:
        users.add_user(ctl, None, "admin", "admin", PIN, "Bench Admin")
        admin = users.authenticate(ctl, "admin", PIN)
        users.add_user(ctl, admin, "service", Role.SERVICE.value, PIN)
        service = users.authenticate(ctl, "service", PIN)
    finally:
        users.SCRYPT_N = before
    cabinets.add_cabinet(ctl, service, BENCH_CABINET, rig.driver.profile.name, simulated=True)
    return ctl, service


def bench(
    rig: Rig, person: Person | None = None, *, site: Site | None = None, purpose: str = "selftest"
) -> Bench:
    """A bench over the rig whose pulses go through the access machine (see the module doc):
    `site`'s database (cabinet W1) when given, else a throwaway one (cabinet BENCH)."""
    cabinet = rig.cabinet
    if site is not None:
        ctl, actor, registered = site.ctl, site.service, CABINET
        if isinstance(ctl.clock, ManualClock):
            ctl.clock = RigTime(cabinet, ctl.clock.now())
    else:
        ctl, actor = bench_site(rig)
        registered = BENCH_CABINET
    return bench_for(
        rig.driver,
        target=rig.backend,
        waiter=SteppedTime(rig.advance, lambda: cabinet.env.now),
        person=person if person is not None else SimulatedPerson(cabinet),
        gate=Recorder(ctl, actor, registered).gate(purpose),
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


def set_simulated(site: Site, simulated: bool) -> None:
    """Register the site's cabinet as simulated or as real hardware."""
    from adc.controller.models import Cabinet

    with site.ctl.db.write() as session:
        session.get(Cabinet, CABINET).simulated = simulated


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
    # Diagnostics here run on sim: backends, which record only against a simulated cabinet
    # (maintenance.check_record_source); the tests of that refusal register W1 as real again.
    set_simulated(built, True)
    yield built
    built.ctl.db.close()
    drop()
