"""What the restock screen and a script's text lines say is what the technician reads: a key's
syntax in square brackets is text, not rich markup, and a blind line has no dangling dash."""

from __future__ import annotations

from rich.console import Console

from adc.session.events import Event
from adc.session.terminal import HELP
from adc.session.text import describe


def shown(markup: str) -> str:
    console = Console(width=400, record=True, color_system=None)
    console.print(markup)
    return console.export_text()


def test_help_shows_the_skip_syntax() -> None:
    assert "skip [reason] = out of stock" in shown(HELP)


def test_a_blind_line_reads_without_an_empty_quantity() -> None:
    event = Event(
        "line",
        {"pocket": "D3-P1", "drawer": "D3", "item": "Morphine 2 mg/mL", "need": None},
    )
    text = shown(describe(event) or "")
    assert "Morphine 2 mg/mL (count it on access, blind)" in text
    assert "— " not in text
    loaded = shown(describe(Event("line", {**event.data, "need": 4, "on_hand": 2})) or "")
    assert "Morphine 2 mg/mL — load 4 (on hand 2)" in loaded
