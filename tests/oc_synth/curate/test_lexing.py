"""The joined-state lexing engine (signals/lexing.py) gives pygments' own token stream, on real files of this machine
and on snippets of languages it has no files of, so the code/comment split every code signal reads is unchanged."""

import hashlib

import pygments
import pytest
from pygments.lexer import ExtendedRegexLexer, RegexLexer
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Keyword, Name
from reference_sample import list_source_files, read_source_file

from oc_synth.curate.signals import lexing
from oc_synth.curate.signals.document import _lexer, split_code_and_comments, split_lines

# (source, extension, pygments language key, files): real files, up to 48 kB, picked by the hash of their path
REAL_FILES = {
    "stdlib": [(".py", "python", 12), (".c", "c", 2)],
    "include": [(".h", "c", 10), (".hpp", "cpp", 5), (".tcc", "cpp", 5)],
    "npm": [(".js", "javascript", 10), (".html", "html", 3), (".md", "markdown", 3), (".json", "json", 2)],
    "jdk": [(".java", "java", 8)],
}
MAX_BYTES = 48_000

SNIPPETS = {
    "csharp": ('using System;\n// greet\nclass A { /* c */ static void Main() { var s = @"x""y"; '
               'Console.WriteLine($"{s}"); } }\n'),
    "go": ('package main\n\nimport "fmt"\n\n// main prints\nfunc main() {\n\tx := `raw\nstring` /* c */\n'
           '\tfmt.Println(x)\n}\n'),
    "rust": '/// doc\nfn main() { let r = r#"raw "str""#; // c\n    println!("{}", r); /* nested /* c */ */ }\n',
    "bash": '#!/bin/bash\n# comment\nfor f in *.txt; do echo "$f ${f%.txt}" <<EOF\nheredoc\nEOF\ndone\n',
    "sql": "-- comment\nSELECT a, 'it''s' FROM t /* c */ WHERE b = 1;\n",
    "typescript": "// c\ninterface A<T> { x?: T }\nconst f = (a: number): string => `${a}`; /* d */\n",
    "kotlin": "// c\nfun main() { val s = \"\"\"raw\"\"\"; /* d */ println(\"$s\") }\n",
    "scala": "object A { /* c */ def f(x: Int) = s\"$x\" // d\n}\n",
    "lua": "-- c\nlocal t = {[[long]], 'x'} --[[ block ]]\nprint(t)\n",
    "php": "<?php // c\n$a = \"x $b\"; /* d */ echo <<<EOT\nhi\nEOT;\n?>\n<p>html</p>\n",
    "ruby": "# c\ndef f(x) = \"#{x}\" # d\n=begin\nblock\n=end\nputs f(1)\n",
    "cuda": "__global__ void k(float *x) { /* c */ x[threadIdx.x] = 0; } // d\n",
    "perl": "# c\nmy $x = 'a'; # d\n=pod\ndoc\n=cut\nprint $x;\n",
    "c": "#include <stdio.h>\n/* unterminated comment\n",
    "python": 'def f():\n    """doc"""\n    return f"{1!r:>{2}}" # c\n\x00\n',
}


def _canonical(lexer, tokens):
    """pygments' C family re-types some Name tokens as Keyword.Type; the engine keeps Name (docs in lexing.py)."""
    if not hasattr(lexer, "stdlib_types"):
        return tokens
    retyped = lexer.stdlib_types | lexer.c99_types | lexer.c11_atomic_types | lexer.linux_types
    return [(Name if t is Keyword.Type and v in retyped else t, v) for t, v in tokens]


def _real_files():
    for source, wanted in REAL_FILES.items():
        listing = [p for p, size in list_source_files(source) if 0 < size <= MAX_BYTES]
        for ext, lang, count in wanted:
            paths = sorted((p for p in listing if p.endswith(ext)), key=lambda p: hashlib.sha256(p.encode()).digest())
            taken = 0
            for path in paths:
                data = read_source_file(source, path)
                try:
                    text = data.decode("utf-8")
                except (AttributeError, UnicodeDecodeError):
                    continue
                yield f"{source}/{path}", lang, text
                taken += 1
                if taken == count:
                    break


def assert_same_stream(name, lang, text):
    lexer = get_lexer_by_name(lang)
    ours = list(lexing.lex(text, lexer))
    theirs = list(pygments.lex(text, lexer))
    assert _canonical(lexer, ours) == _canonical(lexer, theirs), name
    if lang != "perl":  # perl's split is a line heuristic, no lexer
        assert split_code_and_comments(text, lang, split_lines(text)) == _split_with_pygments(text, lexer), name


def _split_with_pygments(text, lexer):
    from oc_synth.curate.signals.document import _COMMENT_TOKENS

    code, comments = [], []
    for token_type, value in pygments.lex(text, lexer):
        (comments.append((token_type, value)) if token_type in _COMMENT_TOKENS else code.append(value))
    return "".join(code), comments


def test_the_engine_gives_pygments_token_stream_on_real_files():
    seen = set()
    for name, lang, text in _real_files():
        assert_same_stream(name, lang, text)
        seen.add(lang)
    if len(seen) < 5:
        pytest.skip(f"only {sorted(seen)} files found on this machine")


@pytest.mark.parametrize("lang", sorted(SNIPPETS))
def test_the_engine_gives_pygments_token_stream_on_snippets(lang):
    text = SNIPPETS[lang]
    assert_same_stream(lang, lang, text)
    assert_same_stream(lang, lang, text * 20)  # long enough that per-character dispatch kicks in
    assert_same_stream(lang, lang, text[: len(text) // 2])  # cut mid-token: unterminated strings and comments


def test_lexers_it_cannot_stand_in_for_are_left_to_pygments():
    ruby = get_lexer_by_name("ruby")
    assert isinstance(ruby, ExtendedRegexLexer) and not lexing.accelerated(ruby)
    filtered = get_lexer_by_name("python")
    filtered.add_filter("keywordcase", case="upper")
    assert not lexing.accelerated(filtered)
    assert list(lexing.lex("def f(): pass\n", filtered)) == list(pygments.lex("def f(): pass\n", filtered))
    assert lexing.accelerated(get_lexer_by_name("python")) and lexing.accelerated(get_lexer_by_name("cpp"))


def test_comment_tokens_come_out_with_their_types():
    code, comments = split_code_and_comments("x = 1  # note\n'''doc'''\n", "python", [])
    assert ("# note" in [v for _, v in comments]) and any(t is Comment.Single for t, _ in comments)
    assert "x = 1" in code


def test_rule_tables_of_token_variants_are_kept_apart():
    # C#'s lexer picks its rule table per instance (unicodelevel): the engine must follow the instance's table
    basic = get_lexer_by_name("csharp", unicodelevel="basic")
    full = get_lexer_by_name("csharp", unicodelevel="full")
    assert basic._tokens is not full._tokens
    text = "class Ä { int ü = 1; } // c\n"
    for lexer in (basic, full):
        assert list(lexing.lex(text, lexer)) == list(pygments.lex(text, lexer))
    assert isinstance(_lexer("csharp"), RegexLexer)
