"""Every command's help is written in paragraphs: rich prints a docstring's line breaks as they
are, so a paragraph wrapped in the source breaks mid-sentence on a terminal of any width."""

from __future__ import annotations

import click
import typer.main

from adc.cli import app


def _commands(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(getattr(command, "commands", None), dict):  # a group, lazy or not
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_paragraph_is_broken_mid_sentence() -> None:
    broken = []
    for path, command in _commands(typer.main.get_command(app), "adc"):
        for paragraph in (command.help or "").split("\n\n"):
            lines = paragraph.strip("\n").splitlines()
            listed = all(line.lstrip().startswith(("-", "*", "•")) for line in lines[1:])
            if len(lines) > 1 and not listed:
                broken.append(f"{path}: {lines[0][:60]!r}")
    assert not broken, "help paragraphs with hard line breaks:\n" + "\n".join(broken)
