"""Random sequences of load / refill / remove / unload / count / pull, recalls and the passing of
days on several pockets, checked against a model after every step.

Invariants after every step:
- for every pocket: on-hand = sum of its lots = replay (sum) of its transactions, never negative,
  and each lot's quantity is the replay of the transactions that name it;
- the database agrees with the model (item, on-hand and lot quantities per pocket);
- a refused action (predicted by the model, and raised by the controller) changed nothing at all;
- the audit chain verifies.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from adc.controller import inventory, recalls, users
from adc.controller.audit import verify_trail
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import TABLES, open_database
from adc.controller.gs1 import parse_scan
from adc.controller.models import Pocket, StockLot, Transaction
from adc.errors import AdcError
from tests.controller.dbs import PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    ONDANSETRON_VIAL,
    START,
    Site,
    build_site,
    datamatrix,
)

POCKETS = ["D1-P1", "D1-P2", "D2-P1"]
GTINS = [ACETAMINOPHEN, HEPARIN, ONDANSETRON_VIAL]
LOTS = ["L1", "L2", "L3"]  # few, so that recalls and refills meet the lots in stock
EXPIRY_DAYS = [3, 20, 45, 400]  # from START: some short-dated, some expire as days pass
LEVELS = (10, 2, 12)  # par, critical-low, max
SCANNED = st.sampled_from([None, None, None, *GTINS])  # None: the pocket's own item (mostly right)


_TEMPLATES: dict[str, Site] = {}


def _sqlite_template() -> Site:
    if "sqlite" not in _TEMPLATES:
        directory = Path(tempfile.mkdtemp(prefix="adc-stateful-template-"))
        _TEMPLATES["sqlite"] = build_site(
            f"sqlite:///{directory / 'template.db'}", ManualClock(START)
        )
    return _TEMPLATES["sqlite"]


def clone_sqlite_site(template: Site, path: Path, clock: ManualClock) -> Site:
    """The template site's database copied (SQLite backup API) to `path`, with its own clock."""
    source_path = template.url.removeprefix("sqlite:///")
    with sqlite3.connect(source_path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    url = f"sqlite:///{path}"
    return Site(
        ctl=Controller(open_database(url), clock),
        clock=clock,
        url=url,
        actors=dict(template.actors),
    )


@dataclass
class ModelPocket:
    gtin: str | None = None
    max_qty: int = 0
    lots: dict[tuple[str, str, date], int] = field(default_factory=dict)  # insertion = id order

    @property
    def on_hand(self) -> int:
        return sum(self.lots.values())

    def fefo(self) -> list[tuple[str, str, date]]:
        order = list(self.lots)
        return sorted((k for k in order if self.lots[k] > 0), key=lambda k: (k[2], order.index(k)))


class InventoryMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.saved_n, users.SCRYPT_N = users.SCRYPT_N, 2**8
        self.tmp = Path(tempfile.mkdtemp(prefix="adc-stateful-"))
        self.clock = ManualClock(START)
        if self.backend == "sqlite":  # a copy of a site built once: shrinking runs many examples
            self.drop = lambda: None
            self.site = clone_sqlite_site(_sqlite_template(), self.tmp / "adc.db", self.clock)
        else:
            url, self.drop = fresh_database(self.backend, self.tmp)
            self.site = build_site(url, self.clock)
        self.model = {code: ModelPocket() for code in POCKETS}
        self.recalled: set[tuple[str, str]] = set()

    def teardown(self) -> None:
        self.site.ctl.db.close()
        self.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        users.SCRYPT_N = self.saved_n

    # ---------------------------------------------------------------------------- helpers
    def today(self) -> date:
        return self.clock.now().date()

    def blocked(self, pocket: ModelPocket) -> bool:
        return any(
            lot[2] < self.today() or (lot[0], lot[1]) in self.recalled for lot in pocket.fefo()
        )

    def snapshot(self) -> list[list[tuple[object, ...]]]:
        with self.site.ctl.read() as session:
            return [
                [
                    tuple(row)
                    for row in session.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in TABLES
            ]

    def attempt(self, allowed: bool, call) -> object | None:  # type: ignore[no-untyped-def]
        event(f"{call.__qualname__.split('.')[1]}: {'done' if allowed else 'refused'}")
        before = self.snapshot()
        refusal: AdcError | None = None
        try:
            result = call()
        except AdcError as err:
            refusal = err
        if refusal is not None:
            assert not allowed, f"refused, but the model allows it: {refusal.message}"
            assert self.snapshot() == before, "a refused action changed the database"
            return None
        assert allowed, f"the model refuses it, but it went through: {result}"
        return result

    def receive_ok(
        self,
        pocket: ModelPocket,
        gtin: str,
        lot: str,
        expiry: date,
        qty: int,
        confirm: bool,
        max_qty: int,
    ) -> bool:
        days = (expiry - self.today()).days
        return (
            qty >= 1
            and gtin == pocket.gtin
            and (gtin, lot) not in self.recalled
            and expiry >= self.today()
            and (days > self.site.ctl.policy.short_dated_days or confirm)
            and not self.blocked(pocket)
            and pocket.on_hand + qty <= max_qty
        )

    # ------------------------------------------------------------------------------ rules
    @initialize(
        gtins=st.permutations(GTINS), qtys=st.lists(st.integers(1, 6), min_size=4, max_size=4)
    )
    def stocked_pockets(self, gtins: list[str], qtys: list[int]) -> None:
        """Start with two pockets holding two lots each (one short-dated, expiring as days pass),
        so that every run moves stock across lots: FEFO, pulls and counts have work to do."""
        for code, gtin, (first, second) in zip(
            POCKETS[:2], gtins, (qtys[:2], qtys[2:]), strict=False
        ):
            self.load(
                code=code, gtin=gtin, scanned=None, lot="L1", days=400, qty=first, confirm=False
            )
            self.refill(code=code, scanned=None, lot="L2", days=20, qty=second, confirm=True)
            assert self.model[code].on_hand == first + second

    @rule(
        code=st.sampled_from(POCKETS),
        gtin=st.sampled_from(GTINS),
        scanned=SCANNED,
        lot=st.sampled_from(LOTS),
        days=st.sampled_from(EXPIRY_DAYS),
        qty=st.integers(0, 8),
        confirm=st.booleans(),
    )
    def load(
        self,
        code: str,
        gtin: str,
        scanned: str | None,
        lot: str,
        days: int,
        qty: int,
        confirm: bool,
    ) -> None:
        pocket = self.model[code]
        scanned = scanned or gtin
        expiry = START.date() + timedelta(days=days)
        trial = ModelPocket(gtin=gtin, max_qty=LEVELS[2])
        allowed = pocket.on_hand == 0 and self.receive_ok(
            trial, scanned, lot, expiry, qty, confirm, LEVELS[2]
        )
        with self.site.ctl.read() as session:
            from adc.controller.formulary import find_item

            item_id = find_item(session, gtin).id or 0
        scan = parse_scan(datamatrix(scanned, expiry, lot))
        done = self.attempt(
            allowed,
            lambda: inventory.load(
                self.site.ctl,
                self.site.tech,
                CABINET,
                code,
                item_id,
                LEVELS,
                scan,
                qty,
                confirm_short_dated=confirm,
            ),
        )
        if done is not None:
            pocket.gtin, pocket.max_qty = gtin, LEVELS[2]
            key = (scanned, lot, expiry)
            pocket.lots[key] = pocket.lots.get(key, 0) + qty

    @rule(
        code=st.sampled_from(POCKETS),
        scanned=SCANNED,
        lot=st.sampled_from(LOTS),
        days=st.sampled_from(EXPIRY_DAYS),
        qty=st.integers(0, 8),
        confirm=st.booleans(),
    )
    def refill(
        self, code: str, scanned: str | None, lot: str, days: int, qty: int, confirm: bool
    ) -> None:
        pocket = self.model[code]
        scanned = scanned or pocket.gtin or GTINS[0]
        expiry = START.date() + timedelta(days=days)
        allowed = pocket.gtin is not None and self.receive_ok(
            pocket, scanned, lot, expiry, qty, confirm, pocket.max_qty
        )
        scan = parse_scan(datamatrix(scanned, expiry, lot))
        done = self.attempt(
            allowed,
            lambda: inventory.refill(
                self.site.ctl, self.site.tech, CABINET, code, scan, qty, confirm_short_dated=confirm
            ),
        )
        if done is not None:
            key = (scanned, lot, expiry)
            pocket.lots[key] = pocket.lots.get(key, 0) + qty

    @rule(code=st.sampled_from(POCKETS), qty=st.integers(0, 8))
    def remove(self, code: str, qty: int) -> None:
        pocket = self.model[code]
        allowed = (
            pocket.gtin is not None and 1 <= qty <= pocket.on_hand and not self.blocked(pocket)
        )
        done = self.attempt(
            allowed, lambda: inventory.remove(self.site.ctl, self.site.nurse, CABINET, code, qty)
        )
        if done is not None:
            self._take(pocket, qty)

    def _take(self, pocket: ModelPocket, qty: int) -> None:
        for key in pocket.fefo():
            take = min(qty, pocket.lots[key])
            pocket.lots[key] -= take
            qty -= take

    @rule(code=st.sampled_from(POCKETS), removed=st.integers(0, 14))
    def unload(self, code: str, removed: int) -> None:
        pocket = self.model[code]
        done = self.attempt(
            pocket.gtin is not None,
            lambda: inventory.unload(self.site.ctl, self.site.tech, CABINET, code, removed),
        )
        if done is not None:
            for key in pocket.lots:
                pocket.lots[key] = 0
            pocket.gtin, pocket.max_qty = None, 0

    @rule(code=st.sampled_from(POCKETS), counted=st.integers(0, 14))
    def count(self, code: str, counted: int) -> None:
        pocket = self.model[code]
        own = [k for k in pocket.lots if k[0] == pocket.gtin] if pocket.gtin else []
        # surplus needs a lot on record (any lot of the item, also one of another of its GTINs)
        allowed = pocket.gtin is not None and (
            counted <= pocket.on_hand or bool(pocket.fefo() or own)
        )
        done = self.attempt(
            allowed,
            lambda: inventory.count(self.site.ctl, self.site.pharmacist, CABINET, code, counted),
        )
        if done is None:
            return
        delta = counted - pocket.on_hand
        if delta < 0:
            self._take(pocket, -delta)
        elif delta > 0:
            held = pocket.fefo()
            order = list(pocket.lots)
            target = held[0] if held else min(own, key=lambda k: (k[2], order.index(k)))
            pocket.lots[target] += delta

    @rule(code=st.sampled_from(POCKETS), removed=st.integers(0, 14))
    def pull(self, code: str, removed: int) -> None:
        pocket = self.model[code]
        doomed = [k for k in pocket.fefo() if k[2] < self.today() or (k[0], k[1]) in self.recalled]
        done = self.attempt(
            bool(doomed),
            lambda: inventory.pull(self.site.ctl, self.site.tech, CABINET, code, removed),
        )
        if done is not None:
            for key in doomed:
                pocket.lots[key] = 0

    @rule(data=st.data())
    def recall(self, data: st.DataObject) -> None:
        """Mostly a lot that is (or was) in stock: a recall that blocks something."""
        stocked = sorted({(k[0], k[1]) for pocket in self.model.values() for k in pocket.lots})
        choices = st.sampled_from(stocked) if stocked else st.nothing()
        gtin, lot = data.draw(choices | st.tuples(st.sampled_from(GTINS), st.sampled_from(LOTS)))
        allowed = (gtin, lot) not in self.recalled
        done = self.attempt(
            allowed, lambda: recalls.add_recall(self.site.ctl, self.site.pharmacist, gtin, lot)
        )
        if done is not None:
            self.recalled.add((gtin, lot))

    @rule(days=st.integers(1, 30))
    def time_passes(self, days: int) -> None:
        self.clock.advance(days=days)

    # ------------------------------------------------------------------------- invariants
    @invariant()
    def stock_adds_up(self) -> None:
        with self.site.ctl.read() as s:
            pockets = {
                p.code: p
                for p in s.execute(select(Pocket).where(Pocket.code.in_(POCKETS))).scalars()
            }
            for code, model in self.model.items():
                db = pockets[code]
                lot_sum = s.execute(
                    select(func.coalesce(func.sum(StockLot.qty), 0)).where(
                        StockLot.pocket_id == db.id
                    )
                ).scalar()
                replay = s.execute(
                    select(func.coalesce(func.sum(Transaction.qty), 0)).where(
                        Transaction.pocket_id == db.id
                    )
                ).scalar()
                assert db.on_hand == lot_sum == replay == model.on_hand, (
                    code,
                    db.on_hand,
                    lot_sum,
                    replay,
                    model.on_hand,
                )
                assert db.on_hand >= 0
                assert (db.item_id is None) == (model.gtin is None)
                lots = (
                    s.execute(select(StockLot).where(StockLot.pocket_id == db.id)).scalars().all()
                )
                assert {(lot.gtin, lot.lot, lot.expiry): lot.qty for lot in lots} == {
                    k: v for k, v in model.lots.items()
                }
                for lot in lots:
                    moved = s.execute(
                        select(func.coalesce(func.sum(Transaction.qty), 0)).where(
                            Transaction.lot_id == lot.id
                        )
                    ).scalar()
                    assert moved == lot.qty >= 0

    @invariant()
    def audit_chain_verifies(self) -> None:
        verify_trail(self.site.ctl)


STATEFUL = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    # no `explain` phase: its line tracing makes shrinking a database-backed machine take minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

TestInventorySQLite = InventoryMachine.TestCase
TestInventorySQLite.settings = STATEFUL


class PostgresInventoryMachine(InventoryMachine):
    backend = "postgresql"


TestInventoryPostgreSQL = pytest.mark.skipif(not pg_base_url(), reason=PG_SKIP_REASON)(
    PostgresInventoryMachine.TestCase
)
# Each PostgreSQL example builds its site in a fresh schema (no file to copy): fewer examples.
TestInventoryPostgreSQL.settings = settings(STATEFUL, max_examples=10)
