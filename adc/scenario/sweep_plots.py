"""PNG plots of a sweep (matplotlib, the `plot` extra: imported here and nowhere else).

`kpi-<KEY>.png` per chosen KPI: its distribution over the seeds for each parameter combination,
a box (quartiles, whiskers at 1.5 IQR) with every run drawn as a point on it and the mean ± 95%
confidence interval beside it, so the spread a single run hides is what the eye meets first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from adc.scenario.sweep_stats import numeric_kpis

# What a test engineer asks of a design first: what the nurses missed, what ran out, what it cost.
DEFAULT_KPIS = (
    "removals.refused",
    "stock_outs.hours_out",
    "discrepancies.total_opened",
    "removals.mean_wait_s",
)


def _label(params: dict[str, Any]) -> str:
    """A tick shows the values; the axis title names the keys (long: `cabinets[0].stock[2].par`)."""
    return "\n".join(str(v) for v in params.values()) or "as in the file"


def _filename(kpi: str) -> str:
    return "kpi-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", kpi)[:100] + ".png"


def write_sweep_plots(
    out: Path,
    title: str,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    kpis: list[str],
) -> dict[str, Path]:
    """One PNG per KPI in `kpis` that some finished run reports; returns them by KPI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values: dict[str, list[list[float]]] = {k: [[] for _ in summary] for k in kpis}
    for row in sorted(rows, key=lambda r: r["run"]):
        if row["status"] != "ok":
            continue
        flat = numeric_kpis(row["kpis"])
        for kpi in kpis:
            if kpi in flat:
                values[kpi][row["combo"]].append(flat[kpi])
    written: dict[str, Path] = {}
    for kpi in kpis:
        series = values[kpi]
        if not any(series):
            continue
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(summary) + 2), 4.8), dpi=110)
        positions = list(range(1, len(series) + 1))
        kept = [(p, s) for p, s in zip(positions, series, strict=True) if s]
        ax.boxplot(
            [s for _, s in kept], positions=[p for p, _ in kept], widths=0.5, showfliers=False
        )  # every run is drawn as a point: no separate outlier marks
        for position, points in kept:
            spread = 0.18
            xs = [
                position - spread + 2 * spread * (i + 0.5) / len(points) for i in range(len(points))
            ]
            ax.plot(xs, points, "o", alpha=0.45, markersize=4, color="tab:blue")
            stats = summary[position - 1]["kpis"].get(kpi)
            if stats and stats["ci95_low"] is not None:
                ax.errorbar(
                    [position + 0.33],
                    [stats["mean"]],
                    yerr=[
                        [stats["mean"] - stats["ci95_low"]],
                        [stats["ci95_high"] - stats["mean"]],
                    ],
                    fmt="D",
                    color="tab:red",
                    capsize=4,
                    markersize=5,
                )
        ax.set_xticks(positions)
        ax.set_xticklabels([_label(e["params"]) for e in summary], fontsize=8)
        ax.set_xlabel(" / ".join(summary[0]["params"]) if summary[0]["params"] else "")
        ax.set_ylabel(kpi)
        runs = sum(len(s) for s in series)
        ax.set_title(f"{title}: {kpi} ({runs} runs; red: mean ± 95% CI)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out / _filename(kpi)
        fig.savefig(path)
        plt.close(fig)
        written[kpi] = path
    return written


__all__ = ["DEFAULT_KPIS", "write_sweep_plots"]
