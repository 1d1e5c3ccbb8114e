"""C and C++ signals (``qsc_codec_*``, ``qsc_codecpp_*``): regular expressions over the code (comments removed),
shared by both languages as in the reference.
"""

from __future__ import annotations

import re

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

# A declaration: words (types, qualifiers; each followed by optional '*'s and whitespace), the name, an argument list.
# Same matches as the reference's pattern, written without its ambiguous whitespace so it cannot backtrack
# exponentially over long runs of words.
FUNCTION = re.compile(r"\b((?:[a-zA-Z_]\w*(?:\s*\*+)?\s+)+(?:\*?\s*[a-zA-Z_]\w*)\((?:[^)]*)\)\s*)")
# Where a FUNCTION match can start: everything before its "(" is word characters, whitespace and "*", so it lies in a
# run of those that ends at that "(". Runs are found from their first character only (the lookbehind), each once.
DECLARATION_RUN = re.compile(r"(?<![\w\s*])[\w\s*]+\(")
WORD_START = re.compile(r"\b[a-zA-Z_]")
INCLUDE = re.compile(r"^\s*#\s*include\s+[\"<][^\">]+[\">]", re.MULTILINE)
CLASS = re.compile(r"^\s*class\s+\w+\s*(:[^{]*)?\{", re.MULTILINE)
SIMPLE_VARIABLE = re.compile(r"^\s*(?:unsigned\s+)?(?:int|float|double|char|bool|std::string|auto)\s+\w+\s*;",
                             re.MULTILINE)
SIMPLE_RETURN = re.compile(
    r"^\s*return\s*(?:(\w+|\d+|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|true|false|nullptr)\s*)?;\s*$", re.MULTILINE)
VARIABLE = re.compile(
    r"\b((?:\w+(?:\s+\w+)?)\s+"  # type, possibly two words (unsigned int, struct foo)
    r"(?:(?:\*+)?\s*[\w\[\]]+\s*(?:=\s*[^;]*)?"  # name (pointer, array) and initializer
    r"(?:,\s*(?:\*+)?\s*[\w\[\]]+\s*(?:=\s*[^;]*)?)*)"  # more names
    r"\s*;)")
MAIN = re.compile(r"\bmain\s*\([^)]*\)\s*\{")
PREPROCESSOR = re.compile(r"#\s*(?:include|define|if|else|elif|endif|error|pragma|warning|undef|line)|struct|using")
HEADER_EXTENSIONS = frozenset({"h", "hpp", "hxx", "hh", "h++"})
BITS_STDCXX = "bits/stdc++.h"


def count_functions(code: str) -> int:
    """``len(FUNCTION.findall(code))`` in linear time on long lines: the pattern itself is tried only at word starts
    of runs that end at a "(" (see DECLARATION_RUN), and not at all once no ")" follows. A plain search retries
    from every word of every run of words (quadratic in the run's length) and, without a ")" ahead, scans to the end
    of the file from every candidate."""
    count, pos = 0, 0
    last_close = code.rfind(")")
    for run in DECLARATION_RUN.finditer(code):
        paren = run.end() - 1
        if paren > last_close:
            break
        if paren < pos:
            continue
        for start in WORD_START.finditer(code, max(run.start(), pos), paren):
            found = FUNCTION.match(code, start.start())
            if found is not None:
                count += 1
                pos = found.end()
                break
    return count


@per_document
def c_function_count(doc: Document) -> int:
    return count_functions(doc.code_text)


@quality_signal("qsc_codec_frac_lines_func_ratio", "qsc_codecpp_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    return fraction(c_function_count(doc), len(doc.code_lines))


@quality_signal("qsc_codec_cate_bitsstdc", "qsc_codecpp_cate_bitsstdc")
def cate_bitsstdc(doc: Document) -> SignalValue:
    return flag(BITS_STDCXX in doc.code_text.strip().lower()[:200])


@quality_signal("qsc_codec_nums_lines_main", "qsc_codecpp_nums_lines_main")
def nums_lines_main(doc: Document) -> SignalValue:
    """Definitions of main() (more than one: a file of concatenated programs)."""
    return float(len(MAIN.findall(doc.code_text)))


@quality_signal("qsc_codec_frac_lines_goto", "qsc_codecpp_frac_lines_goto")
def frac_lines_goto(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "goto")


@quality_signal("qsc_codec_cate_var_zero", "qsc_codecpp_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    # A declaration ends at a ";": searching only up to the last one finds the same first match, and keeps an
    # initializer's ``[^;]*`` from scanning to the end of the file from every candidate when no ";" follows.
    code = doc.code_text
    return flag(VARIABLE.search(code, 0, code.rfind(";") + 1) is None)


@quality_signal("qsc_codec_score_lines_no_logic", "qsc_codecpp_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (functions, includes, classes, bare variables and returns) per code line."""
    code = doc.code_text
    declarations = (c_function_count(doc) + len(INCLUDE.findall(code)) + len(SIMPLE_VARIABLE.findall(code))
                    + len(SIMPLE_RETURN.findall(code)) + len(CLASS.findall(code)))
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codec_frac_lines_preprocessor_directives", "qsc_codecpp_frac_lines_preprocessor_directives")
def frac_lines_preprocessor_directives(doc: Document) -> SignalValue:
    """Code lines with a preprocessor directive (or `struct` / `using`); None for header files."""
    if doc.ext in HEADER_EXTENSIONS:
        return None
    return fraction(sum(PREPROCESSOR.search(line) is not None for line in doc.code_lines), len(doc.code_lines))


@quality_signal("qsc_codec_frac_lines_print")
def c_frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "printf")


@quality_signal("qsc_codecpp_frac_lines_print")
def cpp_frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "cout", "printf")
