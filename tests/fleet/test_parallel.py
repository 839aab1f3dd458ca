"""Writers in separate processes: on PostgreSQL two cabinets' changes run at the same time and
two changes on one cabinet take turns (timestamps taken inside the locks); on SQLite every change
takes turns (one writer). Stock stays exact either way: on-hand = Σ lots = Σ transactions."""

from __future__ import annotations

import multiprocessing
import time
from datetime import date

import pytest

from adc.controller import inventory
from adc.controller.audit import verify_trail
from adc.controller.context import Controller
from adc.controller.db import open_database
from adc.controller.gs1 import parse_scan
from adc.controller.permissions import Action
from adc.controller.users import authenticate
from tests.controller.site import PIN, START, ManualClock, datamatrix
from tests.fleet.fleet import GTIN, POCKET, Fleet, stock_problems

HOLD_S = 0.05
ROUNDS = 6


def _hold_lock(url: str, cabinet: str, rounds: int, barrier=None) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """`rounds` changes on `cabinet`, each holding its lock HOLD_S: (entered, left) of each,
    on the machine-wide monotonic clock."""
    ctl = Controller(open_database(url), ManualClock(START))
    nurse = authenticate(ctl, "nurse", PIN)
    spans = []
    barrier.wait(timeout=60)
    try:
        for _ in range(rounds):
            with ctl.write_fast(nurse, Action.REMOVE, cabinet=cabinet) as tx:
                entered = time.monotonic()
                time.sleep(HOLD_S)
                tx.audit("test.hold", {"cabinet": cabinet})
                spans.append((entered, time.monotonic()))
    finally:
        ctl.db.close()
    return spans


def _stock_writer(url: str, cabinet: str, rounds: int, barrier=None) -> int:  # type: ignore[no-untyped-def]
    """Refill 2, remove 1, `rounds` times, through the controller; the units it added."""
    ctl = Controller(open_database(url), ManualClock(START))
    tech, nurse = authenticate(ctl, "technician", PIN), authenticate(ctl, "nurse", PIN)
    scan = parse_scan(datamatrix(GTIN[cabinet], date(2027, 1, 31), f"L{cabinet}"))
    barrier.wait(timeout=60)
    try:
        for _ in range(rounds):
            inventory.refill(ctl, tech, cabinet, POCKET, scan, 2)
            inventory.remove(ctl, nurse, cabinet, POCKET, 1)
    finally:
        ctl.db.close()
    return rounds


def _worker(target, barrier, results, index: int, args: tuple) -> None:  # type: ignore[no-untyped-def, type-arg]
    results.put((index, target(*args, barrier=barrier)))


def _run(target, jobs: list[tuple]) -> list:  # type: ignore[no-untyped-def, type-arg]
    """Each job in its own process; they start their changes together (a barrier, passed once
    each has opened its database and logged in)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(target, barrier, results, i, job))
        for i, job in enumerate(jobs)
    ]
    for proc in procs:
        proc.start()
    out = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return [out[i] for i in range(len(jobs))]


def _overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> int:
    return sum(1 for x in a for y in b if x[0] < y[1] and y[0] < x[1])


def test_two_cabinets_write_at_once_and_one_cabinet_takes_turns(fleet: Fleet) -> None:
    url = fleet.site.url
    w1, w2 = _run(_hold_lock, [(url, "W1", ROUNDS), (url, "W2", ROUNDS)])
    same_a, same_b = _run(_hold_lock, [(url, "W1", ROUNDS), (url, "W1", ROUNDS)])
    assert _overlaps(same_a, same_b) == 0  # one cabinet: never two changes inside its lock
    if fleet.site.ctl.db.dialect == "postgresql":
        assert _overlaps(w1, w2) > 0  # two cabinets: inside their locks at the same time
    else:
        assert _overlaps(w1, w2) == 0  # SQLite: one writer for the whole file
    report = verify_trail(fleet.site.ctl)
    assert {c.chain: c.entries for c in report.chains}["cabinet:W1"] == 3 * ROUNDS


@pytest.mark.parametrize("writers", [(("W1", "W1", "W2", "W2"))])
def test_stock_stays_exact_under_parallel_writers(fleet: Fleet, writers: tuple[str, ...]) -> None:
    rounds = 10
    _run(_stock_writer, [(fleet.site.url, cabinet, rounds) for cabinet in writers])
    assert stock_problems(fleet.site) == []
    from sqlalchemy import select

    from adc.controller.models import Pocket

    with fleet.site.ctl.read() as session:
        on_hand = dict(
            session.execute(
                select(Pocket.cabinet_id, Pocket.on_hand).where(Pocket.code == POCKET)
            ).all()
        )
    assert on_hand == {"W1": 2 * rounds, "W2": 2 * rounds}  # 2 writers × rounds × (+2 - 1)
    report = verify_trail(fleet.site.ctl)
    chains = {c.chain: c.entries for c in report.chains}
    assert chains["cabinet:W1"] == chains["cabinet:W2"] == 2 * 2 * rounds
