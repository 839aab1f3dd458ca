"""A drawer out of service on the refill list (issue 20, item 2): the list and the session's board
say why a line cannot be served and what to do, and the round does not end "Refill list done" while
lines were not served."""

from __future__ import annotations

import json
import sys

import pexpect
import pytest

from adc.controller import maintenance
from tests.conftest import ROOT, run_adc
from tests.controller.site import CABINET, PIN
from tests.session.helpers import SessionSite

pytestmark = pytest.mark.timeout(90)

RECOVER = "adc diag recover --drawer D6"


def take_out(site: SessionSite, drawer: str) -> None:
    maintenance.mark_failed(
        site.site.ctl, site.site.service, CABINET, drawer, "open-failed", "jammed bolt"
    )


def test_report_refill_says_why_a_line_cannot_be_served(session_site: SessionSite) -> None:
    take_out(session_site, "D6")
    listed = run_adc("report", "refill", "--json", env=session_site.env())
    assert listed.returncode == 0, listed.stderr
    lines = {line["pocket"]: line for line in json.loads(listed.stdout)}
    reason = lines["D6-P1"]["out_of_service"]
    assert "drawer D6 out of service" in reason and "open-failed" in reason
    assert "jammed bolt" in reason and RECOVER in reason
    assert lines["D1-P1"]["out_of_service"] is None
    shown = run_adc("report", "refill", env=session_site.env(COLUMNS="250"))
    row = next(text for text in shown.stdout.splitlines() if "D6-P1" in text)
    assert "cannot serve" in row and RECOVER in row


def test_a_session_does_not_call_the_round_done_when_a_drawer_is_out(
    session_site: SessionSite,
) -> None:
    for drawer in ("D1", "D2", "D3", "D6"):  # every line's drawer: nothing can be offered
        take_out(session_site, drawer)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "adc", "restock", "--cabinet", CABINET, "--user", "technician",
         "--backend", "sim:"],
        env=session_site.env(COLUMNS="250"), cwd=str(ROOT), dimensions=(60, 250), encoding="utf-8",
        timeout=20,
    )  # fmt: skip
    try:
        child.expect("PIN for technician:")
        child.sendline(PIN)
        child.expect("cannot serve: drawer D6 out of service")
        index = child.expect(["Refill round over, 4 line\\(s\\) not served", "Refill list done"])
        assert index == 0, "the round said done with every line unserved"
        child.expect(RECOVER)
        child.expect("4 not served")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_a_round_that_served_everything_is_done() -> None:
    from adc.session.terminal import end_of_round

    assert "Refill list done" in end_of_round([])
    said = end_of_round([{"pocket": "D6-P1", "reason": f"drawer D6 out of service: {RECOVER}"}])
    assert "done" not in said and "D6-P1" in said and RECOVER in said
