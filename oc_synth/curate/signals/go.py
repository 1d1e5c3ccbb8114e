"""Go signals (``qsc_codego_*``): regular expressions over the code (comments removed), plus the test-file flag."""

from __future__ import annotations

import re

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

FUNCTION = re.compile(
    r"(^func\s+"
    r"(?:\(\s*\w+\s+\*?\w+\s*\))?\s*"  # receiver
    r"(?:\w+)\s*"  # name
    r"\((?:[^)]*)\)\s*"  # parameters
    r"(?:\([^)]+\)|[\w\[\]]+)?\s*)",  # results
    re.MULTILINE)
SINGLE_IMPORT = re.compile(r'^import\s+"[^"]+"$')
TYPE_DECLARATION = re.compile(r"^\s*type\s+\w+\s+(struct|interface)\s*\{[^}]*\}", re.MULTILINE | re.DOTALL)
SIMPLE_RETURN = re.compile(r"^\s*return(?:\s+[^;\n]+)?\s*;?\s*$", re.MULTILINE)
VARIABLE = re.compile(
    r"^\s*((?:var|const)\s+\w+(?:,\s*\w+)*\s+[\w\[\]\*]+"  # var a, b T
    r"|(?:var|const)\s+\w+(?:,\s*\w+)*(?:\s+[\w\[\]\*]+)?\s*=\s*[^;\n]+"  # var a T = v
    r"|\w+(?:\s*,\s*\w+)*\s*:=\s*[^;\n]+"  # a := v
    r"|(?:var|const)\s+\(\s*(?:\w+\s+[\w\*\[\]]+\s*)+\))",  # var ( ... )
    re.MULTILINE)
SIMPLE_VARIABLE = re.compile(r"^\s*var\s+(\w+)\s+(\w+)\s*;?\s*$", re.MULTILINE)


@per_document
def go_function_count(doc: Document) -> int:
    return len(FUNCTION.findall(doc.code_text))


def _import_lines(code: str) -> int:
    # As in the reference: single-line imports and the opening line of an import block (not the block's lines).
    stripped = (line.strip() for line in code.split("\n"))
    return sum(1 for s in stripped if s == "import (" or SINGLE_IMPORT.match(s))


@quality_signal("qsc_codego_cate_testfile")
def cate_testfile(doc: Document) -> SignalValue:
    return flag(doc.filename.lower().endswith("_test.go"))


@quality_signal("qsc_codego_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    return fraction(go_function_count(doc), len(doc.code_lines))


@quality_signal("qsc_codego_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    """1.0 when no var/const/:= declaration is found. (The reference compares the match list with 0, so its value is
    always 0.0 and its rule never fires; ``--reference-bugs`` reproduces that, see docs/filter.md.)"""
    if doc.reference_bugs:
        return 0.0
    return flag(VARIABLE.search(doc.code_text) is None)


@quality_signal("qsc_codego_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (functions, imports, types, bare variables and returns) per code line."""
    code = doc.code_text
    declarations = (go_function_count(doc) + _import_lines(code) + len(SIMPLE_VARIABLE.findall(code))
                    + len(SIMPLE_RETURN.findall(code)) + len(TYPE_DECLARATION.findall(code)))
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codego_frac_lines_print")
def frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "fmt.Print")
