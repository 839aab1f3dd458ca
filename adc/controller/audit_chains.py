"""Schema step for this feature (see MIGRATIONS in adc/controller/db.py)."""

from __future__ import annotations

from sqlalchemy import Connection


def migrate(conn: Connection) -> None:
    """Create or alter this feature's tables; idempotent (a new database may have them already)."""
