"""`adc study`: investigational drugs' studies (protocols), their items and authorized users."""

from __future__ import annotations

from adc.commands.common import command_group

app = command_group("Investigational drugs: studies, their items, authorized users.")
