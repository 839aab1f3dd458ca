"""Tables that fit the terminal: a column is shown whole or not at all.

Rich squeezes a table that is too wide by cutting every column down, until a name reads `Mor…`
and a date `202…` (issue 20: at 80 columns the discrepancy and controlled-substance reports were
unreadable). Here each column keeps at least its longest word, so text wraps between words and no
word is cut; when that does not fit, the least important columns are left out and a note under the
table names them (`--csv` and `--json` always carry every column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# A longer word (a URL, a hash) may be folded over lines rather than widen its column.
LONGEST_WORD = 24
SHORT = 10  # a cell this long or shorter is not wrapped


def _plain(cell: str) -> str:
    from rich.text import Text

    return Text.from_markup(cell).plain


def _least_width(header: str, cells: Sequence[str]) -> int:
    """The narrowest a column may be: its header whole, a short cell whole (`20 d`, `on hand`),
    and the longest word of a longer one."""
    widths = [len(header)]
    for cell in cells:
        lines = cell.splitlines() or [""]
        if max(len(line) for line in lines) <= SHORT:
            widths.extend(len(line) for line in lines)
        else:
            widths.extend(min(LONGEST_WORD, len(word)) for word in cell.split())
    return max(1, *widths)


def _share(need: list[int], full: list[int], room: int) -> list[int]:
    """Column widths: each its whole text if all fit in `room`, else its longest word plus a share
    of what is left, in proportion to how much more it would take to be shown whole."""
    if sum(full) <= room:
        return list(full)
    spare = max(0, room - sum(need))
    wants = [f - n for n, f in zip(need, full, strict=True)]
    total_want = sum(wants) or 1
    widths = [n + spare * w // total_want for n, w in zip(need, wants, strict=True)]
    left = room - sum(widths)
    for i in sorted(
        range(len(widths)), key=lambda i: wants[i] - (widths[i] - need[i]), reverse=True
    ):
        if left <= 0:
            break
        if widths[i] < full[i]:
            widths[i] += 1
            left -= 1
    return widths


def fitted_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    title: str | None = None,
    priority: Sequence[int] | None = None,
) -> tuple[Table, list[str]]:
    """A table of `rows` (cells in rich markup) no wider than `width`, and the columns left out.

    `priority` ranks each column (1 = keep longest); without it the columns to the right go first,
    except one without a header (a flag such as `FLAG` or `CRITICAL`: it could not be named).
    A column is left out only when the kept ones, each as wide as its longest word, do not fit.
    """
    from rich.table import Table

    count = len(columns)
    default = [1 if not name else i + 1 for i, name in enumerate(columns)]  # a flag column stays
    ranks = list(priority) if priority is not None else default
    if len(ranks) != count:
        raise ValueError(f"{count} columns but {len(ranks)} priorities")
    plain_rows = [[_plain(cell) for cell in row] for row in rows]
    texts = [[columns[i], *(row[i] for row in plain_rows)] for i in range(count)]
    need = [_least_width(column[0], column[1:]) for column in texts]
    full = [
        max(need[i], *(len(line) for text in texts[i] for line in text.splitlines() or [""]))
        for i in range(count)
    ]
    kept = [i for i in range(count) if columns[i] or any(texts[i][1:])]  # an empty flag column

    def frame(indices: list[int]) -> int:  # a space each side of a cell, a border between
        return 3 * len(indices) + 1

    while sum(need[i] for i in kept) + frame(kept) > width and len(kept) > 1:
        kept.remove(max(kept, key=lambda i: (ranks[i], i)))
    widths = _share([need[i] for i in kept], [full[i] for i in kept], max(0, width - frame(kept)))
    table = Table(title=title)
    for i, column_width in zip(kept, widths, strict=True):
        table.add_column(columns[i], width=column_width, overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table, [columns[i] for i in range(count) if i not in kept and columns[i]]


def print_fitted(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    priority: Sequence[int] | None = None,
) -> None:
    """Print `fitted_table` for the console's width, with a note naming the columns left out."""
    table, left_out = fitted_table(
        columns, rows, width=console.width, title=title, priority=priority
    )
    console.print(table)
    if left_out:
        console.print(
            f"[dim]{console.width} columns: not shown {', '.join(left_out)} "
            "(--csv, --json or a wider terminal show all)[/]",
            highlight=False,
        )
