"""What `adc station status` shows: the database's account plus the station's status file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adc.controller import maintenance, notifications, quarantine, supervision
from adc.controller.access_log import open_accesses
from adc.station.lease import state_dir, status_path

if TYPE_CHECKING:
    from adc.controller.context import Controller


def read_status_file(cabinet: str, directory: Path | None = None) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(directory or state_dir(), cabinet).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def station_status(ctl: Controller, cabinet: str, directory: Path | None = None) -> dict[str, Any]:
    last = supervision.last_station(ctl, cabinet)
    current = supervision.holder(ctl, cabinet)
    file = read_status_file(cabinet, directory)
    if current is not None:
        pid = current.owner.split("|")[2] if current.owner.count("|") >= 2 else "?"
        station: dict[str, Any] = {
            "running": True,
            "pid": int(pid) if pid.isdigit() else pid,
            "owner": current.owner,
            "started_at": current.started_at.isoformat(),
            "listen": (file or {}).get("listen") or current.listen,
        }
    else:
        why = (
            "never started"
            if last is None
            else "stopped"
            if last.stopped
            else "its process is gone (killed or crashed): the next start flags open accesses"
        )
        station = {"running": False, "why": why}
    age = None
    if current is not None and file and file.get("last_snapshot_at") and file.get("running"):
        seen = datetime.fromisoformat(file["last_snapshot_at"])
        age = round((datetime.now(UTC) - seen).total_seconds(), 3)
    since = last.started_at if last is not None else None
    accesses = [
        {
            "id": r.id,
            "drawer": r.drawer_code,
            "pocket": r.pocket_code,
            "purpose": r.purpose,
            "user": None,
            "opened_at": r.opened_at.isoformat(),
        }
        for r in open_accesses(ctl, cabinet)
    ]
    for a, o in zip(accesses, supervision.current_accesses(ctl, cabinet), strict=False):
        a["user"] = o.user
    recount = [
        {"drawer": f.drawer, "pocket": f.pocket, "kind": f.kind, "detail": f.detail,
         "at": f.at.isoformat(), "event": f.id}
        for failures in maintenance.out_of_service(ctl, cabinet).values()
        for f in failures
    ]  # fmt: skip
    alarms = [
        {"id": e.id, "at": e.at.isoformat(), "kind": e.kind, "drawer": e.drawer_code,
         "pocket": e.pocket_code, "detail": e.detail}
        for e in supervision.alarm_history(ctl, cabinet, since=since)
    ]  # fmt: skip
    return {
        "cabinet": cabinet,
        "station": station,
        "snapshot_age_s": age,
        "polls": (file or {}).get("polls"),
        "bus": (file or {}).get("bus") if current is not None else None,
        "doors_open": (file or {}).get("doors_open") if current is not None else None,
        "accesses": accesses,
        "recount": recount,
        "quarantines": [
            q.as_json() for q in quarantine.list_quarantines(ctl, cabinet, open_only=True)
        ],
        "notifications": [
            n.as_json() for n in notifications.list_notifications(ctl, cabinet, pending_only=True)
        ],
        "alarms": alarms,
    }
