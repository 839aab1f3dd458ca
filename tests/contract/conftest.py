"""The contract suite's fixtures: every backend in `RIGS` × every shipped profile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adc.profiles import load_profile
from adc.profiles.models import Profile
from tests.conftest import SHIPPED_PROFILES
from tests.contract.rigs import RIGS, Rig

SEED = 7


@pytest.fixture(params=SHIPPED_PROFILES, ids=lambda p: p.stem)
def profile(request: pytest.FixtureRequest) -> Profile:
    return load_profile(request.param)


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, profile: Profile) -> Iterator[Rig]:
    with RIGS[request.param](profile, SEED) as built:
        yield built
