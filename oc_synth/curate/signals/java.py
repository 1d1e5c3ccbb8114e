"""Java signals (``qsc_codejava_*``): regular expressions over the code (comments removed)."""

from __future__ import annotations

import re

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

_MODIFIERS = r"(?:(?:public|protected|private|final|static)\s+)*"
_TYPE = r"(?:int|float|boolean|char|double|String|(?:[A-Z][\w<>]*))"
# ``(?=(\s*))\1`` takes the indentation whole (an atomic ``\s*``): on a long run of whitespace a plain ``\s*`` gives
# it back one character at a time, re-running the rest each time (quadratic). Nothing after it can start with the
# whitespace it would give back except the return type's ``\s*``, which then takes all of it: same matches.
METHOD = re.compile(
    r"^(?=(\s*))\1((?:(?:public|protected|private|static)\s+)*"  # indentation, modifiers
    r"(?:(?!\s*(?:public|private|protected|else|if)\s*)(?:<\w+>)?\s*\w+\s+)"  # return type (not a modifier/keyword)
    r"(\w+)\s*"  # name
    r"(?:\((?:[^\)]*)\))"  # parameters
    r"(?:\s*throws\s+[\w\, ]+)?)",  # exceptions
    re.MULTILINE)
IMPORT = re.compile(r"^\s*import\s+([\w\.\*]+)\s*;\s*$", re.MULTILINE)
SIMPLE_VARIABLE = re.compile(rf"^\s*({_MODIFIERS}{_TYPE}\s+(\w+)\s*;)", re.MULTILINE)
VARIABLE = re.compile(rf"^\s*({_MODIFIERS}{_TYPE}\s+(\w+)\s*(?:\s*=\s*[^;]+)?;)", re.MULTILINE)
SIMPLE_RETURN = re.compile(r"^\s*(return(?:;|\s+(?:\w*|\"(?:[^\"\\]*(?:\\.[^\"\\]*)*)\")\s*;\s*))$", re.MULTILINE)
CLASS = re.compile(r"^\s*((?:public\s+|protected\s+|private\s+)?(?:final\s+|abstract\s+)?class\s+([\w<>]+))",
                   re.MULTILINE)
ACCESS_MODIFIERS = ("public", "protected", "private")
LEGAL_VARIABLE_NAME = re.compile(r"^[a-z][a-zA-Z0-9]*$")
LEGAL_METHOD_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*$")
LEGAL_CLASS_NAME = re.compile(r"^[A-Z][a-zA-Z0-9]*$")


@per_document
def java_methods(doc: Document) -> list[tuple[str, str]]:
    """(declaration, name) of each method declaration."""
    return [(m.group(2), m.group(3)) for m in METHOD.finditer(doc.code_text)]


@per_document
def java_classes(doc: Document) -> list[tuple[str, str]]:
    """(declaration, name) of each class declaration."""
    return CLASS.findall(doc.code_text)


@per_document
def java_variables(doc: Document) -> list[tuple[str, str]]:
    """(declaration, name) of each field / local variable declaration with a simple type."""
    return VARIABLE.findall(doc.code_text)


def _frac_legal_names(declarations: list[tuple[str, str]], legal: re.Pattern) -> SignalValue:
    return fraction(sum(legal.match(name) is not None for _, name in declarations), len(declarations))


@quality_signal("qsc_codejava_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    return flag(not java_variables(doc))


@quality_signal("qsc_codejava_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    return fraction(len(java_methods(doc)), len(doc.code_lines))


@quality_signal("qsc_codejava_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (methods, imports, classes, bare fields and returns) per code line."""
    code = doc.code_text
    declarations = (len(java_methods(doc)) + len(IMPORT.findall(code)) + len(SIMPLE_VARIABLE.findall(code))
                    + len(SIMPLE_RETURN.findall(code)) + len(java_classes(doc)))
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codejava_frac_words_no_modifier")
def frac_words_no_modifier(doc: Document) -> SignalValue:
    """Methods and classes declared without an access modifier, over all of them."""
    declarations = [decl for decl, _ in java_methods(doc) + java_classes(doc)]
    bare = sum(not any(m in decl for m in ACCESS_MODIFIERS) for decl in declarations)
    return fraction(bare, len(declarations))


@quality_signal("qsc_codejava_frac_words_legal_var_name")
def frac_words_legal_var_name(doc: Document) -> SignalValue:
    return _frac_legal_names(java_variables(doc), LEGAL_VARIABLE_NAME)


@quality_signal("qsc_codejava_frac_words_legal_func_name")
def frac_words_legal_func_name(doc: Document) -> SignalValue:
    return _frac_legal_names(java_methods(doc), LEGAL_METHOD_NAME)


@quality_signal("qsc_codejava_frac_words_legal_class_name")
def frac_words_legal_class_name(doc: Document) -> SignalValue:
    return _frac_legal_names(java_classes(doc), LEGAL_CLASS_NAME)


@quality_signal("qsc_codejava_frac_lines_print")
def frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "System.out.print")
