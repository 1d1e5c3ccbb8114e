"""Turning a model's answer into fields: fenced code blocks, markdown sections, JSON, plain text.

Every parser returns a dict of fields or raises ``ParseError`` with a short, stable ``reason`` (it becomes the
``parse:<reason>`` drop reason that stats count) and a human ``detail``. Parsers never guess silently: an answer cut
off inside a code block (``max_tokens`` reached) is ``unclosed_code_fence``, not a shorter program.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# CommonMark fences: up to 3 spaces of indent, 3+ backticks or tildes; an info string may follow (not for ``` with
# a backtick in it). A closing fence uses the same character, at least as many, and nothing else on its line.
_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*?)[ \t]*$")
# Blocks a model uses to show output or prose, never the program itself.
NON_CODE_LANGUAGES = frozenset({"text", "txt", "output", "console", "plaintext", "stdout", "markdown", "md"})


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True)
class CodeBlock:
    language: str  # first word of the info string, lower case ("" when none)
    code: str
    line: int  # 1-based line of the opening fence
    closed: bool


def code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced code block in ``text``, in order; an unterminated last block has ``closed=False``."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = [_dedent(line, indent) for line in lines[i + 1 : j]]
        blocks.append(CodeBlock(m["info"].split()[0].lower() if m["info"].split() else "", "\n".join(body),
                                i + 1, j < len(lines)))
        i = j + 1
    return blocks


def _dedent(line: str, n: int) -> str:
    k = 0
    while k < n and k < len(line) and line[k] == " ":
        k += 1
    return line[k:]


def program_blocks(text: str, ignore: frozenset[str] = NON_CODE_LANGUAGES) -> list[CodeBlock]:
    return [b for b in code_blocks(text) if b.language not in ignore]


def require_blocks(text: str, names: list[str], where: str = "answer") -> list[CodeBlock]:
    """The first ``len(names)`` program blocks, or a ParseError saying what is wrong with the markdown."""
    blocks = program_blocks(text)
    closed = [b for b in blocks if b.closed]
    if len(closed) >= len(names):
        return closed[: len(names)]
    if any(not b.closed for b in blocks):
        b = next(b for b in blocks if not b.closed)
        raise ParseError("unclosed_code_fence", f"{where}: the code block opened on line {b.line} is never closed "
                                                "(output cut off at max_tokens?)")
    if not closed:
        raise ParseError("no_code_block", f"{where}: no fenced code block")
    raise ParseError("too_few_code_blocks", f"{where}: expected {len(names)} code blocks ({', '.join(names)}), "
                                            f"found {len(closed)}")


def split_python_asserts(code: str) -> tuple[str, str] | None:
    """Split one Python program into (code, tests) at its first top-level ``assert``; None if it has none or does
    not parse. Small models often write the function and its asserts in a single block."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    first = next((node for node in tree.body if isinstance(node, ast.Assert)), None)
    if first is None or first is tree.body[0]:
        return None
    lines = code.split("\n")
    return "\n".join(lines[: first.lineno - 1]).rstrip() + "\n", "\n".join(lines[first.lineno - 1 :]).strip() + "\n"


# ---------------------------------------------------------------------------------------------------------- parsers
Parser = Callable[..., dict[str, Any]]
PARSERS: dict[str, Parser] = {}


def parser(name: str) -> Callable[[Parser], Parser]:
    def register(fn: Parser) -> Parser:
        PARSERS[name] = fn
        return fn

    return register


@parser("text")
def parse_text(answer: str, *, field: str = "text", min_chars: int = 1, reject_pattern: str | None = None
               ) -> dict[str, Any]:
    """The whole answer, stripped, as one field. ``reject_pattern`` (a regex) lets the prompt offer the model a way
    out, e.g. answering NONE for a web page without programming content."""
    text = answer.strip()
    if reject_pattern and re.search(reject_pattern, text):
        raise ParseError("declined", f"the answer matches reject_pattern {reject_pattern!r}")
    if len(text) < min_chars:
        raise ParseError("empty_output" if not text else "too_short", f"{len(text)} characters, need {min_chars}")
    if any(not b.closed for b in code_blocks(text)):
        raise ParseError("unclosed_code_fence", "the answer ends inside a code block (cut off at max_tokens?)")
    return {field: text}


@parser("code_blocks")
def parse_code_blocks(answer: str, *, names: list[str] = ("code",), split_asserts: bool = False) -> dict[str, Any]:
    """The first fenced blocks, in order, as the fields ``names`` (e.g. [code, tests]); each field's language is
    recorded as ``<name>_language``. With ``split_asserts``, a lone Python block whose top level ends in asserts
    gives both ``code`` and ``tests``."""
    names = list(names)
    try:
        blocks = require_blocks(answer, names)
    except ParseError as e:
        if not (split_asserts and e.reason == "too_few_code_blocks" and names == ["code", "tests"]):
            raise
        (only,) = [b for b in program_blocks(answer) if b.closed][:1]
        split = split_python_asserts(only.code)
        if split is None:
            raise
        return {"code": split[0], "tests": split[1], "code_language": only.language,
                "tests_language": only.language}
    out: dict[str, Any] = {}
    for name, b in zip(names, blocks, strict=False):
        out[name] = b.code.strip("\n") + "\n"
        out[f"{name}_language"] = b.language
    return out


# A heading line for a section titled T: "## T", "**T**", "T:", "3. T", "Step 2 - T:", "[T]" (the bracketed titles
# of OpenCoder's published prompts), with optional inline text.
def _heading_re(titles: list[str]) -> re.Pattern[str]:
    alt = "|".join(re.escape(t) for t in sorted(titles, key=len, reverse=True))
    return re.compile(
        rf"^\s{{0,3}}(?:#{{1,6}}\s*)?(?:\*\*|__)?\s*(?:(?:step\s*)?\d+\s*[.):-]\s*)?(?:\*\*|__)?\s*"
        rf"(?:\[\s*(?P<bracketed>{alt})\s*\]|(?P<title>{alt}))"
        rf"\s*(?:\*\*|__)?\s*(?::|\s-\s|$|(?<=\]))\s*(?:\*\*|__)?(?P<rest>.*)$", re.IGNORECASE)


@parser("sections")
def parse_sections(answer: str, *, sections: dict[str, Any]) -> dict[str, Any]:
    """Markdown sections by title. ``sections`` maps a field to its kind (``text`` or ``code``) or to
    ``{kind, titles: [...], required: bool}``; by default the title is the field name with _ as a space.

    Text sections keep their markdown; code sections yield their first fenced block (language in
    ``<field>_language``). Headings inside code blocks are ignored.
    """
    specs = {name: _section_spec(name, spec) for name, spec in sections.items()}
    by_title = {t.lower(): name for name, s in specs.items() for t in s["titles"]}
    heading = _heading_re(list(by_title))
    lines = answer.split("\n")
    in_fence = _fence_mask(lines)
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line, fenced in zip(lines, in_fence, strict=True):
        m = None if fenced else heading.match(line)
        title = (m["bracketed"] or m["title"]).lower() if m else None
        if title is not None and by_title[title] not in found:
            current = by_title[title]
            found[current] = [m["rest"]] if m["rest"].strip() else []
        elif current is not None:
            found[current].append(line)
    out: dict[str, Any] = {}
    for name, s in specs.items():
        if name not in found:
            if s["required"]:
                raise ParseError(f"missing_section:{name}", f"no section titled {' / '.join(s['titles'])}")
            continue
        body = "\n".join(found[name]).strip()
        if s["kind"] == "code":
            (b,) = require_blocks(body, [name], where=f"section {name}")
            out[name], out[f"{name}_language"] = b.code.strip("\n") + "\n", b.language
        else:
            if not body:
                raise ParseError(f"empty_section:{name}", f"section {name} is empty")
            if any(not b.closed for b in code_blocks(body)):
                raise ParseError("unclosed_code_fence", f"section {name} ends inside a code block")
            out[name] = body
    return out


def _section_spec(name: str, spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"kind": spec}
    kind = spec.get("kind", "text")
    if kind not in ("text", "code"):
        raise ValueError(f"section {name}: kind must be text or code, got {kind!r}")
    titles = spec.get("titles") or [name.replace("_", " ")]
    return {"kind": kind, "titles": list(titles), "required": spec.get("required", True)}


def _fence_mask(lines: list[str]) -> list[bool]:
    """True for lines inside (or opening/closing) a fenced code block."""
    mask, fence = [], None
    for line in lines:
        if fence is None:
            m = _OPEN.match(line)
            if m and not (m["fence"][0] == "`" and "`" in m["info"]):
                fence = m["fence"]
                mask.append(True)
                continue
            mask.append(False)
        else:
            mask.append(True)
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", line):
                fence = None
    return mask


@parser("label")
def parse_label(answer: str, *, labels: list[str], field: str = "label") -> dict[str, Any]:
    """One of ``labels`` (case-insensitive, returned lower case): the answer's first word, or else the only label
    the answer names as a word. For judge steps ("Answer YES or NO"); pair with the step's ``keep_if``."""
    wanted = {str(label).lower() for label in labels}
    words = re.findall(r"[A-Za-z_][\w-]*", answer)
    if words and words[0].lower() in wanted:
        return {field: words[0].lower()}
    named = {w.lower() for w in words} & wanted
    if len(named) == 1:
        return {field: named.pop()}
    if named:
        raise ParseError("ambiguous_label", f"the answer names several labels: {', '.join(sorted(named))}")
    raise ParseError("no_label", f"the answer names none of {', '.join(sorted(wanted))}")


@parser("json")
def parse_json(answer: str, *, fields: list[str] = ()) -> dict[str, Any]:
    """A JSON object (bare, in a ```json block, or the outermost {...}); ``fields`` must be present."""
    text = answer.strip()
    blocks = [b for b in code_blocks(text) if b.closed and b.language in ("json", "")]
    candidates = [b.code for b in blocks] + [text]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    obj = None
    for c in candidates:
        try:
            obj = json.loads(c)
            break
        except json.JSONDecodeError:
            continue
    if obj is None:
        raise ParseError("invalid_json", "no parseable JSON object in the answer")
    if not isinstance(obj, dict):
        raise ParseError("invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    for f in fields:
        if obj.get(f) in (None, ""):
            raise ParseError(f"missing_field:{f}", f"JSON object has no {f!r}")
    return obj


def first_code_block(text: str) -> str:
    """Jinja filter for output templates: the first program block of a markdown text (ParseError if none)."""
    (b,) = require_blocks(text, ["code"])
    return b.code.strip("\n") + "\n"


def parse(answer: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    if not answer or not answer.strip():
        raise ParseError("empty_output", "the model returned nothing")
    return PARSERS[kind](answer, **options)
