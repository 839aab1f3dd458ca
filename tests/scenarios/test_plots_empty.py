"""Plots of a run where nothing happened (issue 20 item 10): counts start at 0, never a ±0.04 axis."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adc.scenario import plots

pytest.importorskip("matplotlib")


class _Keep:
    """pyplot, but the figures are kept open for the test to look at."""

    def __init__(self, plt: Any) -> None:
        self._plt = plt
        self.figures: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plt, name)

    def close(self, fig: Any) -> None:
        self.figures.append(fig)


def test_a_run_without_discrepancies_or_faults_draws_honest_axes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = _Keep(plots._pyplot())
    monkeypatch.setattr(plots, "_pyplot", lambda: keep)
    world = SimpleNamespace(
        events=[],
        faults=[],
        levels={},
        stations={},
        t0=0.0,
        horizon_s=86400.0,
        resolver_name="none",
        loaded=SimpleNamespace(scenario=SimpleNamespace(name="quiet")),
    )
    plots.write_plots(world, tmp_path)  # type: ignore[arg-type]
    _stock, discrepancies, faults = (fig.axes[0] for fig in keep.figures)
    low, high = discrepancies.get_ylim()
    assert low == 0 and high >= 1
    assert faults.get_yticks().size == 0
    assert any("no faults injected" in t.get_text() for t in faults.texts)
    for fig in keep.figures:
        keep._plt.close(fig)
    assert (tmp_path / "discrepancies.png").exists() and (tmp_path / "faults.png").exists()
