"""Fresh, isolated databases for controller tests: a SQLite file, or a PostgreSQL schema.

PostgreSQL runs when ADC_TEST_DATABASE_URL is set (CI sets it); each database is a new schema,
selected through the connection's search_path, and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "ADC_TEST_DATABASE_URL"
BACKENDS = ["sqlite", "postgresql"]
PG_SKIP_REASON = f"{PG_ENV} is not set: the PostgreSQL run of the database tests is skipped"


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def fresh_database(kind: str, directory: Path) -> tuple[str, Callable[[], None]]:
    """A URL of an empty database of `kind`, and the function that removes it."""
    if kind == "sqlite":
        path = directory / f"adc-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: None
    base = pg_base_url()
    assert base, PG_SKIP_REASON
    schema = f"adc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop
