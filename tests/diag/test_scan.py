"""scan: what answers, what is missing, what is not in the profile; real frames on each wire tier."""

from __future__ import annotations

import pytest

from adc.diag.results import Verdict
from adc.diag.scan import (
    line_for_port,
    line_for_uri,
    lines_for_profile,
    lines_from_driver,
    parse_addresses,
    scan_driver,
    scan_lines,
)
from adc.errors import BadInput
from adc.profiles import load_profile, resolve_profile_path
from tests.diag.conftest import Open, bench


def scan(rig, profile=None, addresses=(2, 12)):  # type: ignore[no-untyped-def]
    """Scan the rig's lines (the sim tier has none: through the driver port)."""
    lines = lines_from_driver(rig.driver)
    if lines is None:
        return scan_driver(bench(rig))
    if profile is not None:  # the same wire, judged against another profile
        for line in lines:
            line.expected = {a: e for a, e in _expected(profile, line).items()}
    # the expected addresses are always probed; 2 and 12 are empty on both lines
    return scan_lines(
        lines, addresses=list(addresses), timeout_s=0.1, profile=profile or rig.profile
    )


def _expected(profile, line):  # type: ignore[no-untyped-def]
    kinds = {"lockboard": {"lockboard-cu16"}}.get(line.transport, {"modbus-dio", "modbus-loadcell"})
    return {d.address: (n, d.kind) for n, d in profile.devices.items() if d.kind in kinds}


def test_every_device_of_a_healthy_cabinet_answers(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        report = scan(rig)
    assert report.ok, report.failures()
    assert {c.point for c in report.checks} == {"lb0", "lb1", "dio1", "lc1", "lc2"}


def test_an_offline_device_is_missing_and_the_others_still_answer(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("device_offline", "lc1")
        rig.cabinet.sim_inject_fault("device_offline", "lb1")
        report = scan(rig)
    failed = {c.point: c for c in report.failures()}
    assert set(failed) == {"lc1", "lb1"}
    assert failed["lc1"].flags == ["missing"]
    assert {c.point for c in report.checks if c.verdict is Verdict.PASS} == {"lb0", "dio1", "lc2"}


@pytest.mark.parametrize("rig_tier", ["wire-tcp", "wire-rtu"])
def test_a_device_not_in_the_profile_is_named(rig_tier: str) -> None:
    from tests.contract.rigs import RIGS

    full = load_profile(resolve_profile_path("rs485-2bus"))
    smaller = full.model_copy(
        update={"devices": {k: v for k, v in full.devices.items() if k != "lc2"}}
    )
    with RIGS[rig_tier](full, 1) as rig:
        report = scan(rig, profile=smaller, addresses=(2, 11, 12))
    (extra,) = report.failures()
    assert extra.flags == ["not-in-profile"]
    assert extra.subject.startswith("unit 11 on ")  # lc2's unit id


@pytest.mark.parametrize("rig_tier", ["wire-tcp", "wire-rtu"])
def test_a_device_that_answers_as_another_kind_is_named(rig_tier: str) -> None:
    from tests.contract.rigs import RIGS

    full = load_profile(resolve_profile_path("rs485-2bus"))
    swapped = dict(full.devices)
    swapped["lc1"] = full.devices["lc1"].model_copy(update={"address": 1})  # dio1's unit id
    swapped["dio1"] = full.devices["dio1"].model_copy(update={"address": 10})
    with RIGS[rig_tier](full, 1) as rig:
        report = scan(rig, profile=full.model_copy(update={"devices": swapped}))
    wrong = {c.point: c for c in report.failures()}
    # unit 1 is a DIO: no input register 100 (lc1's status word) → exception 02
    assert (
        wrong["lc1"].flags == ["wrong-kind"] and "not like a modbus-loadcell" in wrong["lc1"].reason
    )


@pytest.mark.parametrize("rig_tier", ["wire-tcp", "wire-rtu"])
def test_a_port_that_cannot_be_opened_is_reported_and_the_other_lines_still_scanned(
    rig_tier: str,
) -> None:
    from tests.contract.rigs import RIGS

    with RIGS[rig_tier](load_profile(resolve_profile_path("rs485-2bus")), 1) as rig:
        lines = lines_from_driver(rig.driver)
        assert lines is not None
        bad = line_for_port("/dev/adc-no-such-port", "lockboard", None)
        report = scan_lines([bad, *lines], addresses=[1], timeout_s=0.1, profile=rig.profile)
    first = report.checks[0]
    assert first.flags == ["port"] and "cannot open /dev/adc-no-such-port" in first.reason
    assert sum(1 for c in report.checks if c.verdict is Verdict.PASS) == 5


def test_bad_input_is_named() -> None:
    profile = load_profile(resolve_profile_path("rs485-2bus"))
    with pytest.raises(BadInput, match="has no bus nope; its buses: locks, field"):
        lines_for_profile(profile, ["nope"])
    with pytest.raises(BadInput, match="--uri wants"):
        line_for_uri("sim:rs485-2bus", profile)
    with pytest.raises(BadInput, match="HOST:PORT"):
        line_for_uri("modbus-tcp://localhost", profile)
    with pytest.raises(BadInput, match="numbers and ranges"):
        parse_addresses("1-x")
    assert parse_addresses("1-3,10") == [1, 2, 3, 10]


def test_a_uri_line_expects_the_profiles_devices_of_that_transport() -> None:
    profile = load_profile(resolve_profile_path("rs485-2bus"))
    modbus = line_for_uri("modbus-rtu:///dev/ttyUSB1?baudrate=9600", profile)
    assert modbus.endpoint.baudrate == 9600 and sorted(modbus.expected) == [1, 10, 11]
    boards = line_for_uri("lockboard:///dev/ttyUSB0", profile)
    assert sorted(boards.expected) == [0, 1]


def test_a_uri_names_its_profile_with_a_query_parameter() -> None:
    """`--uri 'modbus-rtu://PORT?profile=NAME'` is judged by that profile, as with --profile."""
    line = line_for_uri("modbus-rtu:///dev/ttyUSB1?baudrate=9600&profile=rs485-2bus", None)
    assert line.profiled and sorted(line.expected) == [1, 10, 11]
    assert line.endpoint.baudrate == 9600
    assert line.profile is not None and line.profile.name == "rs485-2bus"
    boards = line_for_uri("lockboard:///dev/ttyUSB0?profile=rs485-2bus", None)
    assert sorted(boards.expected) == [0, 1]
