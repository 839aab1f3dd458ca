"""Changing site policy: validated, stored, audited, and applied to the running controller."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from adc.controller.context import Actor, Controller
from adc.controller.models import Setting
from adc.controller.permissions import Action
from adc.controller.policy import parse_setting


def set_setting(ctl: Controller, actor: Actor, name: str, value: str) -> Any:
    """Set one policy value (`short-dated-days`, `shortage-sink`, ...); returns the typed value."""
    key, typed = parse_setting(name, value)
    with ctl.write(actor, Action.SETTINGS_MANAGE) as tx:
        row = tx.session.get(Setting, f"policy.{key}")
        before = row.value if row else None
        if row is None:
            tx.session.add(Setting(key=f"policy.{key}", value=value))
        else:
            row.value = value
        tx.audit("settings.set", {"key": key, "before": before, "after": value})
    ctl.policy = ctl.load_policy()
    return typed


def current_settings(ctl: Controller) -> dict[str, Any]:
    return {key.replace("_", "-"): value for key, value in asdict(ctl.policy).items()}
