"""A discrepancy resolver whose import kills the process on the spot, as a crash in native code or
the kernel's OOM killer would (tests/scenarios/test_sweep_runs.py). Only where the test asks for
it, so importing this by accident kills nothing."""

import os

if os.environ.get("ADC_TEST_SWEEP_CRASH") == "1":
    os._exit(70)


def resolve(*_args: object, **_kwargs: object) -> None:
    """Never reached in the crash test."""
