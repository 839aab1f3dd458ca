"""Random sequences of study actions on a study pocket, checked against a model after every step:
receipts (load, refill) by an authorized pharmacist or a technician who is not on the study,
removals by an authorized nurse or one who is not (with valid or invalid subject ids), returns
to the pharmacy, counts, recalls and pulls, unloads, and the study's closing.

Invariants after every step:
- the accountability record reconciles: every lot's running balance equals what the pockets hold,
  which is the model's number for that lot, and the pocket's on-hand is the sum of its lots;
- the last row of each lot in the record carries that balance;
- a refused action moved no stock and recorded no dispense or return;
- every refusal by a study rule (not authorized, study closed) is audited, and only those.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from adc.controller import inventory, recalls, studies, users
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import open_database
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, Pocket, StockLot, Transaction
from adc.controller.study_report import accountability
from adc.controller.study_returns import return_to_pharmacy
from adc.controller.study_tables import StudyDispense, StudyReturn
from adc.errors import AdcError
from tests.controller.dbs import PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import CABINET, PIN, START, Site, build_site, datamatrix
from tests.controller.test_study import LEVELS, PROTOCOL, STUDY_GTIN, STUDY_POCKET, set_up_study

LOTS = {"L1": 60, "L2": 120, "L3": 240}  # lot → days to expiry: FEFO order is L1, L2, L3
SUBJECTS = [*["001-0001", "002-0417", "A1-B2-C3"] * 3, "Jane Doe", "SMITH-01", ""]
VALID = {"001-0001", "002-0417", "A1-B2-C3"}
MAX = LEVELS[2]
MOSTLY = st.sampled_from([True, True, True, False])  # authorized, mostly
RARELY = st.sampled_from([True, False, False, False])  # a rule that ends much: now and then


def _expiry(lot: str) -> date:
    return (START + timedelta(days=LOTS[lot])).date()


def _prepare(site: Site, tmp: Path) -> None:
    set_up_study(site, tmp)  # the pharmacist and the nurse are authorized
    users.add_user(site.ctl, site.admin, "nurse3", "nurse", PIN)  # a nurse not on the study


_TEMPLATE: dict[str, Site] = {}


def _template() -> Site:
    if "sqlite" not in _TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="adc-study-template-"))
        site = build_site(f"sqlite:///{directory / 'template.db'}", ManualClock(START))
        _prepare(site, directory)
        site.actors_extra = users.authenticate(site.ctl, "nurse3", PIN)  # type: ignore[attr-defined]
        _TEMPLATE["sqlite"] = site
    return _TEMPLATE["sqlite"]


@dataclass
class Removal:
    txn_id: int
    left: int  # units not yet returned


@dataclass
class Model:
    lots: dict[str, int] = field(default_factory=dict)  # lot → units in the pocket
    ever: set[str] = field(default_factory=set)  # lots the pocket has had (for count surplus)
    assigned: bool = False
    closed: bool = False
    recalled: set[str] = field(default_factory=set)
    removals: list[Removal] = field(default_factory=list)
    audited_refusals: int = 0

    @property
    def on_hand(self) -> int:
        return sum(self.lots.values())

    def held(self) -> list[str]:
        return sorted((lot for lot, n in self.lots.items() if n > 0), key=lambda lot: LOTS[lot])

    def blocked(self) -> bool:
        return any(lot in self.recalled for lot in self.held())

    def take(self, qty: int) -> None:
        for lot in self.held():
            take = min(self.lots[lot], qty)
            self.lots[lot] -= take
            qty -= take


class StudyMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.saved_n, users.SCRYPT_N = users.SCRYPT_N, 2**8
        self.tmp = Path(tempfile.mkdtemp(prefix="adc-study-stateful-"))
        self.clock = ManualClock(START)
        if self.backend == "sqlite":
            template = _template()
            path = self.tmp / "adc.db"
            source = template.url.removeprefix("sqlite:///")
            with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
            url = f"sqlite:///{path}"
            self.site = Site(Controller(open_database(url), self.clock), self.clock, url)
            self.site.actors = dict(template.actors)
            self.nurse3 = template.actors_extra  # type: ignore[attr-defined]
            self.drop = lambda: None
        else:
            url, self.drop = fresh_database(self.backend, self.tmp)
            self.site = build_site(url, self.clock)
            _prepare(self.site, self.tmp)
            self.nurse3 = users.authenticate(self.site.ctl, "nurse3", PIN)
        self.item_id = self.site.item_id(STUDY_GTIN)
        self.model = Model()

    def teardown(self) -> None:
        self.site.ctl.db.close()
        self.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        users.SCRYPT_N = self.saved_n

    # ---------------------------------------------------------------------------- helpers
    def stock(self) -> tuple[object, ...]:
        with self.site.ctl.read() as session:
            counted = [
                session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (Transaction, StudyDispense, StudyReturn)
            ]
            return (*counted, session.execute(select(func.sum(StockLot.qty))).scalar_one())

    def attempt(self, allowed: bool, audited: bool, name: str, call) -> object | None:  # type: ignore[no-untyped-def]
        event(f"{name}: {'done' if allowed else 'refused'}")
        before = self.stock()
        refusal: AdcError | None = None
        try:
            result = call()
        except AdcError as err:
            refusal = err
        if refusal is not None:
            assert not allowed, f"{name} refused, but the model allows it: {refusal.message}"
            assert self.stock() == before, f"a refused {name} moved stock"
            self.model.audited_refusals += audited
            return None
        assert allowed, f"the model refuses {name}, but it went through"
        return result

    # ------------------------------------------------------------------------------ rules
    @initialize(lot=st.sampled_from(sorted(LOTS)), qty=st.integers(5, 15))
    def first_receipt(self, lot: str, qty: int) -> None:
        self.receive(lot, qty, True)

    @rule(lot=st.sampled_from(sorted(LOTS)), qty=st.integers(1, 8), authorized=MOSTLY)
    def receive(self, lot: str, qty: int, authorized: bool) -> None:
        m = self.model
        who = self.site.pharmacist if authorized else self.site.tech
        scan = parse_scan(datamatrix(STUDY_GTIN, _expiry(lot), lot))
        study_says_no = not authorized or m.closed
        allowed = (
            not study_says_no
            and lot not in m.recalled
            and m.on_hand + qty <= MAX
            and not m.blocked()
        )
        if m.assigned:
            call = lambda: inventory.refill(  # noqa: E731
                self.site.ctl, who, CABINET, STUDY_POCKET, scan, qty, confirm_short_dated=True
            )
        else:
            call = lambda: inventory.load(  # noqa: E731
                self.site.ctl, who, CABINET, STUDY_POCKET, self.item_id, LEVELS, scan, qty,
                confirm_short_dated=True,
            )  # fmt: skip
        if self.attempt(allowed, study_says_no, "receive", call) is not None:
            m.assigned = True
            m.lots[lot] = m.lots.get(lot, 0) + qty
            m.ever.add(lot)

    @rule(qty=st.integers(1, 5), authorized=MOSTLY, subject=st.sampled_from(SUBJECTS))
    def remove(self, qty: int, authorized: bool, subject: str) -> None:
        m = self.model
        who = self.site.nurse if authorized else self.nurse3
        study_says_no = m.assigned and (not authorized or m.closed)
        allowed = (
            m.assigned
            and not study_says_no
            and subject in VALID
            and qty <= m.on_hand
            and not m.blocked()
        )
        moved = self.attempt(
            allowed,
            study_says_no,
            "remove",
            lambda: inventory.remove(
                self.site.ctl, who, CABINET, STUDY_POCKET, qty, subject=subject, dose="50 mg"
            ),
        )
        if moved is not None:
            m.take(qty)
            m.removals.append(Removal(moved.txn_ids[0], qty))  # type: ignore[attr-defined]

    @precondition(lambda self: self.model.removals)
    @rule(data=st.data(), qty=st.integers(1, 4))
    def give_back(self, data: st.DataObject, qty: int) -> None:
        removal = data.draw(st.sampled_from(self.model.removals))
        done = self.attempt(
            qty <= removal.left,
            False,
            "return",
            lambda: return_to_pharmacy(self.site.ctl, self.site.nurse, removal.txn_id, qty, "held"),
        )
        if done is not None:
            removal.left -= qty  # the pocket does not change

    @rule(counted=st.integers(0, MAX), authorized=MOSTLY)
    def count(self, counted: int, authorized: bool) -> None:
        m = self.model
        who = self.site.pharmacist if authorized else self.site.tech
        study_says_no = m.assigned and not authorized
        surplus_lot = m.held()[0] if m.held() else min(m.ever, key=LOTS.get, default=None)
        allowed = m.assigned and authorized and (counted <= m.on_hand or surplus_lot is not None)
        done = self.attempt(
            allowed,
            study_says_no,
            "count",
            lambda: inventory.count(self.site.ctl, who, CABINET, STUDY_POCKET, counted),
        )
        if done is not None:
            if counted < m.on_hand:
                m.take(m.on_hand - counted)
            elif counted > m.on_hand:
                assert surplus_lot is not None
                m.lots[surplus_lot] += counted - m.on_hand

    @rule(lot=st.sampled_from(sorted(LOTS)), now=RARELY)
    def recall(self, lot: str, now: bool) -> None:
        if not now or lot in self.model.recalled:
            return
        recalls.add_recall(self.site.ctl, self.site.pharmacist, STUDY_GTIN, lot, "sponsor")
        self.model.recalled.add(lot)

    @rule()
    def pull(self) -> None:
        m = self.model
        bad = [lot for lot in m.held() if lot in m.recalled]
        expected = sum(m.lots[lot] for lot in bad)
        done = self.attempt(
            m.assigned and bool(bad),
            False,
            "pull",
            lambda: inventory.pull(
                self.site.ctl, self.site.pharmacist, CABINET, STUDY_POCKET, expected
            ),
        )
        if done is not None:
            for lot in bad:
                m.lots[lot] = 0

    @rule(now=RARELY)
    def unload(self, now: bool) -> None:
        m = self.model
        if not now:
            return
        done = self.attempt(
            m.assigned,
            False,
            "unload",
            lambda: inventory.unload(
                self.site.ctl, self.site.pharmacist, CABINET, STUDY_POCKET, m.on_hand
            ),
        )
        if done is not None:
            m.lots = dict.fromkeys(m.lots, 0)
            m.assigned = False

    @precondition(lambda self: not self.model.closed and self.model.removals)
    @rule(now=RARELY)
    def close(self, now: bool) -> None:
        if not now:
            return
        studies.close_study(self.site.ctl, self.site.pharmacist, PROTOCOL, "done")
        self.model.closed = True

    # -------------------------------------------------------------------------- invariants
    @invariant()
    def record_reconciles_with_on_hand(self) -> None:
        record = accountability(self.site.ctl, self.site.pharmacist, PROTOCOL)
        assert record.reconciled, [b.as_json() for b in record.lots]
        model = {lot: n for lot, n in self.model.lots.items()}
        assert {b.lot: b.on_hand for b in record.lots} == {lot: model[lot] for lot in model}
        last: dict[str, int] = {}
        for row in record.rows:
            last[row.lot] = row.balance
        assert last == {b.lot: b.balance for b in record.lots}
        with self.site.ctl.read() as session:
            pocket = session.execute(
                select(Pocket).where(Pocket.cabinet_id == CABINET, Pocket.code == STUDY_POCKET)
            ).scalar_one()
            refused = session.execute(
                select(func.count()).where(AuditEntry.action == "study.refused")
            ).scalar_one()
        assert pocket.on_hand == self.model.on_hand == sum(b.on_hand for b in record.lots)
        assert refused == self.model.audited_refusals


STATEFUL = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStudySQLite = StudyMachine.TestCase
TestStudySQLite.settings = STATEFUL


class StudyMachinePG(StudyMachine):
    backend = "postgresql"


TestStudyPostgreSQL = pytest.mark.skipif(not pg_base_url(), reason=PG_SKIP_REASON)(
    StudyMachinePG.TestCase
)
TestStudyPostgreSQL.settings = settings(STATEFUL, max_examples=4)
