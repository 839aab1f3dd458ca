"""Prepared statements on the transaction's own DB-API cursor: the controller's hot path.

Why: running a statement through the ORM, or even through SQLAlchemy Core, costs about 20 µs of
Python on this hardware, and one stock change needs a dozen statements; on the DB-API cursor the
same statement costs about 2 µs. So the busiest operations (a removal, a refill line, the checks
before a drawer unlocks) write their SQL as Core statements, compiled once per dialect, and run
them here:
- the SQL text, parameter style and placeholders are what SQLAlchemy compiles for the dialect
  (SQLite `?`, psycopg `%(name)s`), so one statement serves both databases;
- every parameter and result goes through the column type's own processors (UTC datetimes,
  dates, booleans), so a row written here reads back through the ORM exactly as if the ORM had
  written it, and the reverse;
- the cursor belongs to the connection of the caller's transaction (`Database.raw_write`,
  `Database.raw_read`), which holds the writer lock and commits or rolls back.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Prepared:
    """One statement compiled for one dialect, with its parameter and result conversions."""

    sql: str
    names: tuple[str, ...] | None  # positional parameter order; None for named (pyformat) styles
    defaults: dict[str, Any]  # values bound inside the statement itself (literals)
    binds: dict[str, Processor]
    results: tuple[Processor, ...]
    converting: bool  # any result column needs its processor (dates, datetimes, booleans)

    def params(self, given: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = {**self.defaults, **given} if self.defaults else given
        if self.names is None:
            return {
                name: proc(values[name])
                if proc is not None and values[name] is not None
                else values[name]
                for name, proc in self.binds.items()
            }
        out = []
        for name in self.names:
            value = values[name]
            proc = self.binds[name]
            out.append(proc(value) if proc is not None and value is not None else value)
        return out

    def convert(self, row: Sequence[Any]) -> Sequence[Any]:
        if not self.converting:
            return row
        return tuple(
            proc(value) if proc is not None and value is not None else value
            for proc, value in zip(self.results, row, strict=True)
        )


def _result_processor(type_: Any, dialect: Dialect) -> Processor:
    """The column type's conversion of what the driver returns (None: use it as it is).

    Some processors want the driver's own type code for the column (psycopg's Float and
    Numeric), which a statement compiled ahead of time does not have; psycopg returns those as
    Python numbers already, so the value is used as it is.
    """
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except TypeError:
        return None


def prepare(statement: ClauseElement, dialect: Dialect) -> Prepared:
    """Compile `statement` for `dialect` once; see the module docstring for why."""
    compiled = statement.compile(dialect=dialect)
    if dialect.positional:
        used = set(compiled.positiontup or ())
    else:  # named placeholders: only those the SQL text holds (not internal anonymous names)
        used = {name for name in compiled.binds if f"%({name})s" in compiled.string}
    binds: dict[str, Processor] = {}
    for name, bind in compiled.binds.items():
        if name in used:
            binds[name] = bind.type.dialect_impl(dialect).bind_processor(dialect)
    defaults = {
        name: bind.value
        for name, bind in compiled.binds.items()
        if name in used and not bind.required
    }
    columns = getattr(statement, "selected_columns", None)
    if columns is None:  # an insert/update: its RETURNING columns, if any
        returning = getattr(statement, "_returning", ()) or ()
        columns = list(returning)
    results = tuple(_result_processor(column.type, dialect) for column in columns)
    names = tuple(compiled.positiontup or ()) if dialect.positional else None
    converting = any(proc is not None for proc in results)
    return Prepared(compiled.string, names, defaults, binds, results, converting)


# Compiled statements per dialect object: weakly keyed, so they go with the engine that owns the
# dialect (an id() key could be handed to a later dialect of another database).
_PREPARED: weakref.WeakKeyDictionary[Dialect, dict[Callable[[], ClauseElement], Prepared]] = (
    weakref.WeakKeyDictionary()
)


class Store:
    """The cursor of one transaction, running statements named by the function that builds them.

    A statement is a zero-argument function returning a Core construct with `bindparam`s; it is
    built and compiled once per dialect and kept.
    """

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.dialect = dialect
        self.cursor = raw.cursor()
        self._prepared_here = _PREPARED.setdefault(dialect, {})

    def _prepared(self, build: Callable[[], ClauseElement]) -> Prepared:
        found = self._prepared_here.get(build)
        if found is None:
            found = self._prepared_here[build] = prepare(build(), self.dialect)
        return found

    def rows(self, build: Callable[[], ClauseElement], **params: Any) -> list[tuple[Any, ...]]:
        prepared = self._prepared(build)
        self.cursor.execute(prepared.sql, prepared.params(params))
        return [prepared.convert(row) for row in self.cursor.fetchall()]

    def row(self, build: Callable[[], ClauseElement], **params: Any) -> tuple[Any, ...] | None:
        prepared = self._prepared(build)
        self.cursor.execute(prepared.sql, prepared.params(params))
        found = self.cursor.fetchone()
        return None if found is None else prepared.convert(found)

    def run(self, build: Callable[[], ClauseElement], **params: Any) -> int:
        """Execute a statement without rows; the number of rows it changed."""
        prepared = self._prepared(build)
        self.cursor.execute(prepared.sql, prepared.params(params))
        return int(self.cursor.rowcount)

    def insert(self, build: Callable[[], ClauseElement], **params: Any) -> int:
        """Execute an INSERT … RETURNING id; the new row's id."""
        found = self.row(build, **params)
        assert found is not None
        return int(found[0])

    def close(self) -> None:
        self.cursor.close()
