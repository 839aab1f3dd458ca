"""How fast `adc --help` answers, next to a bare typer app with two commands measured in the same run.

The bare app has two commands so that typer runs it as a group, as it runs `adc` (with one command
typer runs the command itself, which skips the group and reads faster than any real CLI can).
Runs are paired (bare, then adc, ...) so that load from elsewhere on the machine hits both alike;
the ratio is the median of the per-pair ratios.

Both run as an installed CLI does: with bytecode (`PYTHONDONTWRITEBYTECODE` is dropped from the
environment of the runs and a warm-up run writes the `.pyc` files), so the figures compare start-up,
not compiling source.

Target (issue 20, item 11): every ratio ≤ 1.3. Run: `.venv/bin/python bench/cli_startup.py [RUNS]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
TARGET = 1.3
BARE_APP = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def goodbye(name: str = "world") -> None:
    """Say goodbye."""
    print(f"goodbye {name}")


app()
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - start


def paired(bare: list[str], cmd: list[str], runs: int) -> tuple[float, float, float]:
    """(median bare s, median cmd s, median of the per-pair ratios)."""
    env = _env()
    for _ in range(2):  # write the bytecode, warm the file cache
        _once(bare, env)
        _once(cmd, env)
    pairs = [(_once(bare, env), _once(cmd, env)) for _ in range(runs)]
    return (
        statistics.median(b for b, _ in pairs),
        statistics.median(c for _, c in pairs),
        statistics.median(c / b for b, c in pairs),
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    adc = [sys.executable, "-m", "adc"]
    with tempfile.TemporaryDirectory() as tmp:
        bare_path = Path(tmp) / "bare.py"
        bare_path.write_text(BARE_APP)
        bare = [sys.executable, str(bare_path), "--help"]
        rows = [
            ("adc --help", paired(bare, [*adc, "--help"], runs)),
            ("adc profile --help", paired(bare, [*adc, "profile", "--help"], runs)),
            ("adc restock --help", paired(bare, [*adc, "restock", "--help"], runs)),
        ]
    print(f"{runs} paired runs each against a bare two-command typer app (`--help`)")
    for name, (base, seconds, ratio) in rows:
        print(
            f"{name:<22} {seconds * 1000:7.1f} ms   bare {base * 1000:7.1f} ms   ratio {ratio:4.2f}"
        )
    worst = max(ratio for _, (_, _, ratio) in rows)
    print(f"worst ratio {worst:.2f} (target <= {TARGET:.2f})")


if __name__ == "__main__":
    main()
