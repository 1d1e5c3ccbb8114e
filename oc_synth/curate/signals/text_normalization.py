"""Word tokenization exactly as RefineCode's reference computes it, so that signal values compare one to one.

The reference (OpenCoder-llm/opc_data_filtering) splits words with NLTK's ``wordpunct_tokenize`` (runs of word
characters, or runs of other non-space characters; NLTK 3.9, which matches with ``re``) after a normalization that,
per character, drops ASCII control characters (keeping backspace, tab, newline, VT, FF, CR and ESC), maps thin and
zero-width spaces to a space, folds full-width punctuation to ASCII, replaces ASCII punctuation with a space,
lowercases, and finally applies Unicode NFKC. Doing the first steps in one ``str.translate`` and tokenizing the
whole text at once gives the same words as the reference's line-by-line pass (no token can span a newline) at a
fraction of the cost.
"""

from __future__ import annotations

import re
import string
import unicodedata

# NLTK's WordPunctTokenizer pattern.
WORDPUNCT = re.compile(r"\w+|[^\w\s]+")

_DROPPED_CONTROLS = [c for c in map(chr, range(0x20)) if c not in "\x08\t\n\x0b\x0c\r\x1b"] + ["\u202c"]
_CONTROLS_AS_SPACE = ["\u2009", "\u200b"]  # thin space, zero-width space

# Full-width (CJK) punctuation and its ASCII counterpart; the U+FF01..U+FF5E block is the ASCII range shifted.
_FULL_WIDTH_TO_ASCII = {chr(ord(c) + 0xFEE0): c for c in string.punctuation}
_FULL_WIDTH_TO_ASCII.update({
    "。": ".", "、": ",", "《": '"', "》": '"', "【": "[", "】": "]", "「": "'", "」": "'",
    "“": '"', "”": '"', "‘": "'", "’": "'", "￥": "¥",
})


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for c in _DROPPED_CONTROLS:
        table[ord(c)] = ""
    for c in _CONTROLS_AS_SPACE:
        table[ord(c)] = " "
    for full, ascii_char in _FULL_WIDTH_TO_ASCII.items():
        table[ord(full)] = " " if ascii_char in string.punctuation else ascii_char
    for c in string.punctuation:
        table[ord(c)] = " "
    return table


_NORMALIZE_TABLE = _build_table()


def normalize_for_words(text: str) -> str:
    """Lowercased, punctuation-free, NFKC text (whitespace left as is: it only separates words)."""
    return unicodedata.normalize("NFKC", text.translate(_NORMALIZE_TABLE).lower())


# The same normalization for ASCII text, as one bytes.translate (NFKC leaves ASCII alone): controls deleted,
# punctuation to spaces, upper case to lower case.
_ASCII_TABLE = bytes(ord(_NORMALIZE_TABLE.get(b, chr(b)).lower()) if _NORMALIZE_TABLE.get(b) != "" else b
                     for b in range(128)) + bytes(range(128, 256))
_ASCII_DELETE = bytes(b for b in range(128) if _NORMALIZE_TABLE.get(b) == "")
# After that, ASCII text holds letters, digits, whitespace and these: the only characters that make a word-punct
# token of their own. Without them, the tokens are exactly the whitespace-separated pieces.
_ASCII_SYMBOLS = re.compile(rb"[^0-9a-z\s]")


def normalized_words(text: str) -> list[str]:
    """The reference's ``normalized_words``: word-punct tokens of the normalized text."""
    if text.isascii():
        data = text.encode("ascii").translate(_ASCII_TABLE, _ASCII_DELETE)
        if _ASCII_SYMBOLS.search(data) is None:
            return data.decode("ascii").split()
        return WORDPUNCT.findall(data.decode("ascii"))
    return WORDPUNCT.findall(normalize_for_words(text))


def raw_words(text: str) -> list[str]:
    """The reference's ``raw_words``: word-punct tokens of the text as is."""
    return WORDPUNCT.findall(text)


def chinese_words(text: str, *, normalize: bool) -> list[str]:
    """The reference's words of a Chinese (``zh``) document: jieba's split of each line (normalized first when
    ``normalize``), whitespace tokens left out."""
    import jieba

    if normalize:
        text = normalize_for_words(text)
    return [w for line in text.split("\n") for w in jieba.lcut(line) if w.strip()]
