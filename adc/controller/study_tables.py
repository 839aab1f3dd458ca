"""Schema step v8: investigational drugs' tables (see MIGRATIONS in adc/controller/db.py).

Why these tables and not columns on the shared ones:
- `study`, `study_user`: a protocol and the people authorized to handle its stock;
- `study_item`: an item of the formulary that is investigational for one protocol (its own row,
  with its own GTINs and lots, so a scan of commercial stock of the same molecule maps to the
  commercial item and is refused as the wrong drug);
- `study_pocket`: the pockets assigned to a study: the only ones that hold its stock;
- `study_dispense`: a removal's subject id and dose, one row per removal transaction. Subject ids
  live here (and in the audit payload) and nowhere else: the stock transactions that every other
  report reads never carry them;
- `study_return`: units a subject did not take, handed back to the pharmacy with a reason (never
  back into the pocket): per lot of the removal they came from.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Index
from sqlmodel import Field, SQLModel

from adc.controller.models import UtcDateTime


class StudyStatus:
    OPEN = "open"
    CLOSED = "closed"


class Study(SQLModel, table=True):
    __tablename__ = "study"

    protocol: str = Field(primary_key=True, max_length=64)
    title: str
    sponsor: str
    investigator: str  # the principal investigator
    status: str = StudyStatus.OPEN
    subject_pattern: str | None = None  # a regular expression; None: the default format
    created_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class StudyUser(SQLModel, table=True):
    __tablename__ = "study_user"

    protocol: str = Field(foreign_key="study.protocol", primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)


class StudyItem(SQLModel, table=True):
    __tablename__ = "study_item"

    item_id: int = Field(foreign_key="item.id", primary_key=True)
    protocol: str = Field(foreign_key="study.protocol", index=True, max_length=64)


class StudyPocket(SQLModel, table=True):
    __tablename__ = "study_pocket"

    pocket_id: int = Field(foreign_key="pocket.id", primary_key=True)
    protocol: str = Field(foreign_key="study.protocol", index=True, max_length=64)


class StudyDispense(SQLModel, table=True):
    __tablename__ = "study_dispense"

    txn_id: int = Field(foreign_key="stock_transaction.id", primary_key=True)
    protocol: str = Field(foreign_key="study.protocol", index=True, max_length=64)
    subject: str = Field(max_length=64)
    dose: str = Field(max_length=64)


class StudyReturn(SQLModel, table=True):
    __tablename__ = "study_return"
    __table_args__ = (Index("ix_study_return_removal", "removal_txn_id"),)

    id: int | None = Field(default=None, primary_key=True)
    protocol: str = Field(foreign_key="study.protocol", index=True, max_length=64)
    removal_txn_id: int = Field(foreign_key="stock_transaction.id")  # the lot's removal row
    lot_id: int = Field(foreign_key="stock_lot.id")
    qty: int
    reason: str
    user_id: int = Field(foreign_key="app_user.id")
    at: datetime = Field(sa_type=UtcDateTime)
    audit_seq: int


STUDY_TABLES = [
    Study.__table__,
    StudyUser.__table__,
    StudyItem.__table__,
    StudyPocket.__table__,
    StudyDispense.__table__,
    StudyReturn.__table__,
]


def migrate(conn: Connection) -> None:
    """Create this feature's tables; idempotent (create_all checks each table first)."""
    SQLModel.metadata.create_all(conn, tables=STUDY_TABLES)  # type: ignore[arg-type]
