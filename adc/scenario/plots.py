"""PNG plots of a run (matplotlib, an optional extra: imported here and nowhere else).

- `stock.png`: the controller's on-hand over time for the busiest pockets, with their par and
  critical-low levels, so a stock-out or a late refill shows as a line sitting on zero;
- `discrepancies.png`: discrepancies opened and resolved, cumulative, per day;
- `faults.png`: each injected fault as a bar from injection to repair, marked where the cabinet
  detected it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from adc.errors import BadInput
from adc.scenario.world import World


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BadInput("--plot needs matplotlib: pip install 'adc[plot]'") from None
    return plt


def write_plots(world: World, out: Path, busiest: int = 6) -> list[Path]:
    plt = _pyplot()
    paths = [
        _stock(plt, world, out / "stock.png", busiest),
        _discrepancies(plt, world, out / "discrepancies.png"),
        _faults(plt, world, out / "faults.png"),
    ]
    return paths


def _days(world: World, t: float) -> float:
    return (t - world.t0) / 86400


def _stock(plt, world: World, path: Path, busiest: int) -> Path:  # type: ignore[no-untyped-def]
    removals = Counter((e["cabinet"], e["pocket"]) for e in world.events if e["event"] == "removal")
    ranked = [key for key, _ in removals.most_common(busiest)] or sorted(world.levels)[:busiest]
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    end = _days(world, world.horizon_s)
    for cabinet, pocket in ranked:
        series = world.levels.get((cabinet, pocket), [])
        if not series:
            continue
        xs, ys = [], []
        for t, on_hand in series:
            if xs:
                xs.append(_days(world, t))
                ys.append(ys[-1])
            xs.append(_days(world, t))
            ys.append(on_hand)
        xs.append(end)
        ys.append(ys[-1])
        info = world.stations[cabinet].pockets[pocket]
        prefix = f"{cabinet}/" if len(world.stations) > 1 else ""
        line = ax.plot(xs, ys, lw=1.4, label=f"{prefix}{pocket} {info.item.label}")[0]
        ax.axhline(info.stock.critical_low, color=line.get_color(), lw=0.7, ls=":", alpha=0.8)
    ax.set_xlim(0, end)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("day")
    ax.set_ylabel("on hand (units)")
    ax.set_title(
        f"{world.loaded.scenario.name}: stock of the busiest pockets (dotted: critical low)"
    )
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.set_ylim(0, 1)
        ax.text(end / 2, 0.5, "no stocked pockets", ha="center", va="center", color="grey")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _discrepancies(plt, world: World, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for event, label in (("discrepancy_opened", "opened"), ("discrepancy_resolved", "resolved")):
        times = sorted(_days(world, e["t"]) for e in world.events if e["event"] == event)
        xs = [0.0, *times, _days(world, world.horizon_s)]
        ys = [0, *range(1, len(times) + 1), len(times)]
        ax.step(xs, ys, where="post", label=f"{label} ({len(times)})")
    total = sum(e["event"] == "discrepancy_opened" for e in world.events)
    ax.set_xlim(0, _days(world, world.horizon_s))
    ax.set_ylim(0, max(total, 1) * 1.05)  # a count: never below 0 (no events: 0..1, not ±0.04)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("day")
    ax.set_ylabel("discrepancies (cumulative)")
    ax.set_title(f"{world.loaded.scenario.name}: discrepancies (resolution: {world.resolver_name})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _faults(plt, world: World, path: Path) -> Path:  # type: ignore[no-untyped-def]
    faults = world.faults
    height = max(3.0, 0.32 * len(faults) + 1.5)
    fig, ax = plt.subplots(figsize=(10, min(height, 14)), dpi=110)
    end = _days(world, world.horizon_s)
    for row, fault in enumerate(faults):
        start = _days(world, fault.at)
        stop = _days(world, fault.repaired_at) if fault.repaired_at else end
        colour = "tab:red" if fault.detected_at is None else "tab:orange"
        ax.barh(row, max(stop - start, end / 400), left=start, color=colour, height=0.6)
        if fault.detected_at is not None:
            ax.plot(_days(world, fault.detected_at), row, "k|", markersize=12)
    ax.set_yticks(range(len(faults)))
    ax.set_yticklabels([f"{f.cabinet} {f.kind} {f.target or ''}" for f in faults], fontsize=7)
    ax.set_xlim(0, end)
    if not faults:  # an empty chart says so, with no made-up axis
        ax.set_ylim(-0.5, 0.5)
        ax.set_yticks([])
        ax.text(end / 2, 0, "no faults injected", ha="center", va="center", color="grey")
    ax.invert_yaxis()
    ax.set_xlabel("day")
    detected = sum(f.detected_at is not None for f in faults)
    ax.set_title(
        f"faults: {len(faults)} injected, {detected} detected (|), bar until repaired; "
        "red: never detected"
    )
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
