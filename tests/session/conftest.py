"""Fixtures of the restock-session tests (see helpers.py for the site they build)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.site import fast_pins
from tests.session.helpers import SessionSite, build_session_site


@pytest.fixture
def session_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionSite]:
    """A fresh SQLite site; PIN hashes stored at a cheap scrypt cost so `adc` verifies them fast."""
    fast_pins(monkeypatch)
    built = build_session_site(tmp_path / "adc.db")
    yield built
    built.site.ctl.db.close()
