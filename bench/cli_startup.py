"""How fast `adc --help` answers, next to a bare one-command typer app measured in the same run.

Target (issue 2): adc's median ≤ 1.3 × the bare app's. Run: `.venv/bin/python bench/cli_startup.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 21
BARE_APP = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


app()
'''


def median_seconds(cmd: list[str]) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE_APP)
        baseline = median_seconds([sys.executable, str(bare), "--help"])
    rows = [
        ("bare typer app --help", baseline),
        ("adc --help", median_seconds([sys.executable, "-m", "adc", "--help"])),
        ("adc profile --help", median_seconds([sys.executable, "-m", "adc", "profile", "--help"])),
    ]
    print(f"median of {RUNS} runs each")
    for name, seconds in rows:
        print(f"{name:<24} {seconds * 1000:7.1f} ms   ratio {seconds / baseline:4.2f}")
    worst = max(seconds for _, seconds in rows[1:]) / baseline
    print(f"worst ratio {worst:.2f} (target <= 1.30)")


if __name__ == "__main__":
    main()
