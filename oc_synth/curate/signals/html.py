"""HTML signals (``qsc_codehtml_*``): the page must parse, and must show enough visible text.

The reference takes BeautifulSoup's ``get_text()`` over Python's ``html.parser``. We drive the same stdlib parser and
keep the same strings BeautifulSoup keeps: text and CDATA, but not comments, doctypes, declarations, processing
instructions, nor anything inside <script>, <style>, <template>, <rt> or <rp> (BeautifulSoup gives those their own
string types, which ``get_text()`` leaves out). Character references are decoded by the parser.
"""

from __future__ import annotations

from html.parser import HTMLParser

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, fraction, quality_signal

HIDDEN_TEXT_TAGS = frozenset({"script", "style", "template", "rt", "rp"})
VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem", "meta",
                       "param", "source", "spacer", "track", "wbr", "basefont", "bgsound", "command", "frame", "image",
                       "isindex", "nextid"})
WHITESPACE_PRESERVING_TAGS = frozenset({"pre", "textarea"})
_DELETE_ASCII_SPACES = str.maketrans("", "", " \n\t\x0c\r")


class VisibleTextParser(HTMLParser):
    """Collects the strings BeautifulSoup's get_text() returns. Like BeautifulSoup, text between two pieces of markup
    is one string, and a string of ASCII whitespace only becomes one newline (or one space) outside <pre>/<textarea>.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.hidden_depth = 0  # open tags whose text is hidden
        self.preserving_depth = 0  # open tags whose whitespace is kept
        self.pending: list[str] = []  # pieces of the current string
        self.parts: list[str] = []

    def _end_string(self, always_shown: bool = False) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        if not text.translate(_DELETE_ASCII_SPACES) and not self.preserving_depth:
            text = "\n" if "\n" in text else " "
        if always_shown or not self.hidden_depth:
            self.parts.append(text)

    def _track(self, tag: str, step: int) -> None:
        self.hidden_depth += step * (tag in HIDDEN_TEXT_TAGS)
        self.preserving_depth += step * (tag in WHITESPACE_PRESERVING_TAGS)

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        self._end_string()
        if tag not in VOID_TAGS:
            self.open_tags.append(tag)
            self._track(tag, +1)

    def handle_startendtag(self, tag: str, attrs) -> None:  # noqa: ANN001 - <br/>, <div/>: nothing stays open
        self._end_string()

    def handle_endtag(self, tag: str) -> None:
        self._end_string()
        if tag not in self.open_tags:
            return  # a stray end tag closes nothing
        while self.open_tags:
            closed = self.open_tags.pop()
            self._track(closed, -1)
            if closed == tag:
                break

    def handle_data(self, data: str) -> None:
        self.pending.append(data)

    def handle_comment(self, data: str) -> None:
        self._end_string()

    def handle_decl(self, decl: str) -> None:
        self._end_string()

    def handle_pi(self, data: str) -> None:
        self._end_string()

    def unknown_decl(self, data: str) -> None:
        self._end_string()
        if data.upper().startswith("CDATA["):
            self.pending.append(data[len("CDATA["):])
            self._end_string(always_shown=True)  # BeautifulSoup keeps CDATA even inside hidden containers

    def close(self) -> None:
        super().close()
        self._end_string()


@per_document
def html_visible_text(doc: Document) -> str | None:
    """The page's visible text, or None when the parser rejects the markup."""
    parser = VisibleTextParser()
    try:
        parser.feed(doc.text)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser raises (AssertionError, ...) only on markup it cannot handle
        return None
    return "".join(parser.parts)


@quality_signal("qsc_codehtml_cate_ast")
def cate_ast(doc: Document) -> SignalValue:
    return flag(html_visible_text(doc) is not None)


@quality_signal("qsc_codehtml_frac_words_text")
def frac_words_text(doc: Document) -> SignalValue:
    """Visible-text characters over the page's characters."""
    text = html_visible_text(doc)
    return fraction(len(text), len(doc.text)) if text is not None else None


@quality_signal("qsc_codehtml_num_chars_text")
def num_chars_text(doc: Document) -> SignalValue:
    text = html_visible_text(doc)
    return float(len(text)) if text is not None else None
