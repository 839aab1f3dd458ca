"""`[study]` of a scenario file (adc/scenario/study.py runs it): kept apart so the scenario model
can name it without importing the runner's people and world."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StudySpec(BaseModel):
    """`[study]` in a scenario file."""

    model_config = ConfigDict(extra="forbid")

    protocol: str = Field("SIM-STUDY-001", description="The study's protocol number.")
    cabinet: str | None = Field(None, description="The cabinet (default: the first).")
    pocket: str = Field(description="A pocket of the cabinet the scenario does not stock.")
    subjects: int = Field(6, ge=1, le=200, description="Subjects enrolled.")
    doses_per_day: int = Field(1, ge=1, le=4, description="Doses a day per subject.")
    dose_units: int = Field(1, ge=1, le=10, description="Units per dose.")
    stock: int = Field(20, ge=2, le=1000, description="Units the pharmacist keeps in the pocket.")
    unit_weight_g: float = Field(0.4, gt=0, description="What one unit weighs.")
    return_rate: float = Field(0.1, ge=0, le=1, description="Share of doses held and returned.")
    first_dose: str = Field("08:00", description="Local time of the first dose of the day.")
