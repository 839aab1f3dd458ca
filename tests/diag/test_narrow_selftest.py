"""`adc diag selftest` at 80 columns (issue 20 item 7): the witness a controlled substance needs
is said once, not as an 11-line message on every lid's lock and switch row."""

from __future__ import annotations

from tests.controller.site import MORPHINE_CART, Site
from tests.diag.test_cli import adc
from tests.diag.test_cli import env as env  # a fixture
from tests.diag.test_maintenance import stock


def test_the_witness_message_is_said_once_at_80_columns(site: Site, env: dict[str, str]) -> None:
    for pocket in ("D3-P1", "D3-P2", "D3-P3"):
        stock(site, pocket, MORPHINE_CART, 2)
    sim = ["--cabinet", "W1", "--backend", "sim:tcp-6drawer", "--drawer", "D3"]
    result = adc({**env, "COLUMNS": "80"}, "selftest", *sim)
    assert result.returncode == 1
    out = " ".join(result.stdout.split())  # the note may wrap
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert out.count("give --witness") == 1, out
    assert out.count("needs a pharmacist witness") == 1, out
    for pocket in ("D3-P1", "D3-P2", "D3-P3"):
        assert pocket in out
    assert out.count("no witness") == 6  # on each refused lock and switch
    assert len(result.stdout.splitlines()) < 50, result.stdout
