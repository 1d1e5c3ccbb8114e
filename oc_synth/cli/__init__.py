"""``oc-synth``: the data side of the cookbook. Each sub-app lives in its own module and stays thin."""

from __future__ import annotations

import typer

from oc_common.cli import common_options, run_app, version_callback
from oc_synth.cli import decontaminate as decontaminate_cli
from oc_synth.cli import eval as eval_cli
from oc_synth.cli import generate as generate_cli
from oc_synth.cli import recall as recall_cli
from oc_synth.cli import report as report_cli
from oc_synth.cli import verify as verify_cli
from oc_synth.cli.curate import app as curate_app

app = typer.Typer(
    name="oc-synth",
    help="OpenCoder data pipelines: RefineCode curation, code-related web recall, synthesis, verification, eval, "
         "and a report of a run.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(curate_app, name="curate")
app.add_typer(recall_cli.app, name="recall")
app.command("generate")(generate_cli.generate)
app.command("verify")(verify_cli.verify)
app.command("decontaminate")(decontaminate_cli.decontaminate)
app.command("eval")(eval_cli.eval_)
app.command("report")(report_cli.report)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
    log_level: str = typer.Option("INFO", "--log-level", envvar="OC_LOG_LEVEL",
                                  help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    common_options(log_level)


# Spellings replaced by the CLI conventions (docs/cli.md), accepted with a warning for one release.
DEPRECATED_FLAGS = {
    ("verify",): {"-t": "--timeout"},
    ("eval",): {"-t": "--temperature"},
    ("curate", "dedup"): {"-m": "--mode"},
    ("generate",): {"--backend-opt": "--backend-option", "--tensor-parallel-size": "--tp", "--data-parallel": "--dp"},
}

main = run_app(app, DEPRECATED_FLAGS)

if __name__ == "__main__":
    main()
