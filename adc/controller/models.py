"""The controller's tables (DESIGN.md "Domain model"), as sqlmodel classes.

Choices that keep the invariant `on_hand = sum(lots) = replay(transactions)` checkable:
- a `Transaction` row moves stock of exactly one lot (or none, for a count that found what was
  expected); an operation touching several lots writes several rows that share `audit_seq`;
- `qty` is the signed change of on-hand, so replaying a pocket is `sum(qty)`;
- stock lots are never deleted (a depleted lot stays at 0): transactions keep pointing at them.
Columns the controlled-substance workflows need (witness, expected/counted, related transaction,
discrepancy lifecycle and deadline) exist from the start, so that work adds rules, not a rewrite.
Times are timezone-aware UTC (`UtcDateTime`); audit times are stored as text so the hash chain does
not depend on how a database returns timestamps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC, always hands back an aware UTC datetime (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the controller stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ------------------------------------------------------------------------------------------ enums
class Role(StrEnum):
    TECHNICIAN = "technician"
    PHARMACIST = "pharmacist"
    NURSE = "nurse"
    SERVICE = "service"
    ADMIN = "admin"


class TxnKind(StrEnum):
    LOAD = "load"  # first stock of a newly assigned item
    UNLOAD = "unload"  # everything out, item unassigned
    REFILL = "refill"
    REMOVE = "remove"
    RETURN = "return"
    WASTE = "waste"
    COUNT = "count"
    ADJUST = "adjust"  # correction without a physical movement (e.g. unaccounted units)
    PULL = "pull"  # expired or recalled stock taken out


class DiscrepancyStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # closed at the cabinet as unresolvable: handed on to pharmacy


class ShortageKind(StrEnum):
    CRITICAL_LOW = "critical-low"
    STOCK_OUT = "stock-out"
    UNFILLED = "unfilled"  # a refill line the technician could not fill


class ShortageStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else ..., foreign_key=target, index=index)


# ---------------------------------------------------------------------------------- bookkeeping
class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    description: str
    applied_at: datetime = Field(sa_type=UtcDateTime)


class Setting(SQLModel, table=True):
    __tablename__ = "setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str


# ----------------------------------------------------------------------------------- the cabinet
class Cabinet(SQLModel, table=True):
    __tablename__ = "cabinet"

    id: str = Field(primary_key=True, max_length=32)
    profile_name: str
    profile_path: str
    description: str = ""
    created_at: datetime = Field(sa_type=UtcDateTime)
    # a virtual cabinet (demo, scenarios, practice): the only kind whose master data a simulated
    # backend may write (cabinets.check_measurement_source)
    simulated: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class Drawer(SQLModel, table=True):
    __tablename__ = "drawer"
    __table_args__ = (UniqueConstraint("cabinet_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    code: str
    position: int
    lock_point: str
    switch_point: str
    light_point: str | None = None


class Pocket(SQLModel, table=True):
    """A pocket and the device points the controller drives for it (copied from the profile)."""

    __tablename__ = "pocket"
    __table_args__ = (
        UniqueConstraint("cabinet_id", "code"),
        CheckConstraint("on_hand >= 0", name="pocket_on_hand_not_negative"),
        CheckConstraint(
            "item_id IS NULL OR (critical_low >= 0 AND critical_low < par AND par <= max_qty)",
            name="pocket_levels_ordered",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    drawer_id: int = _fk("drawer.id")
    code: str
    position: int  # order in the cabinet: drawer by drawer, as the profile lists them
    kind: str  # matrix, lidded, cubie, fridge, return-bin
    capacity: int
    sensor_kind: str = "none"  # weight, presence, none
    sensor_point: str | None = None
    lock_point: str | None = None
    switch_point: str | None = None
    lid_lock_point: str | None = None
    lid_switch_point: str | None = None
    light_point: str | None = None
    temperature_point: str | None = None
    item_id: int | None = _fk("item.id", nullable=True, index=True)
    par: int = 0
    critical_low: int = 0
    max_qty: int = 0
    on_hand: int = 0


# ---------------------------------------------------------------------------------- the formulary
class Item(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        CheckConstraint("schedule IS NULL OR schedule BETWEEN 2 AND 5", name="item_schedule"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    strength: str
    form: str
    ndc: str | None = Field(default=None, unique=True, max_length=10)  # 10 digits, no hyphens
    schedule: int | None = None  # DEA schedule II–V as 2–5; None = not controlled
    high_alert: bool = False
    unit_weight_g: float | None = None
    active: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} {self.strength} {self.form}"


class ItemGtin(SQLModel, table=True):
    __tablename__ = "item_gtin"

    gtin: str = Field(primary_key=True, max_length=14)
    item_id: int = _fk("item.id", index=True)


class StockLot(SQLModel, table=True):
    __tablename__ = "stock_lot"
    __table_args__ = (
        UniqueConstraint("pocket_id", "gtin", "lot", "expiry"),
        CheckConstraint("qty >= 0", name="stock_lot_qty_not_negative"),
        Index(
            "ix_stock_lot_expiry_held",
            "expiry",
            sqlite_where=text("qty > 0"),
            postgresql_where=text("qty > 0"),
        ),
        Index(
            "ix_stock_lot_pocket_held",
            "pocket_id",
            "expiry",
            sqlite_where=text("qty > 0"),
            postgresql_where=text("qty > 0"),
        ),
        Index("ix_stock_lot_gtin_lot", "gtin", "lot"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pocket_id: int = _fk("pocket.id")
    item_id: int = _fk("item.id")
    gtin: str
    lot: str
    expiry: date
    qty: int = 0
    received_at: datetime = Field(sa_type=UtcDateTime)


# ---------------------------------------------------------------------------------------- people
class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    full_name: str = ""
    role: str
    pin_hash: str
    failed_attempts: int = 0
    locked: bool = False
    active: bool = True
    created_at: datetime = Field(sa_type=UtcDateTime)


# ---------------------------------------------------------------------------------- the records
class Transaction(SQLModel, table=True):
    """One movement of stock in one pocket (one lot), or a count; never updated."""

    __tablename__ = "stock_transaction"
    __table_args__ = (
        Index("ix_txn_pocket", "pocket_id", "id"),
        Index("ix_txn_at", "at"),
        Index("ix_txn_user_at", "user_id", "at"),
        Index("ix_txn_item_at", "item_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UtcDateTime)
    kind: str
    cabinet_id: str = _fk("cabinet.id")
    pocket_id: int = _fk("pocket.id")
    item_id: int = _fk("item.id")
    lot_id: int | None = _fk("stock_lot.id", nullable=True)
    qty: int  # signed change of the pocket's on-hand
    expected: int | None = None  # on-hand the system expected (counts, pulls, unloads)
    counted: int | None = None  # what the person counted or removed
    user_id: int = _fk("app_user.id")
    witness_id: int | None = _fk("app_user.id", nullable=True)
    reason: str | None = None
    session_id: str | None = None  # restock session, so a session's lines can be listed
    related_id: int | None = _fk("stock_transaction.id", nullable=True)  # e.g. return of a remove
    audit_seq: int  # the audit entry that recorded this movement


class Discrepancy(SQLModel, table=True):
    """Expected vs counted; opened by the controller, resolved (reason, witness) by a pharmacist."""

    __tablename__ = "discrepancy"
    __table_args__ = (Index("ix_discrepancy_status", "status", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    pocket_id: int = _fk("pocket.id")
    item_id: int = _fk("item.id")
    transaction_id: int | None = _fk("stock_transaction.id", nullable=True)
    trigger: str  # count, restock, unload, pull, remove, return, sensor
    expected: int
    counted: int
    status: str = DiscrepancyStatus.OPEN
    opened_by: int = _fk("app_user.id")
    opened_at: datetime = Field(sa_type=UtcDateTime)
    deadline: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str | None = None
    resolved_by: int | None = _fk("app_user.id", nullable=True)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    witness_id: int | None = _fk("app_user.id", nullable=True)


class Recall(SQLModel, table=True):
    __tablename__ = "recall"
    __table_args__ = (UniqueConstraint("gtin", "lot"),)

    id: int | None = Field(default=None, primary_key=True)
    gtin: str = Field(max_length=14)
    lot: str
    reason: str = ""
    created_by: int = _fk("app_user.id")
    created_at: datetime = Field(sa_type=UtcDateTime)


class Shortage(SQLModel, table=True):
    """A notification for pharmacists: a pocket at critical-low, out of stock, or left unfilled."""

    __tablename__ = "shortage"
    __table_args__ = (
        Index("ix_shortage_status", "status", "created_at"),
        Index("ix_shortage_pocket", "pocket_id", "status"),
        Index(
            "ix_shortage_undelivered",
            "id",
            sqlite_where=text("delivered_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    pocket_id: int = _fk("pocket.id")
    item_id: int = _fk("item.id")
    kind: str
    on_hand: int
    par: int
    critical_low: int
    status: str = ShortageStatus.OPEN
    created_at: datetime = Field(sa_type=UtcDateTime)
    acknowledged_by: int | None = _fk("app_user.id", nullable=True)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class AuditEntry(SQLModel, table=True):
    """One link of the hash chain. Append-only: a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_entry"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # Which chain the entry links into ("site" or "cabinet:<id>") and its place in it; None for
    # entries written before chains per cabinet (schema v7), whose place is `seq` (audit_chains.py).
    chain: str = Field(default="site", max_length=80)
    chain_seq: int | None = None
    at: str  # ISO 8601 UTC with microseconds, as hashed
    actor: str
    witness: str | None = None
    action: str
    payload: str  # canonical JSON, as hashed
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class MaintenanceEvent(SQLModel, table=True):
    __tablename__ = "maintenance_event"

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    drawer_code: str | None = None
    pocket_code: str | None = None
    kind: str  # e.g. relock-failed, sensor-fault, recovered, calibrated
    detail: str = ""
    user_id: int | None = _fk("app_user.id", nullable=True)
    at: datetime = Field(sa_type=UtcDateTime)


class AccessLog(SQLModel, table=True):
    """A pocket access written before its unlock pulse and closed when its line ends.

    It is what survives a SIGKILL, a crash or a power cut in the middle of an access: a row left
    open by a process that is gone means a drawer may have been opened with nothing recorded, and
    the next start that opens the cabinet flags it for a blind recount (`access_log.py`).
    """

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_open", "cabinet_id", "closed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    cabinet_id: str = _fk("cabinet.id")
    drawer_code: str
    pocket_code: str | None = None
    user_id: int | None = _fk("app_user.id", nullable=True)
    purpose: str  # restock · withdrawal · count · diag
    session: str = ""
    owner: str  # the process that opened it: host, boot, pid and start time
    opened_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = None  # how it ended: recorded, abandoned, left, interrupted, ...
