"""A sweep's files, written as runs finish so an interrupted sweep keeps every finished run.

- `runs.jsonl`: one JSON object a run, appended and flushed the moment it finishes (the whole KPI
  tree, the parameters, the seed, status and error, wall time and worker);
- `runs.csv`: the same runs flat, one column per numeric KPI (dotted keys); rewritten whole
  (to a temporary file, then renamed) at most every `CSV_EVERY_S` and at the end, because the
  KPI columns grow as runs report new keys — a reader never sees half a file;
- `summary.json` / `summary.csv`: per parameter combination, the statistics of every numeric KPI
  (`adc.scenario.sweep_stats`), written at the end (also after Ctrl-C, over the finished runs).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from adc.scenario.sweep_spec import Sweep
from adc.scenario.sweep_stats import STATS, numeric_kpis, summarise

CSV_EVERY_S = 2.0
FILES = ("runs.jsonl", "runs.csv", "summary.json", "summary.csv")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple, bool)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        write(out)
    os.replace(tmp, path)


class SweepFiles:
    """The output directory of one sweep."""

    def __init__(self, out: Path, sweep: Sweep) -> None:
        self.out = out
        self.sweep = sweep
        self.rows: list[dict[str, Any]] = []
        self._csv_at = 0.0
        for name in FILES:  # a previous sweep's files here would mix with this one's
            (out / name).unlink(missing_ok=True)
        for old in out.glob("kpi-*.png"):
            old.unlink()
        self._jsonl = (out / "runs.jsonl").open("w", encoding="utf-8")

    def add(self, row: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) + "\n")
        self._jsonl.flush()
        self.rows.append(row)
        if time.monotonic() - self._csv_at >= CSV_EVERY_S:
            self.write_csv()

    def write_csv(self) -> None:
        self._csv_at = time.monotonic()
        rows = sorted(self.rows, key=lambda r: r["run"])
        flat = [numeric_kpis(r["kpis"]) if r["kpis"] else {} for r in rows]
        kpi_columns = sorted({key for f in flat for key in f})
        head = ["run", "combo", "seed", *self.sweep.keys, "status", "error", "wall_s", "cpu_s"]
        head.append("worker")

        def write(out: Any) -> None:
            writer = csv.writer(out)
            writer.writerow(head + kpi_columns)
            for row, kpis in zip(rows, flat, strict=True):
                fixed = [row["run"], row["combo"], row["seed"]]
                fixed += [_cell(row["params"].get(k)) for k in self.sweep.keys]
                fixed += [row["status"], _cell(row["error"]), row["wall_s"], row.get("cpu_s")]
                fixed.append(row["worker"])
                writer.writerow(fixed + [_cell(kpis.get(k)) for k in kpi_columns])

        _replace(self.out / "runs.csv", write)

    def finish(self, *, interrupted: bool) -> list[dict[str, Any]]:
        """Close runs.jsonl, write runs.csv and the summaries; return the summary."""
        self._jsonl.close()
        self.write_csv()
        combos = [dict(p) for p in self.sweep.combos]
        summary = summarise(self.rows, combos)
        document = {
            "scenario": self.sweep.name,
            "file": str(self.sweep.scenario),
            "days": self.sweep.days,
            "seeds": list(self.sweep.seeds),
            "keys": list(self.sweep.keys),
            "runs_planned": self.sweep.total,
            "runs_finished": len(self.rows),
            "runs_failed": sum(r["status"] != "ok" for r in self.rows),
            "interrupted": interrupted,
            "combinations": summary,
        }
        _replace(
            self.out / "summary.json",
            lambda out: out.write(
                json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
            ),
        )

        def write(out: Any) -> None:
            writer = csv.writer(out)
            writer.writerow(["combo", *self.sweep.keys, "runs", "ok", "failed", "kpi", *STATS])
            for entry in summary:
                lead = [entry["combo"], *(_cell(entry["params"][k]) for k in self.sweep.keys)]
                lead += [entry["runs"], entry["ok"], entry["failed"]]
                for kpi, stats in entry["kpis"].items():
                    writer.writerow(lead + [kpi] + [_cell(stats[s]) for s in STATS])

        _replace(self.out / "summary.csv", write)
        return summary


__all__ = ["FILES", "SweepFiles"]
