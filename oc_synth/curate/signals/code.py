"""General code signals (``qsc_code_*``), computed for every code and data file.

"Code" below is ``Document.code_text`` (the file without comments/docstrings) and "code lines" its non-blank lines,
as in the reference. The size/word/n-gram/character-class signals shared with text files live in ``text.py``.
"""

from __future__ import annotations

import re
from collections import Counter

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.python import python_natural_text
from oc_synth.curate.signals.registry import (
    PRECISION,
    SignalValue,
    flag,
    frac_code_lines_with,
    fraction,
    quality_signal,
)
from oc_synth.curate.signals.text import HEX_WORD
from oc_synth.curate.signals.text_normalization import raw_words

XML_DECLARATION = "<?xml version="
AUTOGEN_MARKERS = ("generate", "autogen", "do not edit")  # also covers "auto-generated", "this file is generated"
PROMPT_COMMENTS = ("your code here", "fixme", "todo")
# Quoted strings, longest quotes first. The "long string" signal lets '...' and "..." span lines; the others do not.
STRING_LITERAL_MULTILINE = re.compile(r"'''(.*?)'''|\"\"\"(.*?)\"\"\"|'(.*?)'|\"(.*?)\"", re.DOTALL)
STRING_LITERAL = re.compile(r"'''(.*?)'''|\"\"\"(.*?)\"\"\"|'([^\n]*?)'|\"([^\n]*?)\"", re.DOTALL)
URL_IN_WORD = re.compile(r"https?://\S")
# The reference's pattern for a line that joins string literals (``x = "a" + "b"``) is
# ``\s*=\s*["'].+?["']\s*\+\s*["'].+?["'].*``, searched from every position: a lazy scan to the line end from each
# "=", quadratic on long lines (171k characters took seconds). A line has a match exactly when one starts at its first
# ``=\s*["']`` (a later start's literals are also reachable from there, the line having no newline inside), and the
# leading ``\s*`` and trailing ``.*`` change nothing about whether it matches; so that one start is tried, once.
STRING_CONCAT_START = re.compile(r"=\s*[\"']")
STRING_CONCAT = re.compile(r"=\s*[\"'].+?[\"']\s*\+\s*[\"'].+?[\"']")
# Encoded data, the reference's three patterns (base64 runs, hex bytes, \u escapes), each written so that re does not
# retry from every character: base64 is matched only from the start of a run of its characters (a match is a whole
# run); the \u pattern starts with its literal, which re scans for; hex bytes are searched only inside runs of the
# characters a match can hold (hex digits, "x", "\", ",", whitespace; 16 at least), seeing the character after the
# run so that its trailing \b is judged as before. Same matches as the plain patterns (tests).
BASE64_RUN = re.compile(r"(?<![a-zA-Z0-9+/\n=])[a-zA-Z0-9+/\n=]{64,}")
HEX_BYTES = re.compile(r"(?:\b(?:0x|\\x)?[0-9a-fA-F]{2}(?:,|\b\s*)){8,}")
HEX_BYTES_AREA = re.compile(r"[0-9a-fA-Fx\\,\s]{16,}")
UNICODE_ESCAPES = re.compile(r"\\u[0-9a-fA-F]{4}(?:\\u[0-9a-fA-F]{4}){7,}")


def hex_byte_runs(text: str) -> list[str]:
    """``HEX_BYTES.findall(text)``, searched only where a match can be."""
    runs: list[str] = []
    for area in HEX_BYTES_AREA.finditer(text):
        runs += HEX_BYTES.findall(text, area.start(), area.end() + 1)
    return runs


ENCODED_DATA = (BASE64_RUN.findall, hex_byte_runs, UNICODE_ESCAPES.findall)
MAX_ENCODED_RUN = 1024
MAX_ENCODED_FRACTION = 0.5
LONG_WORDS = 20  # a string with more words than this / a word with more characters than this is "long"
DUPE_LINES_IGNORED = frozenset({"},"})


def _nonempty_groups(matches: list[tuple[str, ...]]) -> list[str]:
    return [group for match in matches for group in match if group]


@per_document
def string_literals(doc: Document) -> list[str]:
    """Contents of single-line-quoted (and triple-quoted) strings in the code."""
    return _nonempty_groups(STRING_LITERAL.findall(doc.code_text))


# --- size and layout -------------------------------------------------------------------------------------------------
@quality_signal("qsc_code_size_file_byte")
def size_file_byte(doc: Document) -> SignalValue:
    """The record's size_bytes (its UTF-8 length when the record has none)."""
    return float(doc.size_bytes if doc.size_bytes is not None else len(doc.text.encode("utf-8", "surrogatepass")))


@quality_signal("qsc_code_num_lines")
def num_lines(doc: Document) -> SignalValue:
    return float(len(doc.lines))


@quality_signal("qsc_code_num_chars_line_max")
def num_chars_line_max(doc: Document) -> SignalValue:
    return float(max(map(len, doc.lines), default=0))


@quality_signal("qsc_code_num_chars_line_mean")
def num_chars_line_mean(doc: Document) -> SignalValue:
    return fraction(sum(map(len, doc.lines)), len(doc.lines)) or 0.0


@quality_signal("qsc_code_frac_lines_dupe_lines")
def frac_lines_dupe_lines(doc: Document) -> SignalValue:
    """Code lines (whitespace removed) occurring more than once, over code lines; one-character lines and '},'
    never count as duplicates."""
    if not doc.lines:
        return None
    counts = Counter("".join(line.split()) for line in doc.code_lines)
    dupes = sum(c for line, c in counts.items() if c > 1 and len(line) != 1 and line not in DUPE_LINES_IGNORED)
    return fraction(dupes, sum(counts.values()))


# --- comments and markers --------------------------------------------------------------------------------------------
@quality_signal("qsc_code_frac_chars_comments")
def frac_chars_comments(doc: Document) -> SignalValue:
    """Comment characters over all characters (Python: comments without '#' plus docstrings)."""
    if not doc.text:
        return None
    comments = python_natural_text(doc) if doc.program_lang == "python" else doc.comment_text
    return fraction(len(comments), len(doc.text))


@quality_signal("qsc_code_cate_xml_start")
def cate_xml_start(doc: Document) -> SignalValue:
    return flag(XML_DECLARATION in doc.text[:100])


@quality_signal("qsc_code_cate_autogen")
def cate_autogen(doc: Document) -> SignalValue:
    head = doc.text[:200].lower()
    return flag(any(marker in head for marker in AUTOGEN_MARKERS))


@quality_signal("qsc_code_frac_lines_prompt_comments")
def frac_lines_prompt_comments(doc: Document) -> SignalValue:
    """Comment lines with TODO / FIXME / "your code here", over all lines."""
    lowered = (line.lower() for line in doc.comment_lines)
    return fraction(sum(any(p in line for p in PROMPT_COMMENTS) for line in lowered), len(doc.lines))


@quality_signal("qsc_code_frac_lines_assert")
def frac_lines_assert(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "assert", ignore_case=True)


# --- strings ---------------------------------------------------------------------------------------------------------
@quality_signal("qsc_code_frac_lines_long_string")
def frac_lines_long_string(doc: Document) -> SignalValue:
    """String lines with more than 20 words, over code lines."""
    if not doc.code_lines:
        return None
    strings = _nonempty_groups(STRING_LITERAL_MULTILINE.findall(doc.code_text))
    long_lines = sum(len(raw_words(piece)) > LONG_WORDS for s in strings for piece in s.split("\n"))
    return round(long_lines / len(doc.code_lines), PRECISION)


@quality_signal("qsc_code_frac_chars_string_length")
def frac_chars_string_length(doc: Document) -> SignalValue:
    """Characters inside string literals over characters of code."""
    return fraction(sum(map(len, string_literals(doc))), len(doc.code_text))


@quality_signal("qsc_code_frac_chars_long_word_length")
def frac_chars_long_word_length(doc: Document) -> SignalValue:
    """Characters of words longer than 20 characters inside strings (URLs excepted) over characters of code."""
    if not doc.code_text:
        return None
    long_words = (w for s in string_literals(doc) for w in s.split()
                  if len(w) > LONG_WORDS and not URL_IN_WORD.search(w))
    return round(sum(map(len, long_words)) / len(doc.code_text), PRECISION)


def joins_strings(line: str) -> bool:
    """Whether a line assigns string literals joined with ``+`` (the reference's pattern, in linear time)."""
    start = STRING_CONCAT_START.search(line)
    return start is not None and STRING_CONCAT.match(line, start.start()) is not None


@quality_signal("qsc_code_frac_lines_string_concat")
def frac_lines_string_concat(doc: Document) -> SignalValue:
    return fraction(sum(map(joins_strings, doc.code_lines)), len(doc.code_lines))


# --- encoded data ----------------------------------------------------------------------------------------------------
@quality_signal("qsc_code_cate_encoded_data")
def cate_encoded_data(doc: Document) -> SignalValue:
    """1.0 when a base64 / hex / \\u-escape run is longer than 1,024 characters or such runs cover over half the
    file."""
    matched = 0
    for find_runs in ENCODED_DATA:
        for run in find_runs(doc.text):
            if len(run) > MAX_ENCODED_RUN:
                return 1.0
            matched += len(run)
    return flag(bool(doc.text) and matched / len(doc.text) > MAX_ENCODED_FRACTION)


@quality_signal("qsc_code_frac_chars_hex_words")
def frac_chars_hex_words(doc: Document) -> SignalValue:
    return fraction(sum(map(len, HEX_WORD.findall(doc.code_text))), len(doc.code_text))
