"""`oc-synth ... dedup`: placeholder until its issue lands (owned by the dedup work)."""

import typer


def dedup() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
