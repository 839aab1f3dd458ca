"""Build tests/fleet/data/wave1-v5.db: a database written by the wave-1 code (schema v5, one
audit chain for everything), which the v7 migration tests upgrade.

Not a test. It must run against the wave-1 source, not this tree:

    git archive --format=tar 923e737^ adc tests/controller/site.py | tar -x -C /tmp/wave1
    PYTHONPATH=/tmp/wave1 .venv/bin/python tests/fleet/make_wave1_db.py tests/fleet/data/wave1-v5.db
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import adc
from adc.controller import counts, inventory
from adc.controller.db import current_version
from adc.controller.gs1 import parse_scan
from tests.controller.site import ACETAMINOPHEN, CABINET, HEPARIN, build_site, datamatrix


def main(out: Path) -> None:
    assert current_version() == 5, f"run with the wave-1 source on PYTHONPATH, not {adc.__file__}"
    out.unlink(missing_ok=True)
    site = build_site(f"sqlite:///{out}")
    site.assign("D1-P1", ACETAMINOPHEN, par=20, critical_low=2, max_qty=40)
    site.assign("D1-P2", HEPARIN, par=20, critical_low=2, max_qty=40)
    for pocket, gtin in (("D1-P1", ACETAMINOPHEN), ("D1-P2", HEPARIN)):
        scan = parse_scan(datamatrix(gtin, date(2027, 6, 30), f"W1{pocket[-1]}"))
        inventory.refill(site.ctl, site.tech, CABINET, pocket, scan, 12)
        for _ in range(3):
            site.clock.advance(300)  # type: ignore[attr-defined]
            inventory.remove(site.ctl, site.nurse, CABINET, pocket, 2)
        counts.count_pocket(site.ctl, site.nurse, CABINET, pocket, 6)
    site.ctl.db.close()
    print(f"{out}: schema v{current_version()} written by {adc.__file__}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
