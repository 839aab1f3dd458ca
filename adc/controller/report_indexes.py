"""Schema step 9: an index for the controlled-substance record over a fleet's history.

`adc report cs-activity` opens each pocket's balance with the sum of its earlier movements of
controlled items (csreport.py): every such transaction before the period. The index on
(item_id, at) finds them, but each then costs a read of its table row for the pocket and the
quantity; with 1,000,000 transactions on 1,000 cabinets that read was half the report's second.
This index carries the pocket and the quantity too, so the sum reads the index alone (SQLite;
PostgreSQL once the table is vacuumed). It leads with the same columns as ix_txn_item_at, so it
serves every query that one does.
"""

from __future__ import annotations

from sqlalchemy import Connection

INDEX = "ix_txn_item_at_pocket_qty"


def migrate(conn: Connection) -> None:
    """Create the index; idempotent."""
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON stock_transaction (item_id, at, pocket_id, qty)"
    )
