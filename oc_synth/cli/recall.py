"""`oc-synth recall ...`: placeholder until its issue lands."""

import typer

app = typer.Typer(help="Code-related web recall (fastText, 3 rounds, domains, URL patterns).", no_args_is_help=True)
