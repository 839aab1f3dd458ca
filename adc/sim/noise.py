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

_MASK = (1 << 64) - 1
_UNIT = float(1 << 53)  # 53 random bits → a float in [0, 1): the same constant every call
_TWO_PI = 2.0 * math.pi


def stable_key(*parts: str | int | float) -> int:
    """A 64-bit key from its parts, the same in every process (unlike `hash()`)."""
    text = "\x1f".join(repr(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def splitmix64(value: int) -> int:
    """One step of SplitMix64: a fast, well-mixed 64-bit hash of an integer."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
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
    z = ((key ^ last[1]) + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    a = z ^ (z >> 31)
    z = (a + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    b = z ^ (z >> 31)
    u1 = ((a >> 11) + 1) / _UNIT  # (0, 1]: log stays finite
    u2 = (b >> 11) / _UNIT
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)
