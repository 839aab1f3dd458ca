"""Schema step 6 (see MIGRATIONS in adc/controller/db.py): the station's own records.

- `quarantine`: stock a pharmacist must judge before anyone may remove it (a fridge that stayed
  out of its range longer than the allowed excursion). Open until a pharmacist releases it or
  pulls it; the one place removals are checked (`quarantine.refuse_if_quarantined`) reads it.
- `station_notification`: what a pharmacist must act on (quarantine, expired lots, an escalated
  discrepancy, a blind recount due), stored until acknowledged. `ref` makes each one idempotent:
  the same cause notified twice (a restart, a second sweep) is one row.
- `station_run`: each run of scheduled work (expiry sweep, escalation, delivery) by period, so
  a restart neither repeats nor skips one (`UNIQUE(cabinet, job, period)`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from adc.controller.models import UtcDateTime


class Quarantine(SQLModel, table=True):
    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_pocket_status", "pocket_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = Field(foreign_key="cabinet.id")
    pocket_id: int = Field(foreign_key="pocket.id")
    pocket_code: str
    reason: str
    lots: str = "[]"  # JSON: the lots held when it was placed (lot, gtin, expiry, qty)
    status: str = "open"  # open, released, pulled
    placed_at: datetime = Field(sa_type=UtcDateTime)
    alarm_event_id: int | None = None
    resolved_by: int | None = Field(default=None, foreign_key="app_user.id")
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    note: str | None = None


class StationNotification(SQLModel, table=True):
    __tablename__ = "station_notification"
    __table_args__ = (UniqueConstraint("ref"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = Field(foreign_key="cabinet.id")
    kind: str  # quarantine, expired-lots, discrepancy-escalated, recount-due
    ref: str  # what it is about, unique: e.g. quarantine:12, recount:W1:D2:345
    drawer_code: str | None = None
    pocket_code: str | None = None
    detail: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    acknowledged_by: int | None = Field(default=None, foreign_key="app_user.id")
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class StationRun(SQLModel, table=True):
    __tablename__ = "station_run"
    __table_args__ = (UniqueConstraint("cabinet_id", "job", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = Field(foreign_key="cabinet.id")
    job: str  # expiry-sweep, discrepancy-escalation, shortage-delivery
    period: str  # the period it ran for: a site date, or a UTC slot
    ran_at: datetime = Field(sa_type=UtcDateTime)
    result: str = "{}"  # JSON


TABLES = [Quarantine.__table__, StationNotification.__table__, StationRun.__table__]


def migrate(conn: Connection) -> None:
    """Create this feature's tables; idempotent (create_all checks first)."""
    SQLModel.metadata.create_all(conn, tables=TABLES)  # type: ignore[arg-type]
