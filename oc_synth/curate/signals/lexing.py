"""Pygments' token stream, produced faster: the same tokens as ``pygments.lex(text, lexer)`` for regex lexers.

Why: the code/comment split (``Document.code_text``) rests on pygments' lexers, as in the reference, and lexing was
the largest single cost of the filter (a third to a half of it). Pygments' ``RegexLexer`` tries the rules of the
current state one by one at each position, a Python loop around one ``re`` match per rule (about 20 tries per
token on real code). Here the rules of a state are joined into one alternation, each rule wrapped in a capturing
group, so one match in C finds the rule pygments would have chosen:

- Python's ``re`` tries the branches of an alternation in order and takes the first that matches at the position,
  which is pygments' "first rule that matches wins"; with nothing after the alternation, a branch matches exactly
  what its rule's own pattern matches.
- The wrapper group of the chosen branch closes last, so ``match.lastindex`` names the rule.
- A rule whose action is a callback (``bygroups``, ``using``, ...) gets the match of its own pattern (one extra
  match, so group numbers and names are the rule's own).

Everything else (state stack, ``#pop``/``#push``, combined states, the newline reset, error tokens, input
preprocessing) follows pygments' ``RegexLexer.get_tokens_unprocessed`` step for step. A state whose patterns cannot
be joined safely (back-references or conditionals, which would see shifted group numbers; group names used twice;
global inline flags that are not at the start; different compile flags) keeps pygments' own rule-by-rule loop, and a
lexer that is not a plain ``RegexLexer`` (``ExtendedRegexLexer``, lexers with their own ``get_tokens_unprocessed``,
token filters) is left to pygments entirely, except the C family: its override only re-types ``Name`` tokens as
``Keyword.Type``, which no signal reads (``FAST_OVERRIDES``).

``tests/oc_synth/curate/test_lexing.py`` compares the token streams with pygments' on real files of every language
the filter meets.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any

import pygments
from pygments.lexer import Lexer, RegexLexer
from pygments.token import Error, Whitespace, _TokenType

try:  # Python 3.11+: the parser behind ``re`` (used to find back-references)
    from re import _compiler as _sre_compiler
    from re import _constants as _sre_constants
    from re import _parser as _sre_parser
except ImportError:  # pragma: no cover - Python 3.10
    import sre_compile as _sre_compiler
    import sre_constants as _sre_constants
    import sre_parse as _sre_parser

_GLOBAL_FLAGS_PREFIX = re.compile(r"^\(\?([aiLmsux]+)\)")
_UNJOINABLE_OPS = {_sre_constants.GROUPREF, _sre_constants.GROUPREF_EXISTS, _sre_constants.GROUPREF_IGNORE,
                   _sre_constants.GROUPREF_LOC_IGNORE, _sre_constants.GROUPREF_UNI_IGNORE}


@cache
def _accelerated_methods() -> tuple[Any, ...]:
    """``get_tokens_unprocessed`` implementations the engine stands in for: RegexLexer's, and the C family's (which
    only re-types some ``Name`` tokens)."""
    from pygments.lexers.c_cpp import CFamilyLexer

    return (RegexLexer.get_tokens_unprocessed, CFamilyLexer.get_tokens_unprocessed)


Token = tuple[Any, str]
Rule = tuple[Any, Any, Any]  # (bound ``Pattern.match``, action, new state), as in ``RegexLexer._tokens``


class _Segment:
    """Consecutive rules of a state: several joined into one alternation (``rule_of_group[i]`` is the rule whose
    marker group is ``i``), or one rule on its own (``rule_of_group`` None)."""

    __slots__ = ("match", "rule_of_group", "rule")

    def __init__(self, match: Any, rule_of_group: dict[int, Rule] | None, rule: Rule | None = None):
        self.match = match
        self.rule_of_group = rule_of_group
        self.rule = rule


def _uses_group_numbers(node: Any) -> bool:
    """Whether a parsed pattern refers to a group by number (a back-reference or a conditional)."""
    if isinstance(node, _sre_parser.SubPattern):
        node = node.data
    if isinstance(node, (tuple, list)):
        if len(node) == 2 and isinstance(node[0], _sre_constants._NamedIntConstant):
            if node[0] in _UNJOINABLE_OPS:
                return True
            if node[0] is _sre_constants.IN:  # a character set: nothing inside can refer to a group
                return False
        return any(_uses_group_numbers(item) for item in node)
    return False


_FLAG_LETTERS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s", re.VERBOSE: "x"}


@cache
def _branch(pattern: re.Pattern, flags: int) -> str | None:
    """The rule's pattern as an alternation branch compiled under ``flags``, or None when it cannot be one."""
    source = pattern.pattern
    if not isinstance(source, str):
        return None
    prefix = _GLOBAL_FLAGS_PREFIX.match(source)
    own = pattern.flags
    if prefix:  # the rule's global inline flags are in pattern.flags; the branch gets them scoped instead
        source = source[prefix.end():]
    differ = (own ^ flags) & ~re.UNICODE
    if differ & ~sum(_FLAG_LETTERS):
        return None
    if differ and source:  # an empty pattern (a ``default`` rule) matches the same under any flags
        on = "".join(letter for flag, letter in _FLAG_LETTERS.items() if flag & differ & own)
        off = "".join(letter for flag, letter in _FLAG_LETTERS.items() if flag & differ & flags)
        source = f"(?{on}{'-' + off if off else ''}:{source})"
    try:
        parsed = _sre_parser.parse(source, flags)
    except re.error:
        return None
    if _uses_group_numbers(parsed):
        return None
    return source


@cache
def _join(rules: tuple[Rule, ...], flags: int) -> _Segment | None:
    """One alternation of ``rules``, each branch followed by an empty marker group (the last group to close, so
    ``lastindex`` names the branch; a marker in front would hide a branch's first character from ``re``'s quick
    branch test)."""
    branches, rule_of_group, group = [], {}, 0
    for rule in rules:
        pattern = rule[0].__self__
        branches.append(f"(?:{_branch(pattern, flags)})()")
        group += pattern.groups + 1
        rule_of_group[group] = rule
    try:
        joined = re.compile("|".join(branches), flags)
    except (re.error, OverflowError, RecursionError):
        return None
    return _Segment(joined.match, rule_of_group) if joined.groups == group else None


def _segments(rules: list[Rule]) -> tuple[_Segment, ...]:
    """A state's rules as segments, in rule order: runs of joinable rules joined, the others alone."""
    patterns = [getattr(rexmatch, "__self__", None) for rexmatch, _, _ in rules]
    known = [p.flags for p in patterns if isinstance(p, re.Pattern)]
    flags = Counter(known).most_common(1)[0][0] if known else 0
    segments: list[_Segment] = []
    run: list[Rule] = []

    def close_run() -> None:
        joined = _join(tuple(run), flags) if len(run) > 1 else None
        segments.extend([joined] if joined is not None else [_Segment(r[0], None, r) for r in run])
        run.clear()

    for rule, pattern in zip(rules, patterns, strict=True):
        if isinstance(pattern, re.Pattern) and _branch(pattern, flags) is not None:
            run.append(rule)
        else:
            close_run()
            segments.append(_Segment(rule[0], None, rule))
    close_run()
    return tuple(segments)


_ZERO_WIDTH = {_sre_constants.AT, _sre_constants.ASSERT, _sre_constants.ASSERT_NOT}
_ONE_CHARACTER = {_sre_constants.LITERAL, _sre_constants.NOT_LITERAL, _sre_constants.IN, _sre_constants.ANY}
_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, getattr(_sre_constants, "POSSESSIVE_REPEAT", None)}


def _first_characters(items: Any, flags: int) -> tuple[list[tuple[Any, Any, int]] | None, bool]:
    """What the first character a parsed pattern consumes may be: single-character items (each with the flags it is
    matched under) one of which it matches, or None for any character; and whether the pattern can match without
    consuming a character. A superset: zero-width assertions are ignored."""
    firsts: list[tuple[Any, Any, int]] = []
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue
        if op in _ONE_CHARACTER:
            firsts.append((op, av, flags))
            return firsts, False
        if op is _sre_constants.SUBPATTERN:
            _, add, remove, sub = av
            found, nullable = _first_characters(sub.data, (flags | add) & ~remove)
        elif op is getattr(_sre_constants, "ATOMIC_GROUP", None):
            found, nullable = _first_characters(av.data, flags)
        elif op is _sre_constants.BRANCH:
            found, nullable = [], False
            for branch in av[1]:
                branch_found, branch_nullable = _first_characters(branch.data, flags)
                if branch_found is None:
                    return None, True
                found += branch_found
                nullable |= branch_nullable
        elif op in _REPEATS:
            low, _, sub = av
            found, nullable = _first_characters(sub.data, flags)
            nullable = nullable or low == 0
        else:  # a back-reference or anything unforeseen: any character
            return None, True
        if found is None:
            return None, True
        firsts += found
        if not nullable:
            return firsts, False
    return firsts, True


@cache
def _first_character_test(rule: Rule) -> Any:
    """A function telling whether ``rule`` can match at a position whose character is ``c`` (None: it can match
    whatever the character, e.g. an empty match)."""
    pattern = getattr(rule[0], "__self__", None)
    if not isinstance(pattern, re.Pattern) or not isinstance(pattern.pattern, str):
        return None
    try:
        firsts, nullable = _first_characters(_sre_parser.parse(pattern.pattern, pattern.flags).data, pattern.flags)
        if firsts is None or nullable:
            return None
        tests = [_sre_compiler.compile(_sre_parser.SubPattern(_sre_parser.State(), [(op, av)]), flags).match
                 for op, av, flags in firsts]
    except Exception:  # noqa: BLE001 - the regex internals of another Python version: no dispatch for this rule
        return None
    return lambda c: any(test(c) for test in tests)


DISPATCH_AFTER = 16  # tokens a state starts with a character before that character gets its own segments


class _State:
    """A lexer state: its rules as segments, and per first character the segments of only the rules that can match
    a token starting with it, so most rules are not even tried. Those are built once a character has started
    ``DISPATCH_AFTER`` tokens in the state (compiling costs more than a few tokens save)."""

    __slots__ = ("rules", "_segments", "by_char", "_seen", "_tests", "_subsets")

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self._segments: tuple[_Segment, ...] | None = None  # compiled when the state is first entered
        self.by_char: dict[str, tuple[_Segment, ...]] = {}
        self._seen: Counter = Counter()
        self._tests: list[Any] | None = None
        self._subsets: dict[tuple[int, ...], tuple[_Segment, ...]] = {}

    @property
    def segments(self) -> tuple[_Segment, ...]:
        if self._segments is None:
            self._segments = _segments(self.rules)
        return self._segments

    def segments_for(self, char: str) -> tuple[_Segment, ...]:
        self._seen[char] += 1
        if self._seen[char] < DISPATCH_AFTER or len(self.segments) == 1 and self.segments[0].rule_of_group is None:
            return self.segments
        if self._tests is None:
            self._tests = [_first_character_test(rule) for rule in self.rules]
        chosen = tuple(i for i, test in enumerate(self._tests) if test is None or test(char))
        if len(chosen) == len(self.rules):
            segments = self.segments
        elif chosen not in self._subsets:
            segments = self._subsets[chosen] = _segments([self.rules[i] for i in chosen])
        else:
            segments = self._subsets[chosen]
        self.by_char[char] = segments
        return segments


_STATES: dict[int, tuple[dict, dict[str, _State]]] = {}


def _states(lexer: RegexLexer) -> dict[str, _State]:
    """Every state of the lexer's rule table, built once per table (a class's, or for lexers with ``token_variants``
    such as C#'s, one per variant)."""
    tokendefs = lexer._tokens
    entry = _STATES.get(id(tokendefs))
    if entry is None or entry[0] is not tokendefs:
        entry = _STATES[id(tokendefs)] = (tokendefs, {name: _State(rules) for name, rules in tokendefs.items()})
    return entry[1]


def _new_states(statestack: list[str], new_state: Any) -> None:
    # pygments' RegexLexer.get_tokens_unprocessed, state transition part
    if isinstance(new_state, tuple):
        for state in new_state:
            if state == "#pop":
                if len(statestack) > 1:
                    statestack.pop()
            elif state == "#push":
                statestack.append(statestack[-1])
            else:
                statestack.append(state)
    elif isinstance(new_state, int):
        if abs(new_state) >= len(statestack):
            del statestack[1:]
        else:
            del statestack[new_state:]
    elif new_state == "#push":
        statestack.append(statestack[-1])
    else:
        raise AssertionError(f"wrong state def: {new_state!r}")


def _tokens_unprocessed(lexer: RegexLexer, text: str, stack: tuple[str, ...] = ("root",)) -> Iterator[tuple]:
    """``RegexLexer.get_tokens_unprocessed(lexer, text, stack)``: the same (index, token type, value) triples."""
    states = _states(lexer)
    statestack = list(stack)
    state = states[statestack[-1]]
    pos, size = 0, len(text)
    token_type = _TokenType
    while True:
        if pos < size:
            char = text[pos]
            segments = state.by_char.get(char)
            if segments is None:
                segments = state.segments_for(char)
        else:
            segments = state.segments
        for segment in segments:
            m = segment.match(text, pos)
            if m is not None:
                if segment.rule_of_group is None:
                    rexmatch, action, new_state = segment.rule
                else:
                    rexmatch, action, new_state = segment.rule_of_group[m.lastindex]
                end = m.end()
                if action is not None:
                    if type(action) is token_type:
                        yield pos, action, text[pos:end]
                    elif segment.rule_of_group is None:
                        yield from action(lexer, m)
                    else:  # the callback gets the rule's own match: its own group numbers and names
                        yield from action(lexer, rexmatch(text, pos))
                pos = end
                if new_state is not None:
                    _new_states(statestack, new_state)
                    state = states[statestack[-1]]
                break
        else:  # no rule matched: pygments' newline reset or error token
            if pos >= size:
                return
            if text[pos] == "\n":
                statestack = ["root"]
                state = states["root"]
                yield pos, Whitespace, "\n"
            else:
                yield pos, Error, text[pos]
            pos += 1


def split_comments(text: str, lexer: Lexer, comment_types: frozenset) -> tuple[str, list[Token]]:
    """(the values of every token not in ``comment_types``, joined; the (type, value) of every token that is), the
    code/comment split of ``pygments.lex(text, lexer)``'s stream.

    The engine's loop again, fused with the split: a plain token's value is the text it matched, so runs of code
    tokens are cut from the text in one slice instead of one value per token (a callback's tokens, e.g. ``bygroups``
    which may leave characters out, are taken one by one). Kept apart from ``_tokens_unprocessed`` for speed: no
    generator step per token on the filter's hottest path."""
    if not accelerated(lexer):
        code, comments = [], []
        for token_type, value in pygments.lex(text, lexer):
            (comments.append((token_type, value)) if token_type in comment_types else code.append(value))
        return "".join(code), comments
    text = lexer._preprocess_lexer_input(text)
    states = _states(lexer)
    statestack = ["root"]
    state = states["root"]
    pos, size, span = 0, len(text), 0  # span: where the code not yet cut from the text starts
    code: list[str] = []
    comments: list[Token] = []
    token_type = _TokenType
    while True:
        if pos < size:
            char = text[pos]
            segments = state.by_char.get(char)
            if segments is None:
                segments = state.segments_for(char)
        else:
            segments = state.segments
        for segment in segments:
            m = segment.match(text, pos)
            if m is not None:
                if segment.rule_of_group is None:
                    rexmatch, action, new_state = segment.rule
                else:
                    rexmatch, action, new_state = segment.rule_of_group[m.lastindex]
                end = m.end()
                if action is not None:
                    if type(action) is token_type:
                        if action in comment_types:
                            code.append(text[span:pos])
                            comments.append((action, text[pos:end]))
                            span = end
                    else:
                        code.append(text[span:pos])
                        own = m if segment.rule_of_group is None else rexmatch(text, pos)
                        for _, kind, value in action(lexer, own):
                            (comments.append((kind, value)) if kind in comment_types else code.append(value))
                        span = end
                pos = end
                if new_state is not None:
                    _new_states(statestack, new_state)
                    state = states[statestack[-1]]
                break
        else:  # no rule matched: a newline resets the state, anything else is an Error token (code)
            if pos >= size:
                code.append(text[span:])
                return "".join(code), comments
            if text[pos] == "\n":
                statestack = ["root"]
                state = states["root"]
            pos += 1


def accelerated(lexer: Lexer) -> bool:
    """Whether ``lex`` runs the joined-state engine for this lexer (else it is pygments' own stream)."""
    cls = type(lexer)
    if not isinstance(lexer, RegexLexer) or lexer.filters or not hasattr(lexer, "_preprocess_lexer_input"):
        return False
    return cls.get_tokens_unprocessed in _accelerated_methods()


def lex(text: str, lexer: Lexer) -> Iterator[Token]:
    """``pygments.lex(text, lexer)``, through the joined-state engine where it applies. For the C family, ``Name``
    tokens that pygments re-types as ``Keyword.Type`` stay ``Name`` (no signal tells them apart)."""
    if not accelerated(lexer):
        return pygments.lex(text, lexer)
    prepared = lexer._preprocess_lexer_input(text)
    return ((token_type, value) for _, token_type, value in _tokens_unprocessed(lexer, prepared))
