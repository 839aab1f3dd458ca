"""`adc restock --script --backend modbus-tcp://...` against the Modbus TCP emulator in real time.

The emulator serves a virtual cabinet in this test process, in real time (as `adc sim serve`
does); `adc restock` runs as a separate process with the real Modbus driver, so it has no hands on
the cabinet and waits for the switches like at a real cabinet. A person thread in the test plays
the technician: when a drawer's latch releases it pulls the drawer, puts the packs in and closes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adc.sim.serve import CabinetServer
from tests.conftest import run_adc
from tests.controller.site import PIN
from tests.session.helpers import (
    ACETAMINOPHEN,
    HEPARIN,
    ONDANSETRON_VIAL,
    SessionSite,
    emulator,
    good_expiry,
    hri,
)

pytestmark = pytest.mark.timeout(120)


@dataclass
class Visit:
    drawer: str
    lock: str
    pocket: str
    units: int
    unit_weight_g: float


@dataclass
class Technician:
    """Waits at each drawer in turn; pulls while the latch is released; loads; closes."""

    server: CabinetServer
    visits: list[Visit]
    done: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        cabinet = self.server.cabinet
        for visit in self.visits:
            while not self.stop.is_set():
                with self.server.lock:
                    released = not cabinet.lock_holding(visit.lock)
                    if released and cabinet.sim_open(visit.drawer):
                        break
                time.sleep(0.005)
            if self.stop.is_set():
                return
            time.sleep(0.6)
            with self.server.lock:
                cabinet.sim_add(visit.pocket, visit.units, visit.unit_weight_g)
            time.sleep(0.6)
            with self.server.lock:
                cabinet.sim_close(visit.drawer)
            self.done.append(visit.pocket)


def test_a_scripted_session_over_modbus_tcp_with_a_person_at_the_cabinet(
    session_site: SessionSite, tmp_path: Path
) -> None:
    good = good_expiry()
    script = tmp_path / "wire.toml"
    script.write_text(
        f"""\
[[line]]
scans = ["{hri(HEPARIN, good, "H1")}", "{hri(ONDANSETRON_VIAL, good, "TCP1")}"]

[[line]]
scan = "{hri(HEPARIN, good, "TCP2")}"

[[line]]
skip = "out of stock"

[[line]]
scan = "{hri(ACETAMINOPHEN, good, "TCP3")}"
quantity = 30
"""
    )
    with emulator() as (server, where):
        person = Technician(
            server,
            [
                Visit("D1", "dio1:coil.0", "D1-P1", 10, 4.6),
                Visit("D2", "dio1:coil.1", "D2-P1", 8, 4.5),
                Visit("D6", "dio1:coil.5", "D6-P1", 30, 0.55),
            ],
        )
        hands = threading.Thread(target=person.run, daemon=True)
        hands.start()
        try:
            result = run_adc(
                "restock",
                "--cabinet",
                "W1",
                "--backend",
                f"modbus-tcp://{where}",
                "--script",
                str(script),
                "--json",
                env=session_site.env(ADC_USER="technician", ADC_PIN=PIN),
                timeout=90,
            )
        finally:
            person.stop.set()
            hands.join(5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["backend"] == f"modbus-tcp://{where}"
    assert events[0]["hands"] == "the technician"  # no simulated hands over the wire
    assert not [e for e in events if e["event"] == "hands"]
    assert person.done == ["D1-P1", "D2-P1", "D6-P1"]
    closed = [e["measured"] for e in events if e["event"] == "closed"]
    assert closed == [10, 8, None]  # the scale counted through Modbus registers
    recorded = [(e["pocket"], e["qty"]) for e in events if e["event"] == "recorded"]
    assert recorded == [("D1-P1", 10), ("D2-P1", 8), ("D6-P1", 30)]
    opened = [e["after_s"] for e in events if e["event"] == "opened"]
    assert all(0 <= s < 5 for s in opened)  # real seconds: the person pulled at the click
    assert [session_site.on_hand(p) for p in ("D1-P1", "D2-P1", "D3-P1", "D6-P1")] == [
        10,
        8,
        0,
        30,
    ]
