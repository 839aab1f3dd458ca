"""The session runner in-process: interrupts at every stage of a line, the re-arm wait, and a
scripted session through the real Modbus TCP driver against the emulator.

Time is the virtual cabinet's, advanced by the runner's waiter; the controller's clock is derived
from it (`SessionClock`), as in the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adc.controller import cabinets
from adc.controller.maintenance import out_of_service
from adc.controller.restock import State, begin_restock
from adc.profiles import load_profile, resolve_profile_path
from adc.session.events import Event
from adc.session.hands import NoHands
from adc.session.runner import PULSE_WAIT_S, Runner
from adc.session.script import check_against, parse_script, run_script
from adc.session.simhands import SimHands
from adc.session.timing import SessionClock
from adc.waiting import SteppedTime
from tests.contract.rigs import Rig, sim_rig
from tests.contract.wire_backends import tcp_rig
from tests.controller.site import fast_pins
from tests.session.helpers import (
    ACETAMINOPHEN,
    HEPARIN,
    ONDANSETRON_VIAL,
    PROFILE,
    SessionSite,
    build_session_site,
    datamatrix,
    good_expiry,
    hri,
)

VIAL_G = 4.6


@dataclass
class Bench:
    site: SessionSite
    rig: Rig
    runner: Runner
    events: list[Event] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def last(self, kind: str) -> dict[str, Any]:
        return next(e.data for e in reversed(self.events) if e.kind == kind)

    def wait(self, seconds: float) -> None:
        self.runner.waiter.sleep(seconds)

    def scan_first_line(self, lot: str = "L1") -> None:
        line = self.runner.next_line()
        assert line is not None and line.pocket == "D1-P1"
        assert self.runner.scan(datamatrix(ONDANSETRON_VIAL, good_expiry(), lot)).status == (
            "accepted"
        )


@contextmanager
def bench(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rig_factory: Any = sim_rig,
    hands: str = "sim",
    cabinet: str = "W1",
) -> Iterator[Bench]:
    """Cabinet W1 (tcp-6drawer), or W2: rs485-2bus with its D1-P1 (drawer lock lb0:lock.0, a
    lock board whose feedback reads the bolt itself) assigned the same ondansetron."""
    fast_pins(monkeypatch)
    site = build_session_site(tmp_path / "adc.db")
    profile = PROFILE
    if cabinet == "W2":
        s = site.site
        cabinets.add_cabinet(s.ctl, s.service, "W2", "rs485-2bus")
        cabinets.assign_pocket(
            s.ctl, s.pharmacist, "W2", "D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20
        )
        profile = load_profile(resolve_profile_path("rs485-2bus"))
    with rig_factory(profile, 1) as rig:
        waiter = SteppedTime(rig.advance, lambda: float(rig.cabinet.env.now))
        ctl = site.site.ctl
        ctl.clock = SessionClock(waiter)
        session = begin_restock(ctl, rig.driver, cabinet, site.site.tech)
        events: list[Event] = []
        chosen = SimHands(rig.cabinet) if hands == "sim" else NoHands()
        runner = Runner(session, waiter, chosen, events.append, backend=rig.backend)
        runner.start()
        try:
            yield Bench(site, rig, runner, events)
        finally:
            ctl.db.close()


# ------------------------------------------------------------------------------- interrupts
def test_interrupt_before_the_unlock_leaves_the_line_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        before = b.site.audit_count()
        b.scan_first_line()
        b.runner.interrupt()
        assert b.last("interrupted")["action"] == "left"
        assert b.runner.session.line is None
        assert b.site.audit_count() == before


def test_interrupt_after_the_unlock_waits_for_the_latch_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch, hands="none") as b:
        before = b.site.audit_count()
        b.scan_first_line()
        assert b.runner.unlock()
        assert not b.rig.driver.lock_engaged("dio1:coil.0")  # the pulse is on
        started = b.runner.waiter.now()
        b.runner.interrupt()
        waited = b.runner.waiter.now() - started
        assert b.last("interrupted")["action"] == "relocked"
        assert 0.4 < waited < PULSE_WAIT_S  # it watched the 500 ms pulse end, no longer
        assert b.rig.driver.lock_engaged("dio1:coil.0") and b.rig.cabinet.lock_holding(
            "dio1:coil.0"
        )
        assert not b.rig.cabinet.sim_open("D1")
        assert b.site.audit_count() == before
        assert b.runner.session.line is None


def test_interrupt_before_the_bolt_retracts_watches_the_whole_pulse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock board's feedback reads a pulsed lock engaged until its bolt retracts (40 ms into
    the pulse). A Ctrl-C in that moment must not be taken for a relock: the line would be left
    while the drawer is about to open for the rest of the pulse."""
    with bench(tmp_path, monkeypatch, hands="none", cabinet="W2") as b:
        before = b.site.audit_count()
        b.scan_first_line()
        assert b.runner.unlock()
        assert b.rig.driver.lock_engaged("lb0:lock.0")  # pulsed, the bolt not yet retracted
        started = b.runner.waiter.now()
        b.runner.interrupt()
        waited = b.runner.waiter.now() - started
        assert waited >= 0.5  # it watched the 500 ms pulse to its end
        assert b.last("interrupted")["action"] == "relocked"
        assert b.rig.cabinet.lock_holding("lb0:lock.0") and not b.rig.cabinet.is_open("D1")
        assert b.site.audit_count() == before and b.runner.session.line is None


def test_a_drawer_opened_in_the_pulse_after_an_interrupt_is_not_left_as_relocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after the unlock, then the person pulls the drawer while the bolt is out:
    the access is seen, and the line is flagged for a recount instead of being left."""
    with bench(tmp_path, monkeypatch, hands="none", cabinet="W2") as b:
        b.scan_first_line()
        assert b.runner.unlock()
        cabinet = b.rig.cabinet

        def person() -> Any:
            yield cabinet.env.timeout(0.2)  # the bolt is out: the drawer opens
            assert cabinet.sim_open("D1")

        cabinet.env.process(person())
        b.runner.interrupt()
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount", flag
        assert "the pocket was open" in flag["detail"]
        assert list(out_of_service(b.site.site.ctl, "W2")) == ["D1"]


def test_interrupt_after_an_opened_line_relatched_unopened_flags_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened, two packs put in, closed; unlocked again to correct it and not opened in time.
    The latch holds again, but the pocket was opened in this line: the interrupt flags it for a
    recount (before, the line was dropped as 'relatched unopened' and the two packs went
    unrecorded)."""
    with bench(tmp_path, monkeypatch, hands="none") as b:
        b.scan_first_line("REOPEN1")
        cabinet = b.rig.cabinet
        assert b.runner.unlock()
        b.wait(0.1)
        assert cabinet.sim_open("D1")
        assert b.runner.session.poll() is State.OPEN
        cabinet.sim_add("D1-P1", 2, VIAL_G)
        cabinet.sim_close("D1")
        b.wait(3.0)  # the pulse is over, the scale settles, the lock re-arms
        for _ in range(30):
            if b.runner.session.poll() is State.CLOSED:
                break
            b.wait(0.1)
        assert b.runner.session.state is State.CLOSED
        assert b.runner.unlock()
        b.wait(b.site.site.ctl.policy.unlock_timeout_s + 1)
        assert b.runner.session.poll() is State.READY_TO_UNLOCK
        b.runner.interrupt()
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount", flag
        assert "opened in this line" in flag["detail"]
        assert list(out_of_service(b.site.site.ctl, "W1")) == ["D1"]
        assert b.runner.session.line is None


def test_interrupt_with_the_pocket_open_flags_the_drawer_out_of_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        b.scan_first_line("OPEN1")
        assert b.runner.unlock()
        assert b.runner.pull().ok
        b.wait(0.2)
        assert b.runner.session.poll() is State.OPEN
        b.runner.interrupt()
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount" and flag["drawer"] == "D1"
        assert flag["locked"] is False  # the drawer is still open
        failures = out_of_service(b.site.site.ctl, "W1")
        assert list(failures) == ["D1"] and "lot OPEN1 scanned" in failures["D1"][0].detail
        assert b.runner.progress() == (0, 4)  # a flagged line is not done
        summary = b.runner.finish()
        assert summary["flagged"] == ["D1-P1"]
        # the next session does not offer the drawer until it is recovered
        again = begin_restock(b.site.site.ctl, b.rig.driver, "W1", b.site.site.tech)
        assert again.next_line().pocket == "D2-P1"  # type: ignore[union-attr]


def test_interrupt_after_the_scale_counted_records_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        b.scan_first_line("KNOWN1")
        assert b.runner.unlock()
        assert b.runner.pull().ok
        b.wait(0.2)
        assert b.runner.session.poll() is State.OPEN
        b.rig.cabinet.sim_add("D1-P1", 6, VIAL_G)
        b.wait(2.0)
        b.rig.cabinet.sim_close("D1")
        b.wait(0.2)
        assert b.runner.session.poll() in (State.SETTLING, State.CLOSED)
        b.runner.interrupt()  # before the person confirmed the scale's 6
        assert b.last("interrupted")["action"] == "recorded"
        assert b.last("recorded")["qty"] == 6
        assert b.site.on_hand("D1-P1") == 6
        assert b.site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]


def test_interrupt_after_closing_a_pocket_without_scale_flags_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        line = b.runner.next_line("D6-P1")
        assert line is not None and line.points.sensor_kind == "none"
        assert b.runner.scan(hri(ACETAMINOPHEN, good_expiry(), "AC1")).status == "accepted"
        assert b.runner.unlock()
        assert b.runner.pull().ok
        b.wait(1.0)
        assert b.runner.session.poll() is State.OPEN
        b.rig.cabinet.sim_close("D6")
        b.wait(0.2)
        assert b.runner.session.poll() is State.CLOSED
        b.runner.interrupt()
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount" and flag["locked"] is True
        assert "closed without a count" in flag["detail"]
        assert b.site.on_hand("D6-P1") == 0


def test_an_unlock_refused_while_the_lock_rearms_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch, hands="none") as b:
        b.scan_first_line()
        assert b.runner.unlock()
        b.runner.interrupt()  # relocked, line left
        b.scan_first_line()
        started = b.runner.waiter.now()
        assert b.runner.unlock()  # the DIO's 2 s re-arm window: refused once, then waited out
        assert b.runner.waiter.now() - started > 0.5
        assert b.kinds().count("unlocked") == 2 and "error" not in b.kinds()


# ------------------------------------------------------------------------ over the wire (TCP)
def test_a_scripted_session_through_the_modbus_tcp_driver_and_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = good_expiry()
    script_path = tmp_path / "wire.toml"
    script_path.write_text(
        f"""\
[[line]]
scans = ["{hri(HEPARIN, good, "H1")}", "{hri(ONDANSETRON_VIAL, good, "W1")}"]

[[line]]
scan = "{hri(HEPARIN, good, "W2")}"

[[line]]
skip = "out of stock"

[[line]]
scan = "{hri(ACETAMINOPHEN, good, "W3")}"
quantity = 25
"""
    )
    with bench(tmp_path, monkeypatch, rig_factory=tcp_rig) as b:
        assert b.rig.backend == "wire-tcp"
        script = parse_script(script_path)
        check_against(script, b.site.site.ctl, "W1")
        b.events.clear()
        assert run_script(b.runner, script) == 0
        recorded = [(e.data["pocket"], e.data["qty"]) for e in b.events if e.kind == "recorded"]
        assert recorded == [("D1-P1", 10), ("D2-P1", 8), ("D6-P1", 25)]
        closed = [e.data["measured"] for e in b.events if e.kind == "closed"]
        assert closed == [10, 8, None]  # weighed through Modbus input registers
        assert "wrong drug" in next(e.data["reason"] for e in b.events if e.kind == "refused")
        health = b.rig.driver.health()
        assert health["dio1"].requests > 0 and health["lc1"].requests > 0
        assert all(h.online for h in health.values())
    assert [b.site.on_hand(p) for p in ("D1-P1", "D2-P1", "D3-P1", "D6-P1")] == [10, 8, 0, 25]


def test_losing_the_switches_during_an_access_flags_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        b.scan_first_line("LOST1")
        assert b.runner.unlock()
        assert b.runner.pull().ok
        b.rig.cabinet.sim_inject_fault("device_offline", "dio1")
        assert b.runner.access(lambda status: None) == "failed"
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount" and flag["locked"] is None
        assert "lost contact with the cabinet" in flag["detail"]
        assert any(e.kind == "note" and "unreadable" in e.data["text"] for e in b.events)
        assert list(out_of_service(b.site.site.ctl, "W1")) == ["D1"]


# ------------------------------------------------------------------------------- Ctrl-C held
def test_a_ctrl_c_during_a_record_is_held_until_the_record_is_whole() -> None:
    import os
    import signal

    from adc.session.interrupts import deferred_sigint, ignored_sigint

    steps: list[str] = []

    def record() -> None:
        with deferred_sigint():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")  # still runs: the interrupt is held

    with pytest.raises(KeyboardInterrupt):
        record()
    assert steps == ["after the signal"]
    with ignored_sigint(), deferred_sigint():  # inside a clean-up it stays ignored
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("clean-up")
    assert steps[-1] == "clean-up"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ----------------------------------------------------------------------------- script outcomes
def test_nobody_opening_times_out_and_the_line_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script_path = tmp_path / "nobody.toml"
    script_path.write_text(f'[[line]]\nscan = "{hri(ONDANSETRON_VIAL, good_expiry(), "N1")}"\n')
    with bench(tmp_path, monkeypatch, hands="none") as b:
        before = b.site.audit_count()
        started = b.runner.waiter.now()
        assert run_script(b.runner, parse_script(script_path)) == 1
        assert b.runner.waiter.now() - started >= b.site.site.ctl.policy.unlock_timeout_s
        assert b.last("timeout")["reason"].startswith("not opened within 30 s")
        assert b.last("unfinished")["reason"] == "not opened in time"
        assert b.site.audit_count() == before
        assert b.rig.cabinet.lock_holding("dio1:coil.0")


def test_a_recalled_lot_is_refused_with_the_recall_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adc.controller.recalls import add_recall

    with bench(tmp_path, monkeypatch) as b:
        site = b.site.site
        add_recall(site.ctl, site.pharmacist, ONDANSETRON_VIAL, "BAD7", "particulates")
        line = b.runner.next_line()
        assert line is not None
        outcome = b.runner.scan(hri(ONDANSETRON_VIAL, good_expiry(), "BAD7"))
        assert outcome.status == "refused"
        assert outcome.message == (
            f"recalled lot: GTIN {ONDANSETRON_VIAL} lot BAD7 is under recall (particulates)"
        )
        assert b.runner.session.state is State.AWAITING_SCAN  # scan another pack
        assert b.runner.scan(hri(ONDANSETRON_VIAL, good_expiry(), "GOOD7")).status == "accepted"


def test_a_count_the_scale_contradicts_is_flagged_and_the_round_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person loads 8, the script says 10 (no confirm_discrepancy): nothing is recorded as
    stock, the line is abandoned (the drawer flagged for recount), and the script goes on with
    its next line."""

    class ShortHands(SimHands):
        def put(self, line, units):  # type: ignore[no-untyped-def]
            return super().put(line, units - 2)

    script_path = tmp_path / "short.toml"
    script_path.write_text(
        f'[[line]]\nscan = "{hri(ONDANSETRON_VIAL, good_expiry(), "S1")}"\nquantity = 10\n\n'
        f'[[line]]\nscan = "{hri(HEPARIN, good_expiry(), "S2")}"\n'
    )
    with bench(tmp_path, monkeypatch) as b:
        b.runner.hands = ShortHands(b.rig.cabinet)
        assert run_script(b.runner, parse_script(script_path)) == 1
        refused = b.last("refused")["reason"]
        assert refused.startswith("the scale counts 8 units added, you entered 10")
        flag = b.last("interrupted")
        assert flag["action"] == "flagged-for-recount" and flag["state"] == "closed"
        assert flag["reason"].startswith("could not be recorded: the scale counts 8 units")
        assert "error" not in b.kinds()
        summary = b.last("summary")
        assert summary["flagged"] == ["D1-P1"]
        assert [r["pocket"] for r in summary["recorded"]] == ["D2-P1"]
        assert b.runner.session.line is None  # nothing left open in the state machine
    assert b.site.on_hand("D1-P1") == 0
    assert b.site.on_hand("D2-P1") == 6  # the short hands put 6 of 8; the scale counted them
    assert b.site.rows("SELECT kind, drawer_code FROM maintenance_event") == [("failed", "D1")]
