"""Read a TOML file the one safe way: every loader of the product (profiles, scenarios, restock
scripts) goes through `read_toml`.

Whatever is wrong with the file — missing, a directory, unreadable, too large, not UTF-8, not
TOML, nested so deeply that the parser would overflow the stack, or holding a number too long to
convert — comes out as one `TomlFileError` (a `BadInput`, exit 2) naming the file, the line where
it is known, and what was expected. Each loader turns it into its own error shape (a profile's
issue list, a script's problem list). Nothing else escapes.

Limits: a file is at most `MAX_BYTES` (configuration written by people is a few kB; the limit only
keeps a wrong path such as /dev/zero or a log file from being read whole), and its values nest at
most `MAX_DEPTH` tables and arrays deep (the shipped files nest 7 deep). The depth is checked
after parsing, so pydantic and the loaders' own recursive walks never see a deeper document.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from adc.errors import BadInput

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32

_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")


class TomlFileError(BadInput):
    """A TOML file that cannot be used; `reason` says why, `line` where (when it is known).

    `unreadable` is True where the file itself could not be read (missing, a directory, no
    permission, too large), False where it was read and its content is wrong.
    """

    def __init__(
        self, path: Path, reason: str, line: int | None = None, *, unreadable: bool = False
    ) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.reason = reason
        self.line = line
        self.unreadable = unreadable


def read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    """The parsed document and its text (for locating lines); TomlFileError if it cannot be."""
    path = Path(path)
    raw = _read_bytes(path)
    text = _decode(path, raw)
    data = _parse(path, text)
    _check_depth(path, data)
    return data, text


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise TomlFileError(path, "file not found", unreadable=True) from None
    except IsADirectoryError:
        raise TomlFileError(path, "is a directory, not a TOML file", unreadable=True) from None
    except OSError as err:
        raise TomlFileError(path, f"cannot read: {err.strerror or err}", unreadable=True) from None
    except ValueError as err:  # e.g. a NUL byte in the path
        raise TomlFileError(path, f"not a usable file name ({err})", unreadable=True) from None
    if len(raw) > MAX_BYTES:
        raise TomlFileError(
            path,
            f"too large for a TOML file of this kind (more than {MAX_BYTES} bytes)",
            unreadable=True,
        )
    return raw


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise TomlFileError(
            path, f"not UTF-8 text (byte 0x{raw[err.start]:02x} cannot be decoded)", line
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors write


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11 keeps the position only in the message: "... (at line 2, column 8)".
        found = _POSITION.search(str(err))
        message = _POSITION.sub("", str(err)).strip()
        raise TomlFileError(
            path, f"not valid TOML: {message}", int(found.group(1)) if found else None
        ) from None
    except RecursionError:
        raise TomlFileError(
            path,
            f"values nest deeper than {MAX_DEPTH} levels (arrays or inline tables inside each "
            "other)",
        ) from None
    except ValueError:  # int() refuses numbers longer than sys.get_int_max_str_digits()
        raise TomlFileError(
            path, f"not valid TOML: a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None


def _check_depth(path: Path, data: dict[str, Any]) -> None:
    """Refuse values nested more than MAX_DEPTH tables/arrays deep (walked without recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, key = stack.pop()
        if len(key) > MAX_DEPTH:
            raise TomlFileError(
                path,
                f"{_format_key(key)}: values nest deeper than {MAX_DEPTH} levels",
            )
        if isinstance(node, dict):
            stack.extend((value, (*key, name)) for name, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*key, index)) for index, value in enumerate(node))


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _format_key(key: tuple[str | int, ...]) -> str:
    shown = "".join(
        f"[{part}]"
        if isinstance(part, int)
        else f".{part}"
        if _BARE.fullmatch(part)
        else f".{json.dumps(part)}"
        for part in key[:6]
    )
    return shown.lstrip(".") + ("…" if len(key) > 6 else "")
