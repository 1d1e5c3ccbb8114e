"""`oc-synth ... generate`: placeholder until its issue lands (owned by the generate work)."""

import typer


def generate() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
