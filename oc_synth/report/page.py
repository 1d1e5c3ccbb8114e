"""The page: every section rendered into one self-contained HTML file (inline CSS, figures as data URIs)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe

from oc_common.errors import InputError, OutputError
from oc_common.fileio import atomic_write_text
from oc_common.log import get_logger
from oc_synth.report.inventory import Inventory, scan
from oc_synth.report.sections import SECTIONS, Section

log = get_logger(__name__)

REPORT_FILE = "report.html"
_NUMERIC = re.compile(r"^[≈~]?-?[\d,.]+(e[+-]?\d+)?( ?(%|B|KB|MB|GB|TB))?$|^–$")


def generator_name() -> str:
    from oc_common import __version__

    return f"oc-cookbook {__version__} (oc-synth report)"


def _is_numeric(value: object) -> bool:
    return isinstance(value, int | float) or (isinstance(value, str) and bool(_NUMERIC.match(value)))


def _inline_code(text: str) -> markupsafe.Markup:
    """Escape ``text``, then show `backquoted` parts as code."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("oc_synth.report", "."), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False)
    env.tests["numeric"] = _is_numeric
    env.filters["inline_code"] = _inline_code
    return env


@dataclass
class Report:
    path: Path
    sections: list[Section]
    inventory: Inventory

    @property
    def missing(self) -> list[Section]:
        return [s for s in self.sections if not s.has_data]


def build_sections(inv: Inventory) -> list[Section]:
    """Every section; one whose inputs cannot be read says so and why, and the others still render."""
    out = []
    for make in SECTIONS:
        try:
            out.append(make(inv))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            # A file of an unexpected shape (another version wrote it, a hand edit): one section lost, not the page.
            name = make.__name__
            log.warning("report: section %s could not be drawn: %s: %s", name, type(e).__name__, e)
            out.append(Section(name, name.replace("_", " ").capitalize(), "",
                               missing=f"could not be drawn from this run's files ({type(e).__name__}: {e})"))
    return out


def check_output(out: Path) -> None:
    """Replace an earlier report of ours, refuse anything else (we only delete what we wrote)."""
    if out.is_dir():
        raise OutputError(f"--out {out}: is a directory; give the HTML file's name, e.g. {out / REPORT_FILE}")
    if out.exists():
        head = out.read_text(encoding="utf-8", errors="replace")[:2000]
        if 'name="generator" content="oc-cookbook' not in head:
            raise OutputError(f"--out {out}: exists and is not a report of ours; choose another --out or remove it")


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Report:
    """Scan ``run_dir``, render every section and write the page (``run_dir/report.html`` by default)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"RUN_DIR {run}: not a directory")
    target = Path(out) if out is not None else run / REPORT_FILE
    check_output(target)
    inv = scan(run)
    sections = build_sections(inv)
    html = _environment().get_template("page.html.jinja").render(
        sections=sections, run_dir=str(run.resolve()), run_name=run.resolve().name, generator=generator_name(),
        written=time.strftime("%Y-%m-%d %H:%M:%S %Z"), with_data=sum(s.has_data for s in sections))
    atomic_write_text(target, html)
    return Report(target, sections, inv)
