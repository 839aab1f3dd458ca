"""The profile commands through the real entry point: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PROFILES, SHIPPED_PROFILES, run_adc


def test_validate_shipped_profiles_exits_0() -> None:
    result = run_adc("profile", "validate", *map(str, SHIPPED_PROFILES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == len(SHIPPED_PROFILES)


def test_validate_lists_every_error_of_every_file_and_exits_2(tmp_path: Path) -> None:
    bad1 = tmp_path / "bad1.toml"
    bad1.write_text((PROFILES / "tcp-6drawer.toml").read_text().replace('"lc1:ch.2"', '"lc1:ch.9"'))
    bad2 = tmp_path / "bad2.toml"
    bad2.write_text((PROFILES / "cs-small.toml").read_text().replace("retries = 2", "retries = -1"))
    result = run_adc("profile", "validate", str(bad1), str(bad2), str(PROFILES / "cs-small.toml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        f"{bad1}:" in result.stderr and "layout.drawers[0].pockets[2].sensor.point" in result.stderr
    )
    assert f"{bad2}:" in result.stderr and "buses.rtu.retries" in result.stderr
    assert "ok " in result.stdout  # the valid file is still reported


def test_validate_missing_file_is_a_clear_error() -> None:
    result = run_adc("profile", "validate", "no/such/profile.toml")
    assert result.returncode == 2
    assert "no/such/profile.toml: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_renders_tree_and_json() -> None:
    result = run_adc("profile", "show", "tcp-6drawer")
    assert result.returncode == 0, result.stderr
    assert "drawer D3" in result.stdout and "lid lock dio1:coil.6" in result.stdout
    result = run_adc("profile", "show", str(PROFILES / "cs-small.toml"), "--json")
    data = json.loads(result.stdout)
    assert data["name"] == "cs-small"
    assert data["layout"]["drawers"][2]["pockets"][0]["temperature"] == "dio1:ai.0"


def test_schema_is_json_schema() -> None:
    result = run_adc("profile", "schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "Profile"
    assert {"buses", "devices", "layout"} <= set(schema["properties"])


def test_bad_cli_usage_exits_2_without_traceback() -> None:
    result = run_adc("profile", "frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    result = run_adc("profile", "show")
    assert result.returncode == 2
