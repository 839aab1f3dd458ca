"""`adc report` commands of one feature; they add themselves to adc.commands.reports.app."""

from __future__ import annotations
