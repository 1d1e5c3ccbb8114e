"""`oc-synth ... verify`: placeholder until its issue lands (owned by the verify work)."""

import typer


def verify() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
