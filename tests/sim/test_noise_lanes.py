"""`GaussianLanes` draws a load-cell module's channels' noise at once; a run's readings (and so
its KPIs) stay what `gaussian` gives channel by channel only if every lane's float is the same,
bit for bit, for any keys and sample, the 64-bit edges included."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from adc.sim.noise import GaussianLanes, gaussian, stable_key

U64 = st.integers(min_value=0, max_value=2**64 - 1)
EDGES = st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1])


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


@settings(max_examples=400, deadline=None)
@given(keys=st.lists(U64 | EDGES, min_size=1, max_size=16), sample=U64 | EDGES)
def test_every_lane_is_gaussian_bit_for_bit(keys: list[int], sample: int) -> None:
    lanes = GaussianLanes(keys)
    drawn = lanes.draw(sample)
    assert [_bits(x) for x in drawn] == [_bits(gaussian(key, sample)) for key in keys]


def test_a_sample_drawn_again_and_samples_in_turn_agree() -> None:
    keys = [stable_key("seed", "lc0", channel) for channel in range(8)]
    lanes = GaussianLanes(keys)
    for sample in (5, 6, 5, 5, 2**40, 7):
        assert [_bits(x) for x in lanes.draw(sample)] == [
            _bits(gaussian(key, sample)) for key in keys
        ]
