"""The station's supervision over the sim backend, stepped in simulated time: each case asserts
the alarm, its maintenance event and its audit entry, and the recount flag where one is due."""

from __future__ import annotations

from adc.controller import maintenance
from adc.controller.access import PocketAccess
from tests.controller.site import CABINET
from tests.station.conftest import Rig


def _kinds(alarms: list) -> list[str]:
    return [a.kind for a in alarms]


def test_quiet_cabinet_raises_nothing(rig: Rig) -> None:
    assert rig.wait(3.0) == []
    assert rig.events("alarm-unauthorized-access") == []


def test_forced_drawer_opening_is_an_unauthorized_access_and_a_recount(rig: Rig) -> None:
    # D2 holds morphine; its switch reads open with no access on record (forced, or a key)
    rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.1", active=False)
    raised = rig.wait(0.3)
    assert _kinds(raised) == ["alarm-unauthorized-access", "failed"]
    (event,) = rig.events("alarm-unauthorized-access")
    assert event.drawer_code == "D2" and "controlled substances" in event.detail
    (audited,) = rig.audit("maintenance.alarm")
    assert audited["kind"] == "alarm-unauthorized-access" and audited["id"] == event.id
    flagged = rig.audit("maintenance.failed")
    assert [f["drawer"] for f in flagged] == ["D2"]
    out = maintenance.out_of_service(rig.site.ctl, CABINET)
    assert list(out) == ["D2"]
    # once per opening: still open, no second alarm; left open past the limit: door-open
    rig.station.left_open_s = 2.0
    assert _kinds(rig.wait(2.5)) == ["alarm-door-open"]
    assert rig.events("alarm-door-open")[0].drawer_code == "D2"


def test_a_drawer_without_controlled_stock_opened_is_an_alarm_without_recount(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.0", active=False)
    assert _kinds(rig.wait(0.3)) == ["alarm-unauthorized-access"]
    assert maintenance.out_of_service(rig.site.ctl, CABINET) == {}


def _access(rig: Rig, pocket: str) -> PocketAccess:
    return PocketAccess.for_pocket(
        rig.site.ctl, rig.driver, CABINET, rig.site.nurse, pocket, "withdrawal"
    )


def test_an_access_on_record_covers_its_opening(rig: Rig) -> None:
    access = _access(rig, "D1-P1")
    access.unlock()
    rig.wait(0.1)
    assert rig.cabinet.sim_open("D1")
    rig.wait(0.5)
    rig.cabinet.sim_take("D1-P1", 2)
    rig.cabinet.sim_close("D1")
    for _ in range(30):
        rig.wait(0.1)
        access.poll()
    access.finish("recorded")
    assert rig.wait(3.0) == []
    assert rig.events("alarm-unauthorized-access") == []
    assert rig.events("alarm-unrecorded-change") == []


def test_unrecorded_removal_from_a_pocket_outside_the_access(rig: Rig) -> None:
    access = _access(rig, "D1-P1")  # a matrix drawer: D1-P2 is within reach too
    access.unlock()
    rig.wait(0.1)
    assert rig.cabinet.sim_open("D1")
    rig.wait(0.5)
    rig.cabinet.sim_take("D1-P2", 3)
    rig.cabinet.sim_close("D1")
    raised = []
    for _ in range(30):
        raised += rig.wait(0.1)
        access.poll()
    access.finish("recorded")
    # the station started a moment before: its noise estimate rests on a few readings and is
    # widened to its confidence limit, so the change must persist a little longer to be told
    raised += rig.wait(30.0)
    assert _kinds(raised) == ["alarm-unrecorded-change", "failed"]
    (event,) = rig.events("alarm-unrecorded-change")
    assert event.pocket_code == "D1-P2" and "about 3 taken" in event.detail
    assert [a["pocket"] for a in rig.audit("maintenance.alarm")] == ["D1-P2"]
    assert [f["pocket"] for f in rig.audit("maintenance.failed")] == ["D1-P2"]
    assert list(maintenance.out_of_service(rig.site.ctl, CABINET)) == ["D1"]


def test_power_loss_flags_controlled_drawers_for_recount(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("power_loss")
    outage = rig.wait(1.0)
    assert "alarm-device-offline" not in _kinds(outage)  # all at once: a power loss
    rig.cabinet.sim_clear_fault("power_loss")
    raised = rig.wait(1.5)
    assert "alarm-power-loss" in _kinds(raised)
    assert list(maintenance.out_of_service(rig.site.ctl, CABINET)) == ["D2"]
    cabinet_wide = [e for e in rig.events("alarm-power-loss") if e.drawer_code is None]
    assert len(cabinet_wide) == 1
    assert [f["drawer"] for f in rig.audit("maintenance.failed")] == ["D2"]


def test_one_device_offline_is_an_alarm(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("device_offline", "lc2")
    raised = rig.wait(0.5)
    assert _kinds(raised) == ["alarm-device-offline"]
    assert rig.events("alarm-device-offline")[0].detail == "device lc2 does not answer"


# ------------------------------------------------------------ the scale rules, pure and seeded
# `supervision.evaluate` on constructed snapshots at the station's slow rate (1 s): a noisy
# load cell (seeded Gaussian readings) must raise nothing over hours, a real change must.
import random  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402

from adc.controller import supervision  # noqa: E402
from adc.controller.supervision import (  # noqa: E402
    DrawerInfo,
    Layout,
    OpenAccess,
    PocketInfo,
    WatchState,
)
from adc.drivers.base import Quality, Snapshot, WeightReading  # noqa: E402

SWITCH, SENSOR = "dio1:di.0", "lc1:ch.0"
T0 = datetime(2026, 3, 2, 8, 0)


def _layout(unit_g: float) -> Layout:
    pocket = PocketInfo("D1-P1", "D1", None, None, SENSOR, unit_g, controlled=True)
    return Layout("C1", {"D1": DrawerInfo("D1", "lb1:0", SWITCH, ("D1-P1",))}, {"D1-P1": pocket})


class Scale:
    """A pocket on a noisy load cell, watched at 1 s: `run` feeds it readings and returns the
    findings with the second each came."""

    def __init__(self, unit_g: float, sigma_g: float, seed: int, level_g: float = 120.0):
        self.layout = _layout(unit_g)
        self.rng = random.Random(seed)
        self.sigma, self.level = sigma_g, level_g
        self.state, self.t = WatchState(), 0
        self.shut, self.accesses = True, []  # type: ignore[var-annotated]
        self.on_hand = 20

    def reading(self, quality: Quality = Quality.OK) -> WeightReading:
        return WeightReading(self.level + self.rng.gauss(0.0, self.sigma), quality)

    def run(self, seconds: int, quality: Quality = Quality.OK) -> list[tuple[int, object]]:
        out = []
        for _ in range(seconds):
            self.t += 1
            snap = Snapshot(
                time=float(self.t),
                inputs={SWITCH: self.shut},
                weights={SENSOR: self.reading(quality)},
            )
            self.state, found = supervision.evaluate(
                self.state,
                snap,
                self.accesses,
                self.layout,
                T0 + timedelta(seconds=self.t),
                recorded={"D1-P1": self.on_hand},
            )
            out += [(self.t, f) for f in found]
        return out


def _kinds_of(found: list[tuple[int, object]]) -> list[str]:
    return [f.kind for _, f in found]  # type: ignore[attr-defined]


def test_a_noisy_quiet_pocket_raises_nothing() -> None:
    """σ = 0.3 g on 0.5 g units: a single reading is 0.6 unit of noise, and the old rule (one
    reading against one reading) alarmed; two hours of readings on each of three seeds: none."""
    for seed in (1, 2, 3):
        scale = Scale(0.5, 0.3, seed)
        assert scale.run(7200) == [], f"seed {seed}"


def test_an_outlier_reference_raises_nothing() -> None:
    scale = Scale(0.5, 0.3, 4)
    scale.level += 1.2  # the first look reads 4 σ high (the level it would have kept)
    scale.run(1)
    scale.level -= 1.2
    assert scale.run(3600) == []
    # and after an access: the first reading once it has settled is the outlier
    scale.accesses = [OpenAccess(1, "D1", "D1-P1", "nurse", "withdrawal")]
    scale.shut = False
    scale.run(5)
    scale.shut, scale.accesses = True, []
    scale.level += 1.2
    scale.run(int(supervision.SETTLE_S) + 1)
    scale.level -= 1.2
    assert scale.run(3600) == []


def _removed(unit_g: float, sigma_g: float, seed: int, *, exact: bool = True) -> int:
    """Seconds from one unit taken (no access) to its alarm (`exact`: the alarm says 1 taken;
    on a cell noisier than a unit the mean may still round to 2)."""
    scale = Scale(unit_g, sigma_g, seed)
    assert scale.run(600) == []
    scale.level -= unit_g
    found = scale.run(300)
    assert _kinds_of(found) == ["alarm-unrecorded-change"], f"seed {seed}"
    (t, finding), start = found[0], 600
    assert finding.recount == "failed" and finding.pocket == "D1-P1"  # type: ignore[attr-defined]
    assert ("about 1 taken" if exact else "taken") in finding.detail  # type: ignore[attr-defined]
    return t - start


def test_one_unit_removed_with_no_access_is_an_alarm() -> None:
    # the scenarios' cell (σ 0.2 g) and tablets (0.55 g): within a few seconds of confirmation
    quick = [_removed(0.55, 0.2, seed) for seed in range(10)]
    assert max(quick) <= 30, quick
    assert min(quick) >= supervision.CONFIRM_S  # never on one reading
    # a noisier cell (σ 0.3 g, 0.6 of a unit): told apart from its noise, later but surely
    slow = [_removed(0.5, 0.3, seed, exact=False) for seed in range(10)]
    assert max(slow) <= 150, slow
    # several units: as soon as the change has persisted for the confirmation
    scale = Scale(0.55, 0.2, 11)
    scale.run(600)
    scale.level -= 3 * 0.55
    found = scale.run(30)
    assert _kinds_of(found) == ["alarm-unrecorded-change"]
    assert found[0][0] - 600 <= supervision.CONFIRM_S + 2
    assert "about 3 taken" in found[0][1].detail  # type: ignore[attr-defined]


def _after_access(taken: int, recorded_taken: int, seed: int) -> list[tuple[int, object]]:
    scale = Scale(0.55, 0.2, seed)
    assert scale.run(300) == []
    scale.accesses = [OpenAccess(1, "D1", "D1-P1", "nurse", "withdrawal")]
    scale.run(1)
    scale.shut = False
    scale.run(5)
    scale.level -= taken * 0.55
    scale.on_hand -= recorded_taken
    scale.shut = True
    scale.run(2)
    scale.accesses = []
    return scale.run(120)


def test_the_difference_after_an_access_is_still_caught() -> None:
    for seed in range(5):
        found = _after_access(taken=2, recorded_taken=1, seed=seed)
        assert _kinds_of(found) == ["alarm-unrecorded-change"], seed
        detail = found[0][1].detail  # type: ignore[attr-defined]
        assert "still differs" in detail and "moved -2" in detail and "the record -1" in detail
        assert found[0][0] - (300 + 1 + 5 + 2) <= supervision.SETTLE_S + 20
        # as recorded: nothing
        assert _after_access(taken=2, recorded_taken=2, seed=seed) == []


def test_a_scale_that_cannot_weigh_is_one_alarm_per_episode() -> None:
    scale = Scale(0.55, 0.2, 5)
    scale.run(60)
    found = scale.run(100, Quality.UNSTABLE)  # never settles
    assert _kinds_of(found) == ["alarm-sensor-fault"]
    t, finding = found[0]
    assert t - 60 >= supervision.SENSOR_FAULT_S
    assert finding.recount is None and finding.point == SENSOR  # type: ignore[attr-defined]
    assert "blind" in finding.detail  # type: ignore[attr-defined]
    assert scale.run(10) == []  # reads "ok" again: the episode ends
    assert _kinds_of(scale.run(40, Quality.FAULT)) == ["alarm-sensor-fault"]
    # open, or under an access: a scale settling is not judged
    scale.run(5)
    scale.accesses = [OpenAccess(2, "D1", "D1-P1", "tech", "restock")]
    assert scale.run(60, Quality.UNSTABLE) == []
    scale.shut = False
    assert scale.run(60, Quality.UNSTABLE) == []


def test_looking_again_at_one_snapshot_changes_nothing() -> None:
    """The scenario watch skips polls where nothing can change: a quiet pocket's state must not
    move when the same snapshot is evaluated later (a window, when open, moves by time)."""
    scale = Scale(0.55, 0.2, 6)
    scale.run(120)
    snap = Snapshot(time=0.0, inputs={SWITCH: True}, weights={SENSOR: scale.reading()})
    state, _ = supervision.evaluate(
        scale.state, snap, [], scale.layout, T0 + timedelta(seconds=121)
    )
    if state.scales["D1-P1"].since is None:
        again, found = supervision.evaluate(
            state, snap, [], scale.layout, T0 + timedelta(seconds=500)
        )
        assert again == state and found == []
