"""``oc-megatron``: the model side (Megatron-Core plugin)."""

from __future__ import annotations

import typer

from oc_common.cli import common_options, run_app, version_callback
from oc_megatron.convert.cli import app as convert_app

app = typer.Typer(name="oc-megatron", help="OpenCoder models on Megatron-Core: preprocess, train (pretrain / anneal / "
                  "SFT), convert to and from Hugging Face.", no_args_is_help=True, pretty_exceptions_enable=False)

app.add_typer(convert_app, name="convert")


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
    log_level: str = typer.Option("INFO", "--log-level", envvar="OC_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR."),
) -> None:
    common_options(log_level)


main = run_app(app)

if __name__ == "__main__":
    main()
