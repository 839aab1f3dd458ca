"""The standing CLI matrix: every leaf command of `adc`, run with bad arguments, fails cleanly.

Every leaf is found by walking the typer app, so a new command is covered the day it is added.
For each leaf the matrix runs:
- no arguments at all (when it has required ones), and an unknown option;
- for every parameter that takes a value, each hostile value of its type — numbers past 64 bits,
  2**63, negative, other scripts' digits, 'é', RTL and bidi-override marks, 5,000-character
  strings, inf/nan for floats — with plausible values for the other required parameters and the
  acting user of the right role (so a value gets past the first check wherever it can).

And asserts for each run: exit code 1 or 2; no traceback; stderr is one line starting with its
label (`error:`, `refused:`, `check failed:` or `aborted:`), optionally followed by indented
detail lines (adc/commands/common.py `print_error`); and the database unchanged (a SQL dump of
every table before and after). No exception to that last rule is needed today: a refused login
records nothing, and a rejected value never reaches a write.

How it runs: in-process, through typer's CliRunner, which calls the same `main` of the same
click group as the console script (with stdin empty and not a terminal, as in CI), in two worker
subprocesses in parallel, each on its own copy of a seeded site (tests/controller/site.py). A
subprocess per run would cost ~0.5 s each (imports, sqlmodel) and the matrix runs ~1,800: the
worker imports once. The workers give the matrix a timeout (a run that hangs or serves for ever
fails its leaf instead of blocking CI) and keep the runs off pytest's own process state. What
CliRunner cannot show — the real entry point, the SIGTERM handler, argv bytes that are not UTF-8
— is checked by subprocess in test_cli_bounds.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = "2468"
SCENARIO = ROOT / "scenarios" / "restock-delayed.toml"
PROFILE = ROOT / "hardware-profiles" / "tcp-6drawer.toml"
FORMULARY = ROOT / "adc" / "data" / "formulary-demo.csv"
ACETAMINOPHEN = "00309046722618"
WORKERS = 2
TIMEOUT_S = 240  # below pytest-timeout's 300 s: a hang fails its leaf, naming it
SERVED_PORT = ("127.0.0.1", 5020)  # PROFILE's Modbus TCP bus, where `sim serve` would listen
LABELS = ("error: ", "refused: ", "check failed: ", "aborted: ")

HUGE = "99999999999999999999999"  # past 64 bits
INTS = [HUGE, str(2**63), "-1", "١٢", "é", "9" * 5000]  # the last: past int()'s 4,300 digits
FLOATS = ["1e999", "nan", "-inf", "-1", HUGE, "١٫٥", "9" * 5000]
TEXTS = ["x" * 5000, "é", "\u200f\u202eW1", "١٢", HUGE, " "]
PATHS = ["/nonexistent-adc-matrix/é/x.toml", "x" * 5000, "", "\u202e.toml"]

# The acting user: one whose role may do the command, so a value is checked past the login.
ROLE = {
    "restock": "technician",
    "count": "technician",
    "waste": "nurse",
    "return": "nurse",
    "item import": "pharmacist",
    "pocket assign": "pharmacist",
    "recall add": "pharmacist",
    "recall import": "pharmacist",
    "discrepancy resolve": "pharmacist",
    "shortage ack": "pharmacist",
    "cabinet add": "service",
}

# Plausible values of required parameters that are not the one under test.
PLAIN: dict[str, str] = {
    "cabinet": "W1",
    "qty": "1",
    "reason": "x",
    "note": "found",
    "role": "nurse",
    "name": "nobody",
    "value": "1",
    "pocket": "D1-P1",
    "item": ACETAMINOPHEN,
    "par": "10",
    "critical_low": "2",
    "max_qty": "20",
    "gtin": ACETAMINOPHEN,
    "lot": "L1",
    "barcode": "x",
    "discrepancy_id": "1",
    "shortage_id": "1",
    "file": str(FORMULARY),
    "path": str(PROFILE),
    "paths": str(PROFILE),
    "profile": str(PROFILE),
    "scenario": str(SCENARIO),
    "id": "W2",
}
PLAIN_BY_LEAF = {
    ("discrepancy resolve", "reason"): "miscount",
    ("cabinet add", "profile"): "tcp-6drawer",
}


@dataclass(frozen=True)
class Run:
    leaf: str
    what: str  # which parameter, which value
    argv: list[str]


def leaves() -> dict[str, Any]:
    """Every leaf command of `adc`, by its path ("discrepancy resolve")."""
    import typer.main

    from adc.cli import app

    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


def _values(param: Any) -> list[str]:
    annotation = param.type_descriptor.annotation
    if annotation is int:
        return INTS
    if annotation is float:
        return FLOATS
    if isinstance(annotation, type) and issubclass(annotation, os.PathLike):
        return PATHS
    values = list(TEXTS)
    if param.name == "given" or "--count" in (param.opts or []):
        values += [f"D1-P1={HUGE}", "D1-P1=²", f"{ACETAMINOPHEN}=-1"]
    if param.name in ("start", "end"):
        values += ["0001-01-01", "9999-12-31"]
    return values


def _takes_value(param: Any) -> bool:
    return param.name != "help" and not getattr(param, "is_flag", False)


def _arg(param: Any, value: str) -> list[str]:
    if param.param_type_name == "argument":
        return [value]
    return [param.opts[0], value]


def runs(path: str, command: Any) -> Iterator[Run]:
    params = [p for p in command.params if _takes_value(p)]
    role = ROLE.get(path, "service" if path.startswith("diag") else "admin")
    has_user = any(p.name == "user" for p in params)

    def base(skip: Any) -> list[str]:
        argv = ["--user", role] if has_user and skip.name != "user" else []
        for p in params:
            if p is skip or not p.required:
                continue
            argv += _arg(p, PLAIN_BY_LEAF.get((path, p.name), PLAIN.get(p.name, "x")))
        return argv

    words = path.split()
    if any(p.required for p in command.params):
        yield Run(path, "no arguments", words)
    yield Run(path, "unknown option", [*words, "--no-such-option"])
    for param in params:
        for value in _values(param):
            shown = value if len(value) <= 24 else f"{value[:8]}…({len(value)})"
            yield Run(
                path,
                f"{param.opts[0] if param.opts else param.name}={shown!r}",
                [
                    *words,
                    *base(param),
                    *_arg(param, value),
                ],
            )


# ---------------------------------------------------------------------------------- the worker
def dump(db: Path) -> str:
    """Every row of every table (and the schema), as SQL: the database's content."""
    with sqlite3.connect(db) as con:
        text = "\n".join(con.iterdump())
    con.close()
    return hashlib.sha256(text.encode()).hexdigest()


def restore(pristine: Path, db: Path) -> None:
    """Put the seeded site back (through SQLite's backup: connections of earlier runs may still
    be open on the file)."""
    with sqlite3.connect(pristine) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def check(result: Any) -> list[str]:
    """What is wrong with one run's result (nothing: an empty list)."""
    problems = []
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        problems.append(f"raised {type(exc).__name__}: {str(exc)[:200]}")
    out, err = result.stdout, result.stderr
    if "Traceback" in out + err:
        problems.append("a traceback was printed")
    if result.exit_code not in (1, 2):
        problems.append(f"exit code {result.exit_code}")
    lines = err.splitlines()
    if not lines:
        problems.append("nothing on stderr")
    elif not lines[0].startswith(LABELS):
        problems.append(f"stderr does not start with a label: {lines[0][:160]!r}")
    elif any(not line.startswith("  ") for line in lines[1:]):
        problems.append(f"stderr is more than one line: {err[:300]!r}")
    return problems


def work(paths: list[str], pristine: Path, workdir: Path, out: Path) -> None:
    """Run every matrix run of `paths` in this process; one JSON line per problem run."""
    import gc

    from typer.testing import CliRunner

    from adc.cli import app

    db = workdir / "site.db"
    shutil.copy(pristine, db)
    env = {
        "ADC_DATABASE_URL": f"sqlite:///{db}",
        "ADC_HOME": str(workdir / "home"),
        "ADC_PIN": PIN,
        "ADC_DB_LOCK_TIMEOUT": "2",
        "COLUMNS": "100",
    }
    for name in ("ADC_USER", "ADC_NEW_PIN", "ADC_WITNESS", "ADC_WITNESS_PIN", "ADC_COUNTER"):
        os.environ.pop(name, None)
    os.chdir(workdir)  # a command that writes where it stands writes here
    import typer.main
    import typer.testing

    command = typer.main.get_command(app)  # built once: building it costs ~0.5 s a run
    typer.testing._get_command = lambda _app: command  # type: ignore[attr-defined]
    runner = CliRunner()
    runner.invoke(app, ["report", "refill"], env=env)  # import what the commands import
    gc.freeze()  # then each run's collection scans only what that run made
    clean = dump(db)
    found = leaves()
    with out.open("w") as sink:
        for path in paths:
            count = 0
            started = time.monotonic()
            for run in runs(path, found[path]):
                count += 1
                result = runner.invoke(app, run.argv, env=env, input="")
                problems = check(result)
                gc.collect()  # close the engines this run opened
                if dump(db) != clean:
                    problems.append("the database changed")
                    restore(pristine, db)
                if problems:
                    record = {
                        "leaf": path,
                        "what": run.what,
                        "problems": problems,
                        "exit": result.exit_code,
                        "stderr": result.stderr[:400],
                    }
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
            sink.write(
                json.dumps({"leaf": path, "runs": count, "s": time.monotonic() - started}) + "\n"
            )
            sink.flush()


# ------------------------------------------------------------------------------- the test side
@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Run the whole matrix once in parallel workers; each leaf's records (problems, then its
    summary)."""
    from tests.controller.site import build_site, fast_pins

    base = tmp_path_factory.mktemp("matrix")
    pristine = base / "pristine.db"
    with pytest.MonkeyPatch.context() as mp:
        fast_pins(mp)  # the cost is stored in each hash: logins in the workers are cheap too
        site = build_site(f"sqlite:///{pristine}")
        site.assign("D1-P1", ACETAMINOPHEN)
        site.ctl.db.close()
    con = sqlite3.connect(pristine)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    names = sorted(leaves())
    shares = [names[i::WORKERS] for i in range(WORKERS)]
    with _port_held(SERVED_PORT):
        return _run_workers(base, pristine, names, shares)


@contextmanager
def _port_held(address: tuple[str, int]) -> Iterator[None]:
    """Hold the served profile's TCP port while the matrix runs. A hostile value that is in fact
    valid (`sim serve PROFILE --control é`: a socket named é) would otherwise start a server
    that serves until stopped, and the worker would wait on it for ever; with the port taken it
    fails at once, cleanly, like any run. Taken already by someone else: the same effect."""
    holder = socket.socket()
    try:
        holder.bind(address)
        holder.listen(1)
    except OSError:
        pass
    try:
        yield
    finally:
        holder.close()


def _run_workers(
    base: Path, pristine: Path, names: list[str], shares: list[list[str]]
) -> dict[str, list[dict[str, Any]]]:
    procs = []
    for number, share in enumerate(shares):
        workdir = base / f"worker{number}"
        workdir.mkdir()
        out = workdir / "results.jsonl"
        args = [sys.executable, "-m", "tests.hostile.test_cli_matrix", str(pristine), str(workdir)]
        proc = subprocess.Popen(
            [*args, str(out), *share],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, out))
    by_leaf: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    deadline = time.monotonic() + TIMEOUT_S
    for proc, out in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        records = (
            [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        )
        for record in records:
            by_leaf[record["leaf"]].append(record)
        if proc.returncode != 0:
            done = {r["leaf"] for r in records if "runs" in r}
            for name in names:
                if (
                    name in by_leaf
                    and name not in done
                    and not any("runs" in r for r in by_leaf[name])
                ):
                    by_leaf[name].append({"worker": proc.returncode, "stderr": err[-2000:]})
    return by_leaf


def test_the_matrix_covers_every_leaf_command() -> None:
    found = leaves()
    assert len(found) >= 44, sorted(found)
    assert {"restock", "waste", "discrepancy resolve", "shortage ack", "sim run"} <= set(found)


@pytest.mark.parametrize("leaf", sorted(leaves()))
def test_bad_arguments_fail_cleanly(matrix: dict[str, list[dict[str, Any]]], leaf: str) -> None:
    records = matrix[leaf]
    summary = [r for r in records if "runs" in r]
    assert summary, f"the worker did not finish {leaf}: {records}"
    assert summary[0]["runs"] >= 1
    problems = [r for r in records if "problems" in r]
    assert not problems, "\n".join(
        f"adc {r['leaf']} [{r['what']}]: {'; '.join(r['problems'])} — exit {r['exit']}, "
        f"stderr {r['stderr'][:200]!r}"
        for r in problems
    )


if __name__ == "__main__":  # a worker: PRISTINE_DB WORKDIR OUT LEAF...
    pristine_db, workdir_arg, out_arg, *leaf_paths = sys.argv[1:]
    work(leaf_paths, Path(pristine_db), Path(workdir_arg), Path(out_arg))
