"""`oc-megatron convert ...`: placeholder until its issue lands."""

import typer

app = typer.Typer(help="Convert checkpoints between Megatron-Core (torch_dist) and Hugging Face.",
                  no_args_is_help=True)
