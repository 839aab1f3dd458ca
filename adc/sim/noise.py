"""Seeded randomness that does not depend on who reads first.

A load cell's noise is a pure function of (seed, channel, sample number): a weighing module converts
at a fixed rate and answers every read inside one conversion period with the same value, so reading a
channel twice at one instant gives the same number, a snapshot agrees with single reads, and the
order in which a test polls the channels cannot change what it sees. Python's `hash()` of a string
changes from process to process, so keys are derived with blake2b instead.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from math import cos, log, sqrt  # bound once: `gaussian` runs for every channel of a snapshot

_MASK = (1 << 64) - 1
_UNIT = float(1 << 53)  # 53 random bits → a float in [0, 1): the same constant every call
_TWO_PI = 2.0 * math.pi
# SplitMix64's increment and multipliers (named once for `splitmix64` and `gaussian`)
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def stable_key(*parts: str | int | float) -> int:
    """A 64-bit key from its parts, the same in every process (unlike `hash()`)."""
    text = "\x1f".join(repr(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def splitmix64(value: int) -> int:
    """One step of SplitMix64: a fast, well-mixed 64-bit hash of an integer."""
    z = (value + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


# The last sample's hash: every channel of a module converts at the same instants, so a snapshot
# asks for the same sample number once per channel (the value is the same, only not recomputed).
_last_sample: list[int] = [-1, splitmix64(_MASK)]


def gaussian(key: int, sample: int) -> float:
    """A standard normal variate for (key, sample), by Box–Muller over two SplitMix64 draws."""
    sample &= _MASK
    last = _last_sample
    if last[0] != sample:
        last[0], last[1] = sample, splitmix64(sample)
    # splitmix64(key ^ last[1]), then splitmix64 of that, written out (the hot path of a snapshot)
    z = ((key ^ last[1]) + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    a = z ^ (z >> 31)
    z = (a + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    b = z ^ (z >> 31)
    u1 = ((a >> 11) + 1) / _UNIT  # (0, 1]: log stays finite
    u2 = (b >> 11) / _UNIT
    return sqrt(-2.0 * log(u1)) * cos(_TWO_PI * u2)


_LANE = 128  # bits per key in `GaussianLanes`: room for a 64 × 64-bit product, so none carries


def _lanes_of(value: int, n: int) -> int:
    """`value` (< 2**64) in each of n lanes."""
    return sum(value << (_LANE * i) for i in range(n))


class GaussianLanes:
    """`gaussian(key, sample)` of a fixed list of keys for one sample at once: the same floats,
    bit for bit, at about half the cost per key (a load-cell module's channels all convert at
    the same instants, so a weight read needs every channel's draw for one sample).

    The SplitMix64 steps run on all keys together, as SIMD within a register: key i sits in
    bits 128·i .. 128·i+63 of one big int, so adding the increment or multiplying by a 64-bit
    constant never carries into the next lane, and masking every lane back to 64 bits after each
    step (which also drops what a right shift brings down from the lane above) leaves each lane
    exactly the value `splitmix64` computes. A dozen big-int operations in all instead of a
    dozen per key; only the Box–Muller step runs key by key.
    """

    def __init__(self, keys: Sequence[int]) -> None:
        n = len(keys)
        self._keys = sum((key & _MASK) << (_LANE * i) for i, key in enumerate(keys))
        self._ones = _lanes_of(1, n)
        self._mask = _lanes_of(_MASK, n)
        self._golden = _lanes_of(_GOLDEN, n)
        self._bytes = _LANE // 8 * n
        self._words = struct.Struct("<" + "Q8x" * n)  # each lane's low 64 bits
        self._last: tuple[int, list[float]] = (-1, [])

    def draw(self, sample: int) -> list[float]:
        """`[gaussian(key, sample) for key in keys]` (kept for the next draw of the same
        sample: the caller does not change it)."""
        sample &= _MASK
        if self._last[0] == sample:
            return self._last[1]
        last = _last_sample  # shared with `gaussian`: the same hash of the same sample
        if last[0] != sample:
            last[0], last[1] = sample, splitmix64(sample)
        a = self._splitmix(self._keys ^ (last[1] * self._ones))
        b = self._splitmix(a)
        # `gaussian`'s u1 and u2, as 53-bit integers over 2**53, each lane's taken at once
        mask, size, unpack = self._mask, self._bytes, self._words.unpack
        u1 = unpack((((a >> 11) & mask) + self._ones).to_bytes(size, "little"))
        u2 = unpack(((b >> 11) & mask).to_bytes(size, "little"))
        draws = [
            sqrt(-2.0 * log(i1 / _UNIT)) * cos(_TWO_PI * (i2 / _UNIT))
            for i1, i2 in zip(u1, u2, strict=True)
        ]
        self._last = (sample, draws)
        return draws

    def _splitmix(self, z: int) -> int:
        """`splitmix64` of every lane."""
        mask = self._mask
        z = (z + self._golden) & mask
        z = ((z ^ (z >> 30)) & mask) * _MIX1 & mask
        z = ((z ^ (z >> 27)) & mask) * _MIX2 & mask
        return z ^ ((z >> 31) & mask)
