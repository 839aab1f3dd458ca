"""`adc init`: create or upgrade the database."""

from __future__ import annotations

from adc.commands.common import DbOption, console


def init(db: DbOption = None) -> None:
    """Create the database, or upgrade it to this adc's schema (safe to run again)."""
    from adc.commands.access import open_controller
    from adc.controller.db import init_database

    ctl = open_controller(db, create=True)
    result = init_database(ctl.db, ctl.now())
    if result.from_version is None:
        what = f"created (schema version {result.to_version})"
    elif result.applied:
        what = f"upgraded from schema version {result.from_version} to {result.to_version}"
    else:
        what = f"already at schema version {result.to_version}: nothing to do"
    console().print(f"database {ctl.db.url}: {what}", highlight=False)
