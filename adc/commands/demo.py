"""`adc demo`: the main job on embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.common import console


def demo(
    profile: Annotated[
        str, typer.Option(help="Shipped profile name or path of the cabinet to run.")
    ] = "tcp-6drawer",
) -> None:
    """Run the main job on a virtual cabinet built from a shipped profile."""
    from adc.profiles import load_profile, resolve_profile_path
    from adc.profiles.render import profile_tree

    loaded = load_profile(resolve_profile_path(profile))
    console().print(profile_tree(loaded))
