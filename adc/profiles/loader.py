"""Load hardware profiles from TOML: inheritance, validation, and errors that point at a line.

Every problem of a file is collected before anything is raised, so `adc profile validate` can list
them all at once, each with file, key path and (where the key is written in that file) line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adc.errors import BadInput
from adc.profiles.checks import cross_check, format_path
from adc.profiles.models import Profile
from adc.tomlfile import TomlFileError, read_toml

KeyPath = tuple[str | int, ...]
MAX_EXTENDS_DEPTH = 8


@dataclass(frozen=True)
class ProfileIssue:
    file: Path
    path: KeyPath
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.file) + (f":{self.line}" if self.line else "")
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ProfileError(BadInput):
    """A profile that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: list[ProfileIssue]) -> None:
        files = sorted({str(i.file) for i in issues})
        super().__init__(
            f"{len(issues)} problem(s) in hardware profile {', '.join(files)}",
            details=[str(i) for i in issues],
        )
        self.issues = issues


# ------------------------------------------------------------------------------ line locator
# Written so that no line makes them backtrack more than linearly (a profile is hostile input).
_HEADER = re.compile(r"^\s*(\[\[?)([^\]]*)\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+)\s*=""")


def _split_key(text: str) -> list[str]:
    """The parts of a dotted key (`a."b.c".d` → a, b.c, d), in one pass over the text."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote is None and ch == ".":
            parts.append("".join(current))
            current = []
            continue
        if quote is None and ch in "\"'":
            quote = ch
        elif ch == quote:
            quote = None
        current.append(ch)
    parts.append("".join(current))
    return [part.strip().strip("\"'") for part in parts]


def locate_lines(text: str) -> dict[KeyPath, int]:
    """Map the key paths written in a TOML text to their line numbers (1-based).

    tomllib keeps no positions, so this follows table headers, arrays of tables, dotted keys and
    one-line inline tables: the forms profiles are written in. A path it cannot place gets no line.
    """
    lines: dict[KeyPath, int] = {}
    counters: dict[KeyPath, int] = {}
    current: KeyPath = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(raw)
        if header and header.group(2).strip() and not _KEY.match(raw):
            names = _split_key(header.group(2))
            base = _resolve(names, counters)
            if header.group(1) == "[[":
                index = counters.get(base, 0)
                counters[base] = index + 1
                # nested arrays of tables restart under each new parent element
                for key in [k for k in counters if len(k) > len(base) and k[: len(base)] == base]:
                    del counters[key]
                current = (*base, index)
            else:
                current = base
            lines.setdefault(current, number)
            continue
        key = _KEY.match(raw)
        if key:
            path = (*current, *_split_key(key.group(1)))
            lines.setdefault(path, number)
            rest = raw[key.end() :]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault((*path, inner.group(1)), number)
    return lines


def _resolve(names: list[str], counters: dict[KeyPath, int]) -> KeyPath:
    """Turn a header's names into a key path, indexing arrays of tables by their latest element."""
    path: KeyPath = ()
    for name in names:
        path = (*path, name)
        if path in counters and name != names[-1]:
            path = (*path, counters[path] - 1)
    return path


def _line_for(
    path: KeyPath, located: list[tuple[Path, dict[KeyPath, int]]]
) -> tuple[Path, int | None]:
    """The file and line that best explain a key path: the longest prefix written anywhere."""
    for cut in range(len(path), 0, -1):
        prefix = path[:cut]
        for file, lines in located:
            if prefix in lines:
                return file, lines[prefix]
    return located[0][0], None


# ------------------------------------------------------------------------------ loading
def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; arrays and scalars of the child replace the parent's."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        return read_toml(path)
    except TomlFileError as err:
        raise ProfileError([ProfileIssue(path, (), err.reason, err.line)]) from None


def _read_with_parents(
    path: Path, chain: tuple[Path, ...] = ()
) -> tuple[dict[str, Any], list[tuple[Path, dict[KeyPath, int]]]]:
    """The merged data of a profile and its `extends` ancestors, with each file's line map."""
    data, text = _read_toml(path)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError) as err:  # RuntimeError: a symlink loop (3.11)
        raise ProfileError([ProfileIssue(path, (), f"not a usable file path: {err}")]) from None
    if resolved in chain:
        names = " → ".join(str(p) for p in (*chain, resolved))
        raise ProfileError([ProfileIssue(path, ("extends",), f"circular extends: {names}")])
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ProfileError(
            [ProfileIssue(path, ("extends",), f"extends nests deeper than {MAX_EXTENDS_DEPTH}")]
        )
    located = [(path, locate_lines(text))]
    parent_name = data.get("extends")
    if parent_name is None:
        return data, located
    if not isinstance(parent_name, str) or not parent_name:
        line = located[0][1].get(("extends",))
        raise ProfileError([ProfileIssue(path, ("extends",), "extends must be a file path", line)])
    parent_path = path.parent / parent_name
    if not _exists(parent_path):
        line = located[0][1].get(("extends",))
        raise ProfileError(
            [ProfileIssue(path, ("extends",), f"extended profile {parent_path} not found", line)]
        )
    parent, parent_located = _read_with_parents(parent_path, (*chain, resolved))
    parent.pop("name", None)  # a child is its own cabinet; it inherits wiring, not identity
    parent.pop("description", None)
    return _deep_merge(parent, data), located + parent_located


def _issues_from_validation(
    err: ValidationError, located: list[tuple[Path, dict[KeyPath, int]]]
) -> list[ProfileIssue]:
    issues = []
    for item in err.errors(include_url=False):
        # Discriminated unions add the tag (e.g. 'modbus-dio') to the path: drop it for people.
        path = _drop_union_tag(tuple(item["loc"]))
        file, line = _line_for(path, located)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if item["type"] in ("literal_error", "enum") and "input" in item:
            message = f"{message} (got {item['input']!r})"
        issues.append(ProfileIssue(file, path, message, line))
    return issues


_TAGS = {"modbus-rtu", "modbus-tcp", "lockboard", "lockboard-cu16", "modbus-dio", "modbus-loadcell"}


def _drop_union_tag(loc: KeyPath) -> KeyPath:
    """Pydantic puts a discriminated union's tag in the path (`devices.dio1.modbus-dio.address`):
    people wrote `devices.dio1.address`, so drop it."""
    if len(loc) > 2 and loc[0] in ("buses", "devices") and loc[2] in _TAGS:
        return (*loc[:2], *loc[3:])
    return loc


def validate_data(data: dict[str, Any], located: list[tuple[Path, dict[KeyPath, int]]]) -> Profile:
    """Validate already-parsed profile data; raise ProfileError listing every problem."""
    try:
        profile = Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(_issues_from_validation(err, located)) from None
    problems = cross_check(profile)
    if problems:
        issues = []
        for path, message in problems:
            file, line = _line_for(path, located)
            issues.append(ProfileIssue(file, path, message, line))
        raise ProfileError(issues)
    return profile


def load_profile(path: str | Path) -> Profile:
    """Read, merge (`extends`) and validate a profile file."""
    path = Path(path)
    data, located = _read_with_parents(path)
    return validate_data(data, located)


def resolve_profile_path(name: str | Path) -> Path:
    """A profile given as a path, or as the name of a shipped profile (`tcp-6drawer`)."""
    path = Path(name)
    if _exists(path) or path.suffix == ".toml" or "/" in str(name):
        return path
    shipped = shipped_profiles_dir() / f"{name}.toml"
    return shipped if _exists(shipped) else path


def _exists(path: Path) -> bool:
    """Path.exists, False for a name no file can have (a NUL byte, too long): reading it then
    says what is wrong."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def shipped_profiles_dir() -> Path:
    """The profiles that come with adc (the repository's hardware-profiles/, or the installed copy)."""
    here = Path(__file__).resolve()
    repo = here.parents[2] / "hardware-profiles"
    if repo.is_dir():
        return repo
    return here.parents[1] / "data" / "hardware-profiles"
