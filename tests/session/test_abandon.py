"""Abandoning a restock line once its pocket was opened: in the runner, in a script (`abandon`)
and at the terminal (`abandon REASON`, through a real pseudo-terminal).

Nothing is recorded as stock; the drawer is flagged for a blind recount (a `failed` maintenance
event with the reason, audited as `restock.abandoned`, out of service until `adc diag recover`);
the round goes on with the next line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from adc.controller.maintenance import out_of_service
from adc.controller.restock import State
from adc.errors import BadInput, Refused
from adc.session.events import KINDS
from adc.session.script import parse_script, run_script
from tests.session.helpers import HEPARIN, ONDANSETRON_VIAL, SessionSite, good_expiry, hri
from tests.session.test_runner import VIAL_G, bench
from tests.session.test_script import restock, toml_string
from tests.session.test_terminal import log_in, terminal


# ------------------------------------------------------------------------------------ runner
def test_the_runner_abandons_an_open_line_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bench(tmp_path, monkeypatch) as b:
        b.scan_first_line("RA1")
        with pytest.raises(Refused, match="nothing to abandon"):
            b.runner.abandon("changed my mind")  # nothing was unlocked yet
        assert b.runner.session.state is State.READY_TO_UNLOCK
        assert b.runner.unlock()
        assert b.runner.pull().ok
        b.wait(0.2)
        assert b.runner.session.poll() is State.OPEN
        b.rig.cabinet.sim_add("D1-P1", 3, VIAL_G)
        with pytest.raises(BadInput, match="say why line D1-P1 is abandoned"):
            b.runner.abandon("")
        flag = b.runner.abandon("drawer jams half open")
        assert b.last("abandoned") == {**b.last("abandoned"), **flag}
        assert (flag["pocket"], flag["drawer"], flag["locked"]) == ("D1-P1", "D1", False)
        assert flag["reason"] == "drawer jams half open"
        assert b.runner.session.state is State.IDLE and b.runner.session.line is None
        row = next(r for r in b.runner.board if r.pocket == "D1-P1")
        assert (row.status, row.result) == ("flagged", "recount required")
        assert list(out_of_service(b.site.site.ctl, "W1")) == ["D1"]
        line = b.runner.next_line()  # the round goes on; D1 is not offered
        assert line is not None and line.pocket == "D2-P1"
        b.runner.leave("end of test")
        summary = b.runner.finish()
        assert summary["flagged"] == ["D1-P1"]
    assert b.site.on_hand("D1-P1") == 0
    assert b.site.rows("SELECT kind, drawer_code, pocket_code FROM maintenance_event") == [
        ("failed", "D1", "D1-P1")
    ]


# ------------------------------------------------------------------------------------ script
def test_a_scripted_abandon_flags_the_drawer_and_the_script_goes_on(
    session_site: SessionSite, tmp_path: Path
) -> None:
    good = good_expiry()
    script = tmp_path / "abandon.toml"
    script.write_text(
        f"""\
[[line]]                       # D1-P1: loaded, closed, then given up
scan = {toml_string(hri(ONDANSETRON_VIAL, good, "AB1"))}
quantity = 4
abandon = "scale disagrees, cannot recount"

[[line]]                       # D2-P1: the next line is done as usual
scan = {toml_string(hri(HEPARIN, good, "AB2"))}
"""
    )
    result = restock(session_site, "--backend", "sim:", "--script", str(script), "--json")
    assert result.returncode == 1, result.stderr  # a drawer needs service
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["event"] for e in events} <= set(KINDS)
    (abandoned,) = [e for e in events if e["event"] == "abandoned"]
    assert (abandoned["pocket"], abandoned["drawer"], abandoned["locked"]) == ("D1-P1", "D1", True)
    assert abandoned["reason"] == "scale disagrees, cannot recount"
    kinds = [e["event"] for e in events]
    assert kinds.index("abandoned") < kinds.index("recorded")  # then D2-P1 was recorded
    summary = events[-1]
    assert summary["flagged"] == ["D1-P1"]
    assert [r["pocket"] for r in summary["recorded"]] == ["D2-P1"]
    assert session_site.on_hand("D1-P1") == 0 and session_site.on_hand("D2-P1") == 8
    ((kind, drawer, detail),) = session_site.rows(
        "SELECT kind, drawer_code, detail FROM maintenance_event"
    )
    assert (kind, drawer) == ("failed", "D1")
    assert "restock line abandoned: scale disagrees, cannot recount (closed; locked)" in detail
    assert "lot AB1 scanned, the scale counted 4 added" in detail
    actions = [a for (a,) in session_site.rows("SELECT action FROM audit_entry ORDER BY seq")]
    assert actions[-2:] == ["restock.abandoned", "stock.refill"]


def test_a_scripted_abandon_in_text_output(session_site: SessionSite, tmp_path: Path) -> None:
    script = tmp_path / "abandon.toml"
    script.write_text(
        f"[[line]]\nscan = {toml_string(hri(ONDANSETRON_VIAL, good_expiry(), 'AB3'))}\n"
        'abandon = "wrong pocket loaded"\n'
    )
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 1
    assert "D1-P1 abandoned (wrong pocket loaded), flagged for recount (locked)" in result.stdout
    assert "drawer D1 is out of service until `adc diag recover` recounts it" in result.stdout
    assert "1 flagged for recount" in result.stdout


def test_abandon_problems_in_a_script_are_listed_and_nothing_is_done(
    session_site: SessionSite, tmp_path: Path
) -> None:
    scan = toml_string(hri(ONDANSETRON_VIAL, good_expiry(), "AB4"))
    script = tmp_path / "bad.toml"
    script.write_text(
        f"""\
[[line]]
scan = {scan}
abandon = "  "

[[line]]
skip = "out of stock"
abandon = "why not"

[[line]]
scan = {scan}
abandon = "scale disagrees"
confirm_discrepancy = true
"""
    )
    before = session_site.audit_count()
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 2
    err = result.stderr
    for number, message in (
        (3, 'abandon takes the reason, e.g. "scale disagrees, cannot recount"'),
        (7, "a skipped line opens nothing: there is nothing to abandon"),
        (12, "an abandoned line records nothing: confirm_discrepancy has no effect"),
    ):
        assert any(
            line.strip().startswith(f"{script}:{number}: ") and message in line
            for line in err.splitlines()
        ), (number, message, err)
    assert session_site.audit_count() == before


def test_parse_keeps_the_abandon_reason(tmp_path: Path) -> None:
    script = tmp_path / "ok.toml"
    script.write_text(
        f"[[line]]\nscan = {toml_string(hri(ONDANSETRON_VIAL, good_expiry(), 'AB5'))}\n"
        'abandon = "  scale\\n disagrees "\n'
    )
    assert parse_script(script).lines[0].abandon == "scale disagrees"


def test_a_scripted_abandon_in_process_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "one.toml"
    script.write_text(
        f"[[line]]\nscan = {toml_string(hri(ONDANSETRON_VIAL, good_expiry(), 'AB6'))}\n"
        'abandon = "called away"\n'
    )
    with bench(tmp_path, monkeypatch) as b:
        assert run_script(b.runner, parse_script(script)) == 1
        assert b.last("summary")["flagged"] == ["D1-P1"]
        assert b.runner.session.line is None


# ---------------------------------------------------------------------------------- terminal
pty = pytest.mark.timeout(90)


@pty
def test_abandon_at_the_terminal_when_the_scale_disagrees(session_site: SessionSite) -> None:
    before = session_site.audit_count()
    with terminal(session_site) as child:
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "TA1"))
        child.expect("unlock drawer D1")
        child.sendline("open")
        child.expect("opened drawer D1")
        child.sendline("add 8")
        child.expect("put 8 into D1-P1")
        child.sendline("close")
        child.expect("The scale counts 8 added")
        child.expect("abandon REASON = give the line up")
        child.sendline("10")
        child.expect("Record 10 anyway and open a discrepancy for review")
        child.sendline("abandon")  # no reason: asked for one, the line stays
        child.expect("Say why")
        child.expect("The scale counts 8 added")
        child.sendline("abandon loaded 10, scale says 8, cannot recount")
        child.expect("D1-P1 abandoned")
        child.expect("flagged for recount")
        child.expect("Scan a pack")  # the next line: D2-P1
        child.sendline("quit")
        child.expect("session ended")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    ((kind, drawer, detail),) = session_site.rows(
        "SELECT kind, drawer_code, detail FROM maintenance_event"
    )
    assert (kind, drawer) == ("failed", "D1")
    assert "loaded 10, scale says 8, cannot recount (closed; locked) by technician" in detail
    new = session_site.rows(f"SELECT action FROM audit_entry WHERE seq > {before}")
    assert new == [("restock.abandoned",)]
    assert session_site.on_hand("D1-P1") == 0


@pty
def test_abandon_at_the_terminal_while_the_drawer_is_open(session_site: SessionSite) -> None:
    with terminal(session_site) as child:
        log_in(child)
        child.sendline("abandon nothing here")  # before anything was opened
        child.expect("Nothing was opened on this line")
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "TA2"))
        child.expect("unlock drawer D1")
        child.sendline("open")
        child.expect("opened drawer D1")
        child.sendline("add 2")
        child.expect("put 2 into D1-P1")
        child.sendline("abandon drawer jammed open")
        child.expect("D1-P1 abandoned")
        child.expect("NOT locked: close it")
        child.expect("Scan a pack")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    assert session_site.rows("SELECT kind, drawer_code FROM maintenance_event") == [
        ("failed", "D1")
    ]
    assert session_site.on_hand("D1-P1") == 0
