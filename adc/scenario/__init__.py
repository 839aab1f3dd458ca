"""Scenarios: days of simulated ward activity through the real controller (the top floor of adc/sim).

`load_scenario(path)` checks a scenario file (every problem with key path and line);
`run_scenario(loaded, seed=, days=, db_url=, wire=)` runs it in SimPy time and returns the KPIs and
the events. See docs/test-engineer-guide.md.
"""

from adc.scenario.loader import LoadedScenario, ScenarioError, load_scenario
from adc.scenario.runner import RunResult, run_scenario

__all__ = ["LoadedScenario", "RunResult", "ScenarioError", "load_scenario", "run_scenario"]
