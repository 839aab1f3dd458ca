#!/usr/bin/env python3
"""Set up and run adc with nothing but Python >= 3.11 and pip.

    python3 dev.py demo     create .venv, install adc, run `adc demo`
    python3 dev.py test     create .venv, install adc with its test extras, lint, run the whole suite

Extra arguments after the command go to `adc demo` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ADC_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv(extras: str) -> None:
    """Create the venv and install adc into it, again only when pyproject.toml or extras change."""
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py may be run by an older python3
        sys.exit(f"adc needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".adc-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    # -qq: setuptools' "Editable installation ... be careful with folders" warning (printed on
    # every flat-layout editable install) is not the newcomer's concern; errors still show.
    run(BIN / "python", "-m", "pip", "install", "-qq", "-e", target)
    stamp.write_text(digest)


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "demo":
        ensure_venv("")
        run(BIN / "adc", "demo", *rest)
    elif command == "test":
        ensure_venv("test")
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "python", "-m", "pytest", *(rest or ["-q"]))
    else:
        print(__doc__)
        sys.exit(0 if command == "help" else 2)


if __name__ == "__main__":
    main()
