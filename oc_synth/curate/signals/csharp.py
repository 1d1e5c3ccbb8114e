"""C# signals (``qsc_codecsharp_*``): regular expressions over the code (comments removed)."""

from __future__ import annotations

import re

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

_VALUE_TYPES = "int|float|double|char|string|bool|byte|sbyte|short|ushort|uint|long|ulong|decimal"
# ``(?=(\s*))\1``: the indentation taken whole, as in java.py (linear on long runs of whitespace, same matches).
METHOD = re.compile(
    r"^(?=(\s*))\1((?:(?:public|protected|private|internal)\s+)?"  # indentation, access modifier
    r"(?:(?:static|virtual|override|abstract|async)\s+)?"
    r"(?:(?!\s*(?:public|private|protected|if|else)\s*)(?:<\w+>)?\s*\w+\s+)"  # return type (not a modifier/keyword)
    r"(?:\w+\s*)"  # name
    r"(?:\((?:[^\)]*)\)))",  # parameters
    re.MULTILINE)
VARIABLE = re.compile(rf"\b(?:{_VALUE_TYPES}|var)\s+\w+(?:\s*=\s*[^;\n]+)?", re.MULTILINE)
USING = re.compile(r"^\s*using\s+[a-zA-Z0-9_.]+\s*;", re.MULTILINE)
CLASS = re.compile(r"\b(?:public|private|protected|internal|static|abstract|sealed)?\s*class\s+\w+", re.MULTILINE)
SIMPLE_RETURN = re.compile(r"^\s*return\b(?:\s+[^;\n]+)?\s*;", re.MULTILINE)
SIMPLE_VARIABLE = re.compile(rf"\b(?:{_VALUE_TYPES})\s+\w+\s*;", re.MULTILINE)


@per_document
def csharp_method_count(doc: Document) -> int:
    return sum(1 for _ in METHOD.finditer(doc.code_text))


@quality_signal("qsc_codecsharp_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    return fraction(csharp_method_count(doc), len(doc.code_lines))


@quality_signal("qsc_codecsharp_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    """1.0 when no value-type / ``var`` declaration is found. (The reference compares the match list with 0, so its
    value is always 0.0 and its rule never fires; ``--reference-bugs`` reproduces that, see docs/filter.md.)"""
    if doc.reference_bugs:
        return 0.0
    return flag(VARIABLE.search(doc.code_text) is None)


@quality_signal("qsc_codecsharp_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (methods, usings, classes, bare variables and returns) per code line."""
    code = doc.code_text
    declarations = (csharp_method_count(doc) + len(USING.findall(code)) + len(SIMPLE_VARIABLE.findall(code))
                    + len(SIMPLE_RETURN.findall(code)) + len(CLASS.findall(code)))
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codecsharp_frac_lines_print")
def frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "Console.WriteLine")
