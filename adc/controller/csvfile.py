"""Reading a CSV a person prepared: header checked, rows with the line they start on.

Imports validate every row first and report all bad rows with their line numbers; only a file
without a single bad row is written, in one transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from adc.errors import BadInput


def read_rows(
    path: Path, required: list[str], optional: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) for each data row; BadInput for an unreadable file or header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror}") from None
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise BadInput(f"{path}: the file is empty") from None
    except csv.Error as err:
        raise BadInput(f"{path}:1: {err}") from None
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required and c not in optional]
    if missing or unknown or len(set(header)) != len(header):
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s) " + ", ".join(unknown))
        if len(set(header)) != len(header):
            parts.append("a column appears twice")
        raise BadInput(
            f"{path}:1: bad header: {'; '.join(parts)}",
            details=[f"expected columns: {', '.join(required + list(optional))}"],
        )
    line = reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise BadInput(f"{path}:{start}: {err}") from None
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield start, {"__error__": f"{len(values)} fields, the header has {len(header)}"}
            continue
        yield start, {name: value.strip() for name, value in zip(header, values, strict=True)}


def bad_rows(path: Path, problems: list[tuple[int, str]], what: str) -> BadInput:
    return BadInput(
        f"{path}: {len(problems)} bad row(s); no {what} imported",
        details=[f"line {line}: {message}" for line, message in problems],
    )
