"""Random sequences of load / refill / remove / unload / count / pull, recalls and the passing of
days on several pockets, checked against a model after every step; and, on a controlled-substance
pocket (morphine in cabinet CS1's F-1, with its return bin RB), counts on access with recounts,
removals and refills that need the counter's own fresh count, waste with witnesses, returns to the
bin, the bin's clear-out and discrepancy resolutions.

Invariants after every step:
- for every pocket (the return bin too): on-hand = sum of its lots = replay (sum) of its
  transactions, never negative, and each lot's quantity is the replay of the transactions that
  name it;
- the database agrees with the model (item, on-hand and lot quantities per pocket);
- a refused action (predicted by the model, and raised by the controller) changed nothing at all;
- every count that stands and differs from what was expected has exactly one discrepancy of its
  own; a recount request has none; the open discrepancies are the ones the model expects;
- no resolution without a valid witness: every closed discrepancy has a witness other than its
  resolver, of a role that may witness, and exactly one resolution record naming them; every
  controlled-substance waste names a witness other than the person who wasted;
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
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from adc.controller import (
    cabinets,
    counts,
    discrepancies,
    inventory,
    recalls,
    returns,
    users,
    waste,
)
from adc.controller.audit import verify_trail
from adc.controller.clock import ManualClock
from adc.controller.context import Actor, Controller
from adc.controller.db import TABLES, open_database
from adc.controller.gs1 import parse_scan
from adc.controller.models import (
    Discrepancy,
    Item,
    Pocket,
    Role,
    StockLot,
    Transaction,
    TxnKind,
    User,
)
from adc.errors import AdcError
from tests.controller.dbs import PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    MORPHINE_CART,
    ONDANSETRON_VIAL,
    PIN,
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
CS_CAB, CS_POCKET, CS_BIN, CS_MAX = "CS1", "F-1", "RB", 20
CS_LOTS = {"M1": 500, "M2": 900}  # lot → expiry in days from START (never short-dated here)
WHO = ["nurse", "pharmacist", "technician"]
# "other": the other licensed role (a valid witness); then every kind of invalid one
WITNESSES = ["other", "other", "other", None, "self", "technician", "nurse2"]  # nurse2: disabled
REASONS = ["miscount", "documented-elsewhere", "wrong-pocket", "restock-error", "unresolvable"]


def add_cs(site: Site) -> None:
    """Cabinet CS1 (cs-small: F-1 and the return bin RB) with morphine assigned to F-1, and a
    disabled nurse who may not witness."""
    cabinets.add_cabinet(site.ctl, site.service, CS_CAB, "cs-small")
    cabinets.assign_pocket(
        site.ctl, site.pharmacist, CS_CAB, CS_POCKET, MORPHINE_CART, par=10, critical_low=1,
        max_qty=CS_MAX,
    )  # fmt: skip
    users.add_user(site.ctl, site.admin, "nurse2", "nurse", PIN)
    users.disable_user(site.ctl, site.admin, "nurse2")


_TEMPLATES: dict[str, Site] = {}


def _sqlite_template() -> Site:
    if "sqlite" not in _TEMPLATES:
        directory = Path(tempfile.mkdtemp(prefix="adc-stateful-template-"))
        _TEMPLATES["sqlite"] = build_site(
            f"sqlite:///{directory / 'template.db'}", ManualClock(START)
        )
        add_cs(_TEMPLATES["sqlite"])
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
class ModelRemoval:
    remover: str
    taken: list[tuple[tuple[str, str, date], int]]  # lots, first-expiry-first
    wasted: int = 0
    returned: dict[tuple[str, str, date], int] = field(default_factory=dict)

    @property
    def unaccounted(self) -> int:
        return sum(n for _, n in self.taken) - self.wasted - sum(self.returned.values())


@dataclass
class ModelPocket:
    gtin: str | None = None
    max_qty: int = 0
    lots: dict[tuple[str, str, date], int] = field(default_factory=dict)  # insertion = id order

    @property
    def on_hand(self) -> int:
        return sum(self.lots.values())

    def take(self, qty: int) -> list[tuple[tuple[str, str, date], int]]:
        """Remove `qty` first-expiry-first; returns (lot, units) taken, in order."""
        taken = []
        for key in self.fefo():
            n = min(qty, self.lots[key])
            if n:
                self.lots[key] -= n
                taken.append((key, n))
            qty -= n
        return taken

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
            add_cs(self.site)
        self.model = {code: ModelPocket() for code in POCKETS}
        self.recalled: set[tuple[str, str]] = set()
        # the controlled-substance pocket, its return bin, and what the model expects of them
        self.cs = ModelPocket(gtin=MORPHINE_CART, max_qty=CS_MAX)
        self.bin: dict[tuple[str, str, date], int] = {}
        self.last: tuple[str, str, bool, object] | None = None  # kind, who, recount due, when
        self.removals: dict[int, ModelRemoval] = {}
        self.open_discs: set[int] = set()
        self.closed_discs: set[int] = set()
        with self.site.ctl.read() as session:
            nurse2 = session.execute(select(User.id).where(User.username == "nurse2")).scalar_one()
            self.morphine = session.execute(
                select(Item.id).where(Item.ndc == "0409189001")
            ).scalar_one()
        self.people: dict[str, Actor] = {
            "nurse": self.site.nurse,
            "pharmacist": self.site.pharmacist,
            "technician": self.site.tech,
            "nurse2": Actor(nurse2, "nurse2", Role.NURSE),
        }

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
        self.cs_count(who="technician", counted=0, same=True)
        self.cs_refill(lot="M1", qty=first + 4)
        assert self.cs.on_hand == first + 4

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
        self._opened(done, removed != pocket.on_hand)
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
        self._opened(done, counted != pocket.on_hand)
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
        self._opened(done, removed != sum(pocket.lots[k] for k in doomed))
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

    @rule(minutes=st.integers(1, 20))
    def minutes_pass(self, minutes: int) -> None:
        """Minutes, not days: a count on access stays good for `counts.ACCESS_WINDOW`."""
        self.clock.advance(minutes * 60)

    # -------------------------------------------------------------- controlled substances
    def _opened(self, result: object, differs: bool) -> None:
        """A recorded count that differs opened one discrepancy (recorded for resolutions)."""
        if result is None:
            return
        disc = getattr(result, "discrepancy_id", None)
        assert bool(disc) == differs, (result, differs)
        if disc:
            self.open_discs.add(disc)

    def _fresh(self, who: str) -> tuple[bool, bool]:
        """(the pocket's latest record is a fresh count by `who`, and it awaits a recount)."""
        if self.last is None:
            return False, False
        kind, by, recount_due, at = self.last
        fresh = kind == "count" and by == who and self.clock.now() - at <= counts.ACCESS_WINDOW  # type: ignore[operator]
        return fresh, fresh and recount_due

    def _may_access(self, who: str) -> bool:
        fresh, recount_due = self._fresh(who)
        return fresh and not recount_due

    def _witness(self, witness: str | None, actor: str) -> tuple[Actor | None, bool]:
        """The witness drawn for `actor` and whether it is a valid one (a different, active
        pharmacist or nurse)."""
        if witness is None:
            return None, False
        name = {"other": "pharmacist" if actor == "nurse" else "nurse", "self": actor}.get(
            witness, witness
        )
        return self.people[name], name in ("nurse", "pharmacist") and name != actor

    @rule(who=st.sampled_from(WHO), counted=st.integers(0, 14), same=st.booleans())
    def cs_count(self, who: str, counted: int, same: bool) -> None:
        """A count on access of the morphine pocket (mostly what is there, now and then not)."""
        counted = self.cs.on_hand if same else counted
        differs = counted != self.cs.on_hand
        _, recount_due = self._fresh(who)
        result = self.attempt(
            True,
            lambda: counts.count_pocket(
                self.site.ctl, self.people[who], CS_CAB, CS_POCKET, counted, access="remove"
            ),
        )
        assert isinstance(result, counts.CountResult)
        if differs and not recount_due:  # the cabinet allows one immediate recount
            assert result.outcome is counts.Outcome.RECOUNT and result.discrepancy_id is None
            self.last = ("count", who, True, self.clock.now())
            return
        self._opened(result, differs)
        delta = counted - self.cs.on_hand
        if delta < 0:
            self.cs.take(-delta)
        elif delta > 0:
            held = self.cs.fefo()
            order = list(self.cs.lots)
            target = held[0] if held else min(order, key=lambda k: (k[2], order.index(k)))
            self.cs.lots[target] += delta
        self.last = ("count", who, False, self.clock.now())

    @rule(who=st.sampled_from(WHO[:2]), qty=st.integers(0, 4))
    def cs_remove(self, who: str, qty: int) -> None:
        allowed = (
            qty >= 1
            and self._may_access(who)
            and not self.blocked(self.cs)
            and qty <= self.cs.on_hand
        )
        done = self.attempt(
            allowed,
            lambda: inventory.remove(self.site.ctl, self.people[who], CS_CAB, CS_POCKET, qty),
        )
        if done is not None:
            assert isinstance(done, inventory.Movement)
            self.removals[done.txn_ids[0]] = ModelRemoval(who, self.cs.take(qty))
            self.last = ("move", who, False, self.clock.now())

    @rule(
        who=st.sampled_from(WHO[:2]),
        qty=st.integers(1, 3),
        wasted=st.integers(0, 2),
        witness=st.sampled_from(WITNESSES),
    )
    def cs_withdrawal(self, who: str, qty: int, wasted: int, witness: str | None) -> None:
        """A nurse's usual access: count what is there, take the dose, waste part of it."""
        self.cs_count(who=who, counted=0, same=True)
        before = set(self.removals)
        self.cs_remove(who=who, qty=qty)
        (removal,) = set(self.removals) - before or {0}
        if removal and wasted:
            self._waste(removal, who, wasted, witness)

    @rule(lot=st.sampled_from(sorted(CS_LOTS)), qty=st.integers(0, 6))
    def cs_refill(self, lot: str, qty: int) -> None:
        expiry = START.date() + timedelta(days=CS_LOTS[lot])
        allowed = (
            qty >= 1
            and self._may_access("technician")
            and expiry >= self.today()
            and not self.blocked(self.cs)
            and self.cs.on_hand + qty <= CS_MAX
        )
        scan = parse_scan(datamatrix(MORPHINE_CART, expiry, lot))
        done = self.attempt(
            allowed,
            lambda: inventory.refill(
                self.site.ctl, self.site.tech, CS_CAB, CS_POCKET, scan, qty,
                confirm_short_dated=True,
            ),
        )  # fmt: skip
        if done is not None:
            key = (MORPHINE_CART, lot, expiry)
            self.cs.lots[key] = self.cs.lots.get(key, 0) + qty
            self.last = ("move", "technician", False, self.clock.now())

    def _removal(self, data: st.DataObject) -> int:
        """Mostly a removal on record; now and then an id that is none."""
        return data.draw(st.sampled_from([*sorted(self.removals), 999]), label="removal")

    @precondition(lambda self: bool(self.removals))
    @rule(
        data=st.data(),
        who=st.sampled_from(WHO[:2]),
        qty=st.integers(0, 3),
        witness=st.sampled_from(WITNESSES),
    )
    def cs_waste(self, data: st.DataObject, who: str, qty: int, witness: str | None) -> None:
        self._waste(self._removal(data), who, qty, witness)

    def _waste(self, removal: int, who: str, qty: int, witness: str | None) -> None:
        found = self.removals.get(removal)
        person, valid = self._witness(witness, who)
        allowed = (
            found is not None
            and qty >= 1
            and (who == found.remover or who == "pharmacist")
            and qty <= found.unaccounted
            and valid
        )
        done = self.attempt(
            allowed,
            lambda: waste.waste(
                self.site.ctl,
                self.people[who],
                CS_CAB,
                qty,
                "partial dose",
                witness=person,
                removal_id=removal,
            ),
        )
        if done is not None and found is not None:
            found.wasted += qty

    @precondition(lambda self: bool(self.removals))
    @rule(data=st.data(), who=st.sampled_from(WHO[:2]), qty=st.integers(1, 3))
    def cs_return(self, data: st.DataObject, who: str, qty: int) -> None:
        removal = self._removal(data)
        found = self.removals.get(removal)
        allowed = (
            found is not None
            and (who == found.remover or who == "pharmacist")
            and qty <= found.unaccounted
        )
        done = self.attempt(
            allowed,
            lambda: returns.return_units(self.site.ctl, self.people[who], CS_CAB, removal, qty),
        )
        if done is None or found is None:
            return
        left = qty
        for key, taken in found.taken:
            n = min(taken - found.returned.get(key, 0), left)
            if n > 0:
                found.returned[key] = found.returned.get(key, 0) + n
                self.bin[key] = self.bin.get(key, 0) + n
                left -= n
        assert left == 0

    @rule(counted=st.integers(0, 6), same=st.booleans())
    def cs_clear_out(self, counted: int, same: bool) -> None:
        held = sum(self.bin.values())
        counted = held if same else counted
        done = self.attempt(
            held > 0,
            lambda: returns.clear_return_bin(
                self.site.ctl, self.site.pharmacist, CS_CAB, {self.morphine: counted}
            ),
        )
        if done is None:
            return
        assert isinstance(done, returns.ClearOut)
        assert len(done.discrepancy_ids) == (counted != held)
        self.open_discs.update(done.discrepancy_ids)
        self.bin = {key: 0 for key in self.bin}

    @precondition(lambda self: bool(self.open_discs))
    @rule(
        data=st.data(),
        who=st.sampled_from(["pharmacist", "pharmacist", "nurse", "technician"]),
        witness=st.sampled_from(WITNESSES),
        reason=st.sampled_from(REASONS),
    )
    def resolve(self, data: st.DataObject, who: str, witness: str | None, reason: str) -> None:
        known = [*sorted(self.open_discs | self.closed_discs), 999]
        self._resolve(data.draw(st.sampled_from(known), label="discrepancy"), who, witness, reason)

    @rule(
        who=st.sampled_from(["pharmacist", "nurse"]),
        off=st.integers(1, 3),
        witness=st.sampled_from(WITNESSES),
        reason=st.sampled_from(REASONS),
    )
    def cs_discrepancy_lifecycle(
        self, who: str, off: int, witness: str | None, reason: str
    ) -> None:
        """A count that differs twice (the discrepancy stands), then someone resolves it."""
        wrong = self.cs.on_hand + off
        before = set(self.open_discs)
        self.cs_count(who=who, counted=wrong, same=False)
        self.cs_count(who=who, counted=wrong, same=False)
        (opened,) = self.open_discs - before
        self._resolve(opened, who, witness, reason)

    def _resolve(self, disc: int, who: str, witness: str | None, reason: str) -> None:
        person, valid = self._witness(witness, who)
        allowed = who in ("nurse", "pharmacist") and disc in self.open_discs and valid
        done = self.attempt(
            allowed,
            lambda: discrepancies.resolve(
                self.site.ctl, self.people[who], disc, reason, "reviewed", witness=person
            ),
        )
        if done is not None:
            self.open_discs.discard(disc)
            self.closed_discs.add(disc)

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
    def controlled_stock_adds_up(self) -> None:
        """The CS pocket and the return bin: on-hand = lots = replay, and as the model says."""
        with self.site.ctl.read() as s:
            for code, lots in ((CS_POCKET, self.cs.lots), (CS_BIN, self.bin)):
                db = s.execute(
                    select(Pocket).where(Pocket.cabinet_id == CS_CAB, Pocket.code == code)
                ).scalar_one()
                rows = s.execute(select(StockLot).where(StockLot.pocket_id == db.id)).scalars()
                found = {(lot.gtin, lot.lot, lot.expiry): lot.qty for lot in rows}
                replay = s.execute(
                    select(func.coalesce(func.sum(Transaction.qty), 0)).where(
                        Transaction.pocket_id == db.id
                    )
                ).scalar()
                assert db.on_hand == sum(found.values()) == replay == sum(lots.values()), code
                assert {k: v for k, v in found.items() if v} == {k: v for k, v in lots.items() if v}

    @invariant()
    def every_differing_count_has_exactly_one_discrepancy(self) -> None:
        with self.site.ctl.read() as s:
            txns = s.execute(
                select(Transaction).where(Transaction.kind == TxnKind.COUNT.value)
            ).scalars()
            groups: dict[int, list[Transaction]] = {}
            for txn in txns:
                groups.setdefault(txn.audit_seq, []).append(txn)
            by_txn: dict[int, list[Discrepancy]] = {}
            for disc in s.execute(select(Discrepancy)).scalars():
                if disc.trigger != "sensor" and disc.transaction_id is not None:
                    by_txn.setdefault(disc.transaction_id, []).append(disc)
            for group in groups.values():
                first = group[0]
                linked = [d for t in group for d in by_txn.get(t.id or 0, [])]
                if first.reason == counts.RECOUNT_REQUESTED:
                    assert linked == [] and all(t.qty == 0 for t in group)
                    continue
                assert len(linked) == (first.counted != first.expected), (first, linked)
                if linked:
                    assert (linked[0].expected, linked[0].counted) == (
                        first.expected,
                        first.counted,
                    )
            still_open = set(
                s.execute(select(Discrepancy.id).where(Discrepancy.status == "open")).scalars()
            )
            assert still_open == self.open_discs

    @invariant()
    def no_resolution_or_controlled_waste_without_a_valid_witness(self) -> None:
        with self.site.ctl.read() as s:
            roles = dict(s.execute(select(User.id, User.role)).all())
            for disc in s.execute(
                select(Discrepancy).where(Discrepancy.status != "open")
            ).scalars():
                assert disc.witness_id is not None and disc.witness_id != disc.resolved_by
                assert roles[disc.witness_id] in ("pharmacist", "nurse")
                (record,) = s.execute(
                    select(Transaction).where(Transaction.session_id == f"discrepancy:{disc.id}")
                ).scalars()
                assert (record.kind, record.qty, record.witness_id, record.user_id) == (
                    TxnKind.ADJUST,
                    0,
                    disc.witness_id,
                    disc.resolved_by,
                )
            assert {d for d in self.closed_discs} == set(
                s.execute(select(Discrepancy.id).where(Discrepancy.status != "open")).scalars()
            )
            for txn in s.execute(
                select(Transaction).where(Transaction.kind == TxnKind.WASTE.value)
            ).scalars():
                assert txn.witness_id is not None and txn.witness_id != txn.user_id

    @invariant()
    def audit_chain_verifies(self) -> None:
        verify_trail(self.site.ctl)


STATEFUL = settings(
    max_examples=25,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    # no `explain` phase: its line tracing makes shrinking a database-backed machine take minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

TestInventorySQLite = InventoryMachine.TestCase
TestInventorySQLite.settings = settings(STATEFUL, max_examples=40)


class PostgresInventoryMachine(InventoryMachine):
    backend = "postgresql"


TestInventoryPostgreSQL = pytest.mark.skipif(not pg_base_url(), reason=PG_SKIP_REASON)(
    PostgresInventoryMachine.TestCase
)
# Each PostgreSQL example builds its site in a fresh schema (no file to copy): fewer examples.
TestInventoryPostgreSQL.settings = settings(STATEFUL, max_examples=10)
