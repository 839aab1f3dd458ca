"""`adc report fleet`: every cabinet at once (last change, alarms, discrepancies, drawers out of
service, critical-low pockets, expiring lots); it adds itself to adc.commands.reports.app."""

from __future__ import annotations

from adc.commands.common import DbOption, JsonOption
from adc.commands.reports import CabinetList, CsvOption, app, cabinet_list, show_rows


@app.command("fleet")
def fleet_report(
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Every cabinet at once: last change, alarms, discrepancies, out of service, low, expiring.

    Per cabinet: the last change, alarms in the last 24 h, open discrepancies, drawers out of service, critical-low pockets, and lots expiring within the short-dated days.
    """
    from adc.commands.access import open_controller
    from adc.controller.fleet import FleetRow, fleet_status

    names = cabinet_list(cabinet)
    rows = fleet_status(open_controller(db), names)
    show_rows(
        rows,
        FleetRow,
        as_json=as_json,
        as_csv=as_csv,
        title="fleet",
        empty="no cabinets registered",
        columns=[
            "cabinet",
            "last change",
            "alarms 24h",
            "open discrepancies",
            "drawers out of service",
            "critical-low pockets",
            "expiring lots",
        ],
        cells=lambda r: [
            r.cabinet,
            (r.last_change or "—")[:16].replace("T", " "),
            str(r.alarms_24h),
            str(r.open_discrepancies),
            str(r.drawers_out_of_service),
            str(r.critical_low_pockets),
            str(r.expiring_lots),
        ],
        priority=[1, 2, 1, 1, 1, 1, 1],
    )
