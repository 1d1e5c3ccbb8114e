"""``oc-synth report RUN_DIR``: one self-contained HTML page of a run, with a figure per section.

The data funnel (records and bytes per stage, drop reasons), the language mix before and after sampling, dedup
cluster sizes, recall rounds, synthesis pass rates by recipe and verdict, training curves and eval scores beside
OpenCoder's published ones. ``inventory`` finds what a run directory holds, ``sections`` turns it into figures and
tables (matplotlib, embedded as PNG data URIs), ``page`` writes the HTML. A section whose inputs are absent says so.
"""

from oc_synth.report.page import REPORT_FILE, Report, build_report

__all__ = ["REPORT_FILE", "Report", "build_report"]
