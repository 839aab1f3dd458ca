"""Restock screen details (issue 20 item 9), through a real pseudo-terminal: a declined
short-dated pack is dropped and another asked for; a done line's need is what is left; after
`add N` the prompt says what remains."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pexpect
import pytest

from adc.controller import cabinets
from adc.controller.restock import State, begin_restock
from adc.errors import Refused
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import ACETAMINOPHEN, CABINET, build_site, datamatrix
from tests.session.helpers import ONDANSETRON_VIAL, SessionSite, good_expiry, hri, today
from tests.session.test_terminal import log_in, terminal

pytestmark = pytest.mark.timeout(90)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_declining_a_short_dated_pack_drops_it_and_asks_for_another(
    session_site: SessionSite,
) -> None:
    soon = today() + timedelta(days=10)
    with terminal(session_site) as child:
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, soon, "SD1"))
        child.expect("lot SD1")
        child.expect("Short-dated: stock it anyway")
        child.sendline("n")
        child.expect("Not stocked: lot SD1 declined")
        frame = ANSI.sub("", child.before)
        assert "scanned: lot SD1" not in frame and "scan a pack of this item" in frame
        assert "stock it only if" not in frame  # the warning went with the pack
        # the same question is not asked again: the screen wants another pack
        asked = child.expect(["Short-dated: stock it anyway", r"Scan a pack \(the scanner"])
        assert asked == 1
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "GOOD1"))
        child.expect("lot GOOD1")
        child.expect("unlock drawer D1")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    assert session_site.rows("SELECT lot FROM stock_lot") == []


def test_after_add_the_prompt_says_what_remains_and_a_done_line_needs_nothing(
    session_site: SessionSite,
) -> None:
    with terminal(session_site) as child:
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "ON1"))
        child.expect("unlock drawer D1")
        child.sendline("open")
        child.expect("put 10 into pocket")
        child.sendline("add 4")
        child.expect("4 put in: put 6 more into pocket")
        child.sendline("add 6")
        child.expect("10 put into pocket")
        child.sendline("close")
        child.expect("The scale counts 10 added")
        child.sendline("")
        child.expect("1 of 4 lines done")
        child.expect("Scan a pack")
        board = ANSI.sub("", child.before)
        row = next(line for line in board.splitlines() if "D1-P1" in line and "done" in line)
        cells = [c.strip() for c in row.split("│")]
        # │ ✓ │ D1-P1 │ item │ on hand │ par │ need │ status │
        on_hand, par, need = (int(c) for c in cells[4:7])
        assert (on_hand, par, need) == (10, 10, 0), row
        child.sendline("quit")
        child.expect(pexpect.EOF)
    assert session_site.on_hand("D1-P1") == 10


def test_reject_short_dated_is_a_controller_step(tmp_path: Path) -> None:
    driver = sim_driver("tcp-6drawer")
    site = build_site(f"sqlite:///{tmp_path / 'r.db'}", SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "tcp-6drawer")
    site.assign("D1-P1", ACETAMINOPHEN, par=20, critical_low=2, max_qty=40)
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    line = session.select("D1-P1")
    soon = site.ctl.today() + timedelta(days=10)
    session.scan(datamatrix(ACETAMINOPHEN, soon, "SD2"))
    assert session.state is State.NEEDS_CONFIRMATION
    session.reject_short_dated()
    assert session.state is State.AWAITING_SCAN and line.scan is None and line.verdict is None
    with pytest.raises(Refused):
        session.confirm_short_dated()  # nothing left to accept
    session.scan(datamatrix(ACETAMINOPHEN, site.ctl.today() + timedelta(days=400), "OK1"))
    assert session.state is State.READY_TO_UNLOCK and line.scan is not None
    site.ctl.db.close()
