"""What a scenario file says: the pydantic models of `scenarios/*.toml` and their defaults.

A scenario describes a ward (or a hospital) for a number of simulated days: which cabinets (a
hardware profile each, the pockets' items and levels), the demand on each item, the people (nurses,
technicians, pharmacists, a service engineer) with their task times and error rates, hardware
faults (rates or scripted), lots that expire and recalls that arrive. Everything is data so a test
engineer changes a number, not code; the loader (`adc.scenario.loader`) checks it like a
hardware profile, with key path and line for every problem.

Times of day are "HH:MM" in the site's time zone; days count from 0 (the start date).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from adc.scenario.diverters import DiverterSpec
from adc.scenario.study_spec import StudySpec

SPEC_VERSION = "1.0"
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

# A typical ward's removals by hour of day (relative weights): quiet nights, busy mornings.
DEFAULT_HOURLY = [
    0.3, 0.2, 0.2, 0.2, 0.3, 0.5, 0.8, 1.2, 1.5, 1.4, 1.2, 1.1,
    1.3, 1.2, 1.0, 1.0, 1.1, 1.3, 1.2, 1.0, 0.9, 1.0, 0.7, 0.4,
]  # fmt: skip


def minutes_of_day(text: str) -> int:
    """`"16:15"` → 975 (minutes after midnight)."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 23:59)")
    return int(match.group(1)) * 60 + int(match.group(2))


def _check_time(text: str) -> str:
    minutes_of_day(text)
    return text


TimeOfDay = Annotated[
    str, AfterValidator(_check_time), Field(description="HH:MM in the site's time zone.")
]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StockSpec(_Strict):
    """One pocket's item, levels and demand."""

    pocket: str = Field(description="Pocket id in the cabinet's hardware profile.")
    item: str = Field(description="The item: its GTIN or NDC in the formulary.")
    par: int = Field(ge=1)
    critical_low: int = Field(ge=0)
    max: int = Field(ge=1)
    demand_per_day: float = Field(0.0, ge=0, description="Mean removals a day (Poisson).")
    dose: int = Field(1, ge=1, description="Units taken per removal.")
    initial: int | None = Field(None, ge=0, description="Units loaded at start (default: par).")
    initial_expiry_days: int | None = Field(
        None,
        ge=1,
        description="The initial lot expires after this many days (default: the shelf life).",
    )

    @model_validator(mode="after")
    def _levels(self) -> StockSpec:
        if not self.critical_low < self.par <= self.max:
            raise ValueError(
                f"levels must satisfy critical_low < par <= max, got critical_low "
                f"{self.critical_low}, par {self.par}, max {self.max}"
            )
        if self.initial is not None and self.initial > self.max:
            raise ValueError(f"initial {self.initial} is more than max {self.max}")
        return self


class CabinetSpec(_Strict):
    """A cabinet (or `count` alike ones, ids `<id>01`, `<id>02`, ...)."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,28}$")
    profile: str = Field(description="Shipped profile name or a path (relative to the scenario).")
    count: int = Field(1, ge=1, le=200)
    stock: list[StockSpec] = Field(default_factory=list)


class DemandSpec(_Strict):
    """How removals spread over a day: an hourly pattern plus medication-pass peaks."""

    hourly: list[float] = Field(default_factory=lambda: list(DEFAULT_HOURLY))
    med_pass: list[TimeOfDay] = Field(default_factory=lambda: ["08:00", "12:00", "17:00", "21:00"])
    med_pass_share: float = Field(
        0.4, ge=0.0, le=1.0, description="Share of a day's removals that fall in the passes."
    )
    med_pass_minutes: float = Field(60.0, gt=0, le=360, description="Width of each pass.")

    @field_validator("hourly")
    @classmethod
    def _hourly(cls, value: list[float]) -> list[float]:
        if len(value) != 24 or any(v < 0 for v in value) or sum(value) <= 0:
            raise ValueError("hourly needs 24 weights, none negative, not all zero")
        return value


class NurseSpec(_Strict):
    per_cabinet: int = Field(3, ge=1, le=50, description="Nurses (user accounts) per cabinet.")
    take_s: float = Field(10.0, gt=0, description="Time at the cabinet for one removal.")
    count_back: Literal["controlled", "all"] = Field(
        "controlled", description="Which pockets get a blind count-back on every removal."
    )


class DelaySpec(_Strict):
    """One refill round that starts late (or not at all)."""

    day: int = Field(ge=0)
    time: TimeOfDay
    minutes: float = Field(0.0, ge=0)
    skip: bool = False


class TechnicianSpec(_Strict):
    count: int = Field(1, ge=0, le=100)
    refill_times: list[TimeOfDay] = Field(default_factory=lambda: ["04:45", "16:15"])
    line_s: tuple[float, float] = Field((11.0, 21.0), description="Time per refill line, min-max.")
    travel_s: float = Field(120.0, ge=0, description="Walking from one cabinet to the next.")
    shelf_life_days: int = Field(365, ge=2, description="Expiry of delivered lots.")
    delays: list[DelaySpec] = Field(default_factory=list)

    @field_validator("line_s")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("line_s is [min, max] seconds with 0 < min <= max")
        return value


class PharmacistSpec(_Strict):
    count: int = Field(1, ge=0, le=50)
    rounds: list[TimeOfDay] = Field(default_factory=lambda: ["07:00", "15:00", "23:00"])
    resolve_s: float = Field(240.0, gt=0, description="Time to investigate one discrepancy.")
    resolver: str = Field(
        "auto",
        description="How a discrepancy is resolved: 'auto' (the controller's API if it has one), "
        "'none', or 'module:function'.",
    )


class ServiceSpec(_Strict):
    respond_min: float = Field(60.0, ge=0, description="From an alarm to the engineer at it.")
    repair_min: float = Field(30.0, ge=0, description="Time to repair and recover.")


class ErrorSpec(_Strict):
    """Human error rates, per removal."""

    miscount: dict[str, Rate] = Field(
        default_factory=dict,
        description="By pocket kind (matrix, lidded, cubie, fridge): chance that a nurse takes "
        "one unit more than she records.",
    )
    wrong_pocket: Rate = 0.0
    drawer_left_open: Rate = 0.0
    left_open_min: float = Field(5.0, gt=0, description="Until someone shuts a drawer left open.")

    @field_validator("miscount")
    @classmethod
    def _kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {"matrix", "lidded", "cubie", "fridge"}
        if unknown:
            raise ValueError(
                f"miscount takes pocket kinds matrix, lidded, cubie, fridge; not {sorted(unknown)}"
            )
        return value


FaultKindName = Literal[
    "lock_jammed",
    "lock_no_reengage",
    "switch_stuck",
    "loadcell_stuck",
    "loadcell_drift",
    "loadcell_noisy",
    "loadcell_offline",
    "device_offline",
    "bus_noise",
    "power_loss",
    "fridge_failure",
]


class ScriptedFault(_Strict):
    day: int = Field(ge=0)
    time: TimeOfDay
    cabinet: str
    kind: FaultKindName
    target: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class FaultSpec(_Strict):
    rates: dict[FaultKindName, float] = Field(
        default_factory=dict, description="Faults per cabinet per day, by kind (random targets)."
    )
    scripted: list[ScriptedFault] = Field(default_factory=list)
    watch_s: float | None = Field(
        None,
        description="Removed: refused where given (the cabinet is watched by the station's "
        "supervision at the station's polling rates).",
    )

    @field_validator("watch_s")
    @classmethod
    def _watch_s(cls, value: float | None) -> None:
        if value is not None:
            raise ValueError(
                "no longer used: the cabinets are watched by the station's supervision at the "
                "station's polling rates (the profile's [station] fast_s, slow_s); remove it"
            )
        return None

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v <= 100}
        if bad:
            raise ValueError(f"fault rates are 0..100 per cabinet per day, not {bad}")
        return value


IncidentKind = Literal["forced_open", "unrecorded_removal", "fridge_failure", "power_cut"]


class IncidentSpec(_Strict):
    """Something the station's supervision must notice, scripted at a time of day:

    - `forced_open`: someone yanks drawer `target` open though it is locked, takes `units` packs
      from its first stocked pocket (0: none) and shuts it after `open_s`;
    - `unrecorded_removal`: `units` packs leave pocket `target` with no transaction and no door
      moving (through a pried gap): only the pocket's scale can tell;
    - `fridge_failure`: the fridge of pocket `target` stops cooling and warms at `rate_c_per_h`
      until the service engineer repairs it;
    - `power_cut`: every device of the cabinet goes dark for `minutes`, then comes back.

    The people only act; whether and when it is detected is the controller's supervision."""

    day: int = Field(ge=0)
    time: TimeOfDay
    cabinet: str
    kind: IncidentKind
    target: str | None = Field(
        None, description="Drawer (forced_open), pocket (unrecorded_removal, fridge_failure)."
    )
    units: int = Field(1, ge=0, le=1000, description="Packs taken (forced_open, unrecorded).")
    open_s: float = Field(30.0, gt=0, le=86400, description="forced_open: open this long.")
    minutes: float = Field(10.0, gt=0, le=10080, description="power_cut: dark this long.")
    rate_c_per_h: float = Field(6.0, gt=0, le=100, description="fridge_failure: warming rate.")

    @model_validator(mode="after")
    def _target(self) -> IncidentSpec:
        if self.kind == "power_cut" and self.target is not None:
            raise ValueError("a power_cut affects the whole cabinet: it takes no target")
        if self.kind != "power_cut" and not self.target:
            what = "drawer" if self.kind == "forced_open" else "pocket"
            raise ValueError(f"a {self.kind} needs a target: the {what}")
        return self


class RecallSpec(_Strict):
    day: int = Field(ge=0)
    time: TimeOfDay
    item: str = Field(description="GTIN or NDC of the recalled item.")
    lot: str = Field(description="Lot number: L000 is the initial load, Lddd the day-ddd delivery.")
    reason: str = ""


class Scenario(_Strict):
    spec: str = Field(SPEC_VERSION, description="Scenario format version.")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    seed: int = 0
    days: float = Field(1.0, gt=0, le=366)
    start: date = date(2026, 3, 2)
    timezone: str = "UTC"
    formulary: str = Field("demo", description="'demo' or a CSV path (relative to the scenario).")
    cabinets: list[CabinetSpec] = Field(min_length=1)
    demand: DemandSpec = Field(default_factory=DemandSpec)
    nurses: NurseSpec = Field(default_factory=NurseSpec)
    technicians: TechnicianSpec = Field(default_factory=TechnicianSpec)
    pharmacists: PharmacistSpec = Field(default_factory=PharmacistSpec)
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    errors: ErrorSpec = Field(default_factory=ErrorSpec)
    faults: FaultSpec = Field(default_factory=FaultSpec)
    recalls: list[RecallSpec] = Field(default_factory=list)
    diverters: list[DiverterSpec] = Field(default_factory=list)  # adc/scenario/diverters.py
    study: StudySpec | None = None  # a study pocket with enrolled subjects (scenario/study.py)
    incidents: list[IncidentSpec] = Field(
        default_factory=list,
        description="Scripted incidents the station's supervision must detect (KPI `incidents`).",
    )

    @field_validator("spec")
    @classmethod
    def _spec(cls, value: str) -> str:
        if value.split(".")[0] != SPEC_VERSION.split(".")[0]:
            raise ValueError(f"spec {value!r} is not supported (this adc reads {SPEC_VERSION})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder
            raise ValueError(f"{value!r} is not an IANA time zone name") from None
        return value

    def cabinet_ids(self) -> list[tuple[str, int]]:
        """Every cabinet id the scenario makes, with the index of the spec that makes it."""
        out = []
        for index, spec in enumerate(self.cabinets):
            if spec.count == 1:
                out.append((spec.id, index))
            else:
                out.extend((f"{spec.id}{n:02d}", index) for n in range(1, spec.count + 1))
        return out
