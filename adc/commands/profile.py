"""`adc profile validate|show|schema`: check and explain hardware profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adc.commands.common import JsonOption, command_group, console, print_json

app = command_group("Validate, show and describe hardware profiles.")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Profile files (TOML).", show_default=False)],
) -> None:
    """Check profiles; list every problem of every file, with key path and line."""
    from adc.errors import BadInput
    from adc.profiles import ProfileError, load_profile

    problems: list[str] = []
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as err:
            problems.extend(err.details)
            continue
        console().print(
            f"[green]ok[/] {path}: {profile.name}, {len(profile.buses)} bus(es), "
            f"{len(profile.devices)} device(s), {len(profile.layout.drawers)} drawer(s), "
            f"{len(profile.pockets())} pocket(s)",
            highlight=False,
            soft_wrap=True,  # one line per file, also at 80 columns and in a pipe (grep, CI logs)
        )
    if problems:
        raise BadInput(f"{len(problems)} problem(s) in {len(paths)} profile(s)", details=problems)


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="Profile file (TOML) or shipped profile name.")],
    as_json: JsonOption = False,
) -> None:
    """Show a profile's buses, devices, drawers and pockets with the points they use."""
    from adc.profiles import load_profile, resolve_profile_path
    from adc.profiles.render import profile_tree

    profile = load_profile(resolve_profile_path(path))
    if as_json:
        print_json(profile.model_dump(mode="json"))
        return
    console().print(profile_tree(profile))


@app.command()
def schema() -> None:
    """Print the JSON Schema of profiles, for editors that complete TOML."""
    from adc.profiles.models import Profile

    print_json(Profile.model_json_schema())
