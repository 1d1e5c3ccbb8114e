"""Natural-language signals (``qsc_doc_*``), several of which code files share under ``qsc_code_*`` names.

Definitions follow the reference (RedPajama-V2's signals as OpenCoder adapted them): words are the normalized words of
``Document.words``; "chars" of a fraction are characters of the raw text unless the docstring says otherwise.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable

from oc_synth.curate.signals.document import Document
from oc_synth.curate.signals.registry import PRECISION, SignalValue, flag, fraction, quality_signal

REPLACEMENT_CHAR = "\ufffd"
SENTENCE = re.compile(r"\b[^.!?。！？؟]+[.!?。！？؟]*")
SENTENCE_BREAK = re.compile(r"\.|\?|\!|\n")
# A word "0x..." of hex digits: ``\b0[xX][0-9a-fA-F]+\b`` as the reference writes it. "0" being a word character,
# the leading \b means "no word character before the 0"; written after the 0, so that re scans for the literal "0"
# instead of trying every position.
HEX_WORD = re.compile(r"0(?<!\w0)[xX][0-9a-fA-F]+\b")
LINK_IN_PARENS = re.compile(r"\(https?://\S+\)")
LINK_START = "(http"
NON_SPACE_RUN = re.compile(r"\S*")
HTML_TAG = re.compile(r"<.*?>")
READ_MORE_ENDINGS = ("...", "…", "全文", "详情", "详细", "更多", "المزيد", "تفاصيل", "اقرأ المزيد", "もっと", "詳細",
                     "もっと読む")
CLOSING_BRACKETS = "]】)>》"
BULLETS = tuple("\u2022\u2023\u2043\u204c\u204d\u2219\u25a0\u25a1\u25a2\u25a3\u25a4\u25a5\u25a6\u25a7\u25a8\u25a9"
                "\u25aa\u25ab\u25ac\u25ad\u25ae\u25af\u25cb\u25cf\u25e6\u25c6\u25c7\u25c8\u25c9\u25ca\u25d0\u25d1"
                "\u25d2\u25d3\u25d4\u25d5\u25d6\u25d8\u25d9\u25e2\u25e3\u25e4\u25e5\u25ef\u2611\u2612\u2b1b\u2b1c"
                "\u2b24\u2b1e\u2b1f\u29be")
ASCII_LETTERS = string.ascii_letters.encode()  # the ASCII characters str.isalpha accepts (checked in the tests)
ASCII_DIGITS = string.digits.encode()  # ... and str.isdigit
CODE_RELATED_FILE_NAMES = ("readme", "notes", "todo", "description", "cmakelists")


# --- sizes -----------------------------------------------------------------------------------------------------------
@quality_signal("qsc_doc_num_chars", "qsc_code_num_chars")
def num_chars(doc: Document) -> SignalValue:
    return float(len(doc))  # the original length (a zh text is folded to simplified characters first)


@quality_signal("qsc_doc_num_words", "qsc_code_num_words")
def num_words(doc: Document) -> SignalValue:
    return float(len(doc.words))


@quality_signal("qsc_doc_num_lines")
def num_lines(doc: Document) -> SignalValue:
    return float(len(doc.lines))


@quality_signal("qsc_doc_num_sentences")
def num_sentences(doc: Document) -> SignalValue:
    return float(len(SENTENCE.findall(doc.text)))


@quality_signal("qsc_doc_num_chars_sentence_length_mean")
def mean_sentence_length(doc: Document) -> SignalValue:
    sentences = SENTENCE_BREAK.split(doc.text)
    return round(sum(map(len, sentences)) / len(sentences), PRECISION)


@quality_signal("qsc_doc_mean_word_length", "qsc_code_mean_word_length")
def mean_word_length(doc: Document) -> SignalValue:
    return fraction(sum(map(len, doc.words)), len(doc.words))


# --- word statistics -------------------------------------------------------------------------------------------------
@quality_signal("qsc_doc_frac_words_unique", "qsc_code_frac_words_unique")
def frac_words_unique(doc: Document) -> SignalValue:
    return fraction(len(set(doc.words)), len(doc.words))


@quality_signal("qsc_doc_entropy_unigram")
def entropy_unigram(doc: Document) -> SignalValue:
    total = len(doc.words)
    if not total:
        return None
    return round(sum(-c / total * math.log(c / total) for c in Counter(doc.words).values()), PRECISION)


@quality_signal("qsc_doc_frac_words_all_caps")
def frac_words_all_caps(doc: Document) -> SignalValue:
    return fraction(sum(map(str.isupper, doc.raw_words)), len(doc.raw_words))


@quality_signal("qsc_doc_frac_words_full_bracket")
def frac_words_full_bracket(doc: Document) -> SignalValue:
    return fraction(sum(w in ("【", "】") for w in doc.raw_words), len(doc.raw_words))


# --- repetition ------------------------------------------------------------------------------------------------------
def frac_chars_top_ngram(doc: Document, n: int) -> SignalValue:
    """Characters (of normalized words) of the most frequent word n-gram, times its count."""
    return round(doc.ngrams.frac_chars_top(n), PRECISION)


def frac_chars_dupe_ngrams(doc: Document, n: int) -> SignalValue:
    """Characters of words that lie in any word n-gram occurring more than once (overlaps counted once)."""
    return round(doc.ngrams.frac_chars_dupe(n), PRECISION)


def _register_repetition_signals() -> None:
    for n in (2, 3, 4):
        quality_signal(f"qsc_doc_frac_chars_top_{n}grams", f"qsc_code_frac_chars_top_{n}grams")(
            lambda doc, n=n: frac_chars_top_ngram(doc, n))
    for n in range(5, 11):
        quality_signal(f"qsc_doc_frac_chars_dupe_{n}grams", f"qsc_code_frac_chars_dupe_{n}grams")(
            lambda doc, n=n: frac_chars_dupe_ngrams(doc, n))


_register_repetition_signals()


@quality_signal("qsc_doc_frac_lines_dupe_lines")
def frac_lines_dupe_lines(doc: Document) -> SignalValue:
    """Non-blank lines (stripped) that occur more than once, over non-blank lines."""
    if not doc.lines:
        return None
    counts = Counter(s for s in (line.strip() for line in doc.lines) if s)
    return fraction(sum(c for c in counts.values() if c > 1), sum(counts.values()))


@quality_signal("qsc_doc_frac_chars_dupe_lines")
def frac_chars_dupe_lines(doc: Document) -> SignalValue:
    """Characters of (stripped) lines that occur more than once, over characters of all stripped lines."""
    if not doc.lines:
        return None
    counts = Counter(line.strip() for line in doc.lines)
    return fraction(sum(len(s) * c for s, c in counts.items() if c > 1), sum(len(s) * c for s, c in counts.items()))


# --- line shapes -----------------------------------------------------------------------------------------------------
@quality_signal("qsc_doc_frac_lines_end_with_readmore")
def frac_lines_end_with_readmore(doc: Document) -> SignalValue:
    ends = sum(line.rstrip().rstrip(CLOSING_BRACKETS).endswith(READ_MORE_ENDINGS) for line in doc.lines)
    return fraction(ends, len(doc.lines))


@quality_signal("qsc_doc_frac_lines_start_with_bullet")
def frac_lines_start_with_bullet(doc: Document) -> SignalValue:
    return fraction(sum(line.lstrip().startswith(BULLETS) for line in doc.lines), len(doc.lines))


# --- character classes -----------------------------------------------------------------------------------------------
@quality_signal("qsc_doc_frac_chars_replacement_symbols", "qsc_code_frac_chars_replacement_symbols")
def frac_chars_replacement_symbols(doc: Document) -> SignalValue:
    return fraction(doc.text.count(REPLACEMENT_CHAR), len(doc.text))


def count_chars(text: str, test: Callable[[str], bool], ascii_members: bytes) -> int:
    """How many characters of ``text`` pass ``test`` (``str.isalpha``, ``str.isdigit``); for ASCII text, where those
    tests hold for exactly ``ascii_members``, counted in one C pass."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data) - len(data.translate(None, ascii_members))
    return sum(map(test, text))


@quality_signal("qsc_code_frac_chars_alphabet")
def frac_chars_alphabet(doc: Document) -> SignalValue:
    """Letters among non-whitespace characters (0.0 for a blank document)."""
    visible = doc.visible_text
    return fraction(count_chars(visible, str.isalpha, ASCII_LETTERS), len(visible)) if visible else 0.0


@quality_signal("qsc_doc_frac_chars_alphabet")
def doc_frac_chars_alphabet(doc: Document) -> SignalValue:
    """As the code signal, but defined for English only (None for a zh text), as in the reference."""
    if doc.visible_text and doc.natural_language != "en":
        return None
    return frac_chars_alphabet(doc)


@quality_signal("qsc_doc_frac_chars_digital", "qsc_code_frac_chars_digital")
def frac_chars_digital(doc: Document) -> SignalValue:
    """Digits among non-whitespace characters (1.0 for a blank document)."""
    visible = doc.visible_text
    return fraction(count_chars(visible, str.isdigit, ASCII_DIGITS), len(visible)) if visible else 1.0


@quality_signal("qsc_doc_frac_chars_whitespace", "qsc_code_frac_chars_whitespace")
def frac_chars_whitespace(doc: Document) -> SignalValue:
    """Whitespace characters among all characters (1.0 for an empty document)."""
    if not doc.text:
        return 1.0
    return fraction(len(doc.text) - len(doc.visible_text), len(doc.text))


@quality_signal("qsc_doc_frac_chars_curly_bracket")
def frac_chars_curly_bracket(doc: Document) -> SignalValue:
    return fraction(doc.text.count("{") + doc.text.count("}"), len(doc.text)) or 0.0


@quality_signal("qsc_doc_frac_chars_hex_words")
def frac_chars_hex_words(doc: Document) -> SignalValue:
    return fraction(sum(map(len, HEX_WORD.findall(doc.text))), len(doc.text))


def link_chars(text: str) -> int:
    """Characters of ``LINK_IN_PARENS`` matches. A match lies inside one run of non-space characters and ends at its
    last ")", so each run holding "(http" is searched only up to that ")": no attempt scans to the run's end and
    fails (which made the plain search quadratic on a long run of unclosed links)."""
    total, pos = 0, 0
    while (start := text.find(LINK_START, pos)) >= 0:
        end = NON_SPACE_RUN.match(text, start).end()
        close = text.rfind(")", start, end)
        if close > start:
            total += sum(map(len, LINK_IN_PARENS.findall(text, start, close + 1)))
        pos = end
    return total


def html_tag_chars(text: str) -> int:
    """Characters of ``HTML_TAG`` matches. A match never spans lines and ends at the first ">" after its "<", so each
    line is searched only up to its last ">": every "<" there is closed, none scans to the line end and fails."""
    total = 0
    for line in text.split("\n"):
        close = line.rfind(">")
        if close > 0:
            total += sum(map(len, HTML_TAG.findall(line, 0, close + 1)))
    return total


@quality_signal("qsc_doc_frac_chars_hyperlink_html_tag")
def frac_chars_hyperlink_html_tag(doc: Document) -> SignalValue:
    """Characters in parenthesized http(s) links and in <...> tags."""
    return fraction(link_chars(doc.text) + html_tag_chars(doc.text), len(doc.text))


@quality_signal("qsc_doc_cate_code_related_file_name")
def cate_code_related_file_name(doc: Document) -> SignalValue:
    stem = doc.filename.split(".")[0].lower()
    return flag("requirement" in stem or stem in CODE_RELATED_FILE_NAMES)
