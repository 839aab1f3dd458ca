"""Fixtures for the virtual cabinet's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from adc.profiles import load_profile
from adc.profiles.models import Profile
from adc.sim.cabinet import VirtualCabinet
from tests.conftest import PROFILES


def shipped(name: str) -> Profile:
    return load_profile(PROFILES / f"{name}.toml")


def variant(tmp_path: Path, base: str, replacements: dict[str, str]) -> Profile:
    """A shipped profile with some text replaced (each replacement must apply)."""
    text = (PROFILES / f"{base}.toml").read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{base}-variant.toml"
    path.write_text(text)
    return load_profile(path)


@pytest.fixture
def tcp() -> VirtualCabinet:
    return VirtualCabinet(shipped("tcp-6drawer"), seed=1)


@pytest.fixture
def rs485() -> VirtualCabinet:
    return VirtualCabinet(shipped("rs485-2bus"), seed=1)


@pytest.fixture
def cs() -> VirtualCabinet:
    return VirtualCabinet(shipped("cs-small"), seed=1)
