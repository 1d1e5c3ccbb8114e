"""One document, tokenized once: every quality signal reads its lines, words, n-grams and code/comment split from here.

The reference implementation recomputes much of this per signal; here each view is a cached property (or a
``per_document`` cache for views only some languages need, such as a parse tree), so a document's ~60 signals share
one tokenization. Definitions follow the reference exactly (see the comments) so values compare one to one.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from functools import cache, cached_property, wraps
from typing import Any, TypeVar

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, String
from pygments.util import ClassNotFound

from oc_synth.curate.signals.lexing import split_comments
from oc_synth.curate.signals.natural_language import EN, ZH, natural_language_of
from oc_synth.curate.signals.ngrams import WordNgrams
from oc_synth.curate.signals.text_normalization import chinese_words, normalized_words, raw_words

T = TypeVar("T")

# Linguist names the reference spells differently; every other name is simply lowercased ("Python" -> "python").
_PROGRAM_LANG_SPELLING = {"c++": "cpp", "c#": "csharp"}

# Tokens the reference counts as comments (exact token types: Comment.Preproc, e.g. ``#include``, stays code).
_COMMENT_TOKENS = frozenset({Comment.Multiline, Comment.Single, String.Doc, Comment.Hashbang, Comment.Special})


def program_lang(language: str | None) -> str:
    """The reference's language key ("python", "cpp", "csharp", ...) for a Linguist name; "unknown" when absent."""
    if not language:
        return "unknown"
    low = str(language).lower()
    return _PROGRAM_LANG_SPELLING.get(low, low)


def split_lines(text: str) -> list[str]:
    """Lines split on "\\n" only, each keeping its newline; no empty trailing line (the reference's raw_lines)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def non_blank_lines(text: str) -> list[str]:
    return [line for line in split_lines(text) if line.strip()]


@cache
def _lexer(lang: str) -> Lexer | None:
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


CommentPiece = tuple[Any, str]  # (pygments token type, or None for a line-heuristic split; text)


def split_code_and_comments(text: str, lang: str, lines: list[str]) -> tuple[str, list[CommentPiece]]:
    """(code, comment pieces) of a file: pygments' tokens for languages it knows, the reference's line heuristics
    else."""
    if lang == "perl":
        return _split_perl_by_lines(lines)
    lexer = _lexer(lang)
    if lexer is None:
        return _split_by_lines(lines)
    return split_comments(text, lexer, _COMMENT_TOKENS)


def _split_by_lines(lines: list[str]) -> tuple[str, list[CommentPiece]]:
    # The reference's fallback for languages pygments lacks, kept as is for comparable values: a line opening or
    # closing a block comment toggles the block state, and a line starting with '#', '//' or '--' opens a block too
    # (so everything after it counts as comment until the next toggling line).
    code, comments = [], []
    in_block = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(('"""', "/*")) or stripped.endswith(('"""', "*/")):
            in_block = not in_block
            comments.append(line)
        elif stripped.startswith(("#", "//", "--")) or in_block:
            in_block = True
            comments.append(line)
        else:
            code.append(line)
    return "".join(code), [(None, "".join(comments))]


def _split_perl_by_lines(lines: list[str]) -> tuple[str, list[CommentPiece]]:
    # POD blocks (from a line starting with '=' to '=cut') and '#' lines are comments.
    code, comments = [], []
    in_pod = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("=cut"):
            in_pod = False
            comments.append(line)
        elif stripped.startswith("="):
            in_pod = True
            comments.append(line)
        elif stripped.startswith("#") or in_pod:
            comments.append(line)
        else:
            code.append(line)
    return "".join(code), [(None, "".join(comments))]


def _count_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        return None
    return int(value)


def per_document(fn: Callable[[Document], T]) -> Callable[[Document], T]:
    """Cache ``fn(doc)`` on the document: for derived views only some signals need (parse trees, regex matches)."""
    key = f"{fn.__module__}.{fn.__qualname__}"

    @wraps(fn)
    def cached(doc: Document) -> T:
        memo = doc.memo
        if key not in memo:
            memo[key] = fn(doc)
        return memo[key]

    return cached


class Document:
    """A record's text plus the metadata signals need, with lazily computed, shared views of it.

    ``natural_language`` ``zh`` switches to the reference's Chinese handling: the text is folded to simplified
    characters (zhconv) and words are split by jieba, line by line; ``len(doc)`` stays the original length.
    ``reference_bugs`` makes the signals that have known bugs in the reference behave as the reference does
    (``curate filter --reference-bugs``)."""

    def __init__(self, text: str, *, language: str | None = None, doc_type: str = "code", path: str = "",
                 ext: str | None = None, size_bytes: int | None = None, natural_language: str = EN,
                 reference_bugs: bool = False):
        self.length = len(text)
        self.natural_language = natural_language
        if natural_language == ZH:
            import zhconv

            text = zhconv.convert(text, "zh-cn")
        self.text = text
        self.reference_bugs = reference_bugs
        self.language = language
        self.doc_type = doc_type
        self.program_lang = program_lang(language)
        self.path = path or ""
        self.filename = os.path.basename(self.path)
        if ext is None:
            ext = self.filename.rsplit(".", 1)[1] if "." in self.filename else ""
        self.ext = ext.lstrip(".")
        self.size_bytes = size_bytes
        self.memo: dict[str, Any] = {}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], text_field: str = "text", reference_bugs: bool = False) -> Document:
        """``record["lang"]``, when present, is the file's natural language; else it is detected (zh or en)."""
        text, ext, language = record.get(text_field), record.get("ext"), record.get("language")
        text = "" if text is None else str(text)
        return cls(text, language=language if isinstance(language, str) else None,
                   doc_type=str(record.get("doc_type") or ""), path=str(record.get("path") or ""),
                   ext=ext if isinstance(ext, str) else None, size_bytes=_count_or_none(record.get("size_bytes")),
                   natural_language=natural_language_of(text, record.get("lang")), reference_bugs=reference_bugs)

    def __len__(self) -> int:
        return self.length

    # --- lines and characters ---
    @cached_property
    def lines(self) -> list[str]:
        return split_lines(self.text)

    @cached_property
    def visible_text(self) -> str:
        """The text without any whitespace (``str.split`` cuts at exactly the characters ``\\s`` matches)."""
        return "".join(self.text.split())

    # --- words and n-grams ---
    @cached_property
    def words(self) -> list[str]:
        """Normalized words (lowercased, punctuation removed), the unit of the word and n-gram signals."""
        if self.natural_language == ZH:
            return chinese_words(self.text, normalize=True)
        return normalized_words(self.text)

    @cached_property
    def raw_words(self) -> list[str]:
        if self.natural_language == ZH:
            return chinese_words(self.text, normalize=False)
        return raw_words(self.text)

    @cached_property
    def ngrams(self) -> WordNgrams:
        """Word n-gram counts (n = 2..10, built on demand) for the repetition signals."""
        return WordNgrams(self.words)

    # --- code vs comments ---
    @cached_property
    def _code_and_comments(self) -> tuple[str, list[CommentPiece]]:
        return split_code_and_comments(self.text, self.program_lang, self.lines)

    @property
    def code_text(self) -> str:
        """The file without its comments and docstrings."""
        return self._code_and_comments[0]

    @property
    def comment_pieces(self) -> list[CommentPiece]:
        """The comment tokens, with their pygments token type."""
        return self._code_and_comments[1]

    @cached_property
    def comment_text(self) -> str:
        return "".join(value for _, value in self.comment_pieces)

    @cached_property
    def code_lines(self) -> list[str]:
        """Non-blank lines of ``code_text`` (the reference's code_normalized_lines)."""
        return non_blank_lines(self.code_text)

    @cached_property
    def comment_lines(self) -> list[str]:
        return non_blank_lines(self.comment_text)

    def count_code_lines_with(self, *needles: str, ignore_case: bool = False) -> int:
        """Code lines containing any of ``needles`` (lowercase needles when ``ignore_case``)."""
        lines = (line.lower() for line in self.code_lines) if ignore_case else self.code_lines
        return sum(any(n in line for n in needles) for line in lines)
