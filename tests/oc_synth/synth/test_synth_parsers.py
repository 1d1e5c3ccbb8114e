"""Parsing canned model answers: code fences, sections, JSON, text; every failure has its own reason."""

import pytest

from oc_synth.synth.recipes.parsers import (
    ParseError,
    code_blocks,
    first_code_block,
    parse,
    split_python_asserts,
)

TWO_BLOCKS = """Here is the function.

```python
def add(a, b):
    return a + b
```

And the tests:

```py
assert add(1, 2) == 3
```
"""


def test_code_blocks_in_order_with_languages():
    blocks = code_blocks(TWO_BLOCKS)
    assert [(b.language, b.closed, b.line) for b in blocks] == [("python", True, 3), ("py", True, 10)]
    assert blocks[0].code == "def add(a, b):\n    return a + b"


def test_fence_variants_tildes_longer_fences_and_indent():
    text = "  ~~~~ rust\nfn main() {}\n```\nstill code\n  ~~~~~\n````\nbody with ``` inside\n````"
    blocks = code_blocks(text)
    assert [b.language for b in blocks] == ["rust", ""]
    assert blocks[0].code == "fn main() {}\n```\nstill code"  # ``` does not close a ~~~~ fence
    assert blocks[1].code == "body with ``` inside"


def test_parse_code_blocks_two_fields():
    out = parse(TWO_BLOCKS, "code_blocks", {"names": ["code", "tests"]})
    assert out["code"] == "def add(a, b):\n    return a + b\n"
    assert out["tests"] == "assert add(1, 2) == 3\n"
    assert out["tests_language"] == "py"


@pytest.mark.parametrize("answer, reason", [
    ("Sure! The answer is to add the numbers.", "no_code_block"),
    ("```python\ndef add(a, b):\n    return a + b\n```\n", "too_few_code_blocks"),
    ("```python\ndef add(a, b):\n    return a + b\n```\n```python\nassert add(1, 2) ==", "unclosed_code_fence"),
    ("```text\njust output\n```\n```output\n3\n```", "no_code_block"),
    ("   \n", "empty_output"),
])
def test_code_block_failures_name_the_problem(answer, reason):
    with pytest.raises(ParseError) as e:
        parse(answer, "code_blocks", {"names": ["code", "tests"]})
    assert e.value.reason == reason


def test_split_asserts_fallback_for_one_python_block():
    answer = "```python\ndef add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"
    out = parse(answer, "code_blocks", {"names": ["code", "tests"], "split_asserts": True})
    assert out["code"] == "def add(a, b):\n    return a + b\n"
    assert out["tests"] == "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"
    assert split_python_asserts("assert True\n") is None  # nothing before the asserts: no code to test
    assert split_python_asserts("def broken(:\n") is None
    with pytest.raises(ParseError, match="too_few"):  # without the option, one block is one block
        parse(answer, "code_blocks", {"names": ["code", "tests"]})


SECTIONS = """## Task
Write `add(a, b)` returning the sum.

**Analysis:** Just add them; O(1).

### 3. Solution
```python
def add(a, b):
    return a + b
```

Tests:
```python
# ## Task inside code is not a heading
assert add(1, 2) == 3
```
"""


def test_sections_accept_common_heading_styles():
    spec = {"task": "text", "analysis": "text", "solution": "code", "tests": "code"}
    out = parse(SECTIONS, "sections", {"sections": spec})
    assert out["task"] == "Write `add(a, b)` returning the sum."
    assert out["analysis"] == "Just add them; O(1)."
    assert out["solution"] == "def add(a, b):\n    return a + b\n"
    assert out["tests"].startswith("# ## Task inside code")


def test_sections_missing_empty_and_codeless():
    spec = {"task": "text", "solution": "code"}
    with pytest.raises(ParseError) as e:
        parse("## Task\nDo it.\n", "sections", {"sections": spec})
    assert e.value.reason == "missing_section:solution"
    with pytest.raises(ParseError) as e:
        parse("## Task\n\n## Solution\n```python\nx = 1\n```", "sections", {"sections": spec})
    assert e.value.reason == "empty_section:task"
    with pytest.raises(ParseError) as e:
        parse("## Task\nDo it.\n## Solution\nJust add the numbers.", "sections", {"sections": spec})
    assert e.value.reason == "no_code_block"
    optional = {"task": "text", "notes": {"kind": "text", "required": False, "titles": ["Notes", "Remarks"]}}
    assert parse("## Task\nDo it.", "sections", {"sections": optional}) == {"task": "Do it."}
    assert parse("# Remarks\nfine\n# Task\nx", "sections", {"sections": optional})["notes"] == "fine"


def test_json_bare_fenced_and_embedded():
    assert parse('{"question": "q", "answer": "a"}', "json", {"fields": ["question"]})["answer"] == "a"
    assert parse('Here:\n```json\n{"question": "q"}\n```', "json", {"fields": ["question"]}) == {"question": "q"}
    assert parse('Sure, {"question": "q"} is it', "json", {})["question"] == "q"
    with pytest.raises(ParseError, match="missing_field:answer"):
        parse('{"question": "q"}', "json", {"fields": ["answer"]})
    with pytest.raises(ParseError, match="invalid_json"):
        parse("[1, 2]", "json", {})
    with pytest.raises(ParseError, match="invalid_json"):
        parse('{"question": ', "json", {})


def test_text_parser_declines_and_truncation():
    assert parse("  A concept.  ", "text", {})["text"] == "A concept."
    with pytest.raises(ParseError, match="declined"):
        parse("NONE.", "text", {"reject_pattern": r"^\W*NONE\W*$"})
    with pytest.raises(ParseError, match="too_short"):
        parse("short", "text", {"min_chars": 100})
    with pytest.raises(ParseError, match="unclosed_code_fence"):
        parse("Intro\n```python\ndef f(", "text", {})


def test_first_code_block_filter():
    assert first_code_block("Explain.\n```js\nlet x = 1;\n```\nmore") == "let x = 1;\n"
    with pytest.raises(ParseError, match="no_code_block"):
        first_code_block("no code here")


def test_sections_accept_the_bracketed_titles_of_opencoders_prompts():
    answer = ("[Task]\nWrite f(x).\n[Analysis] It is the identity.\n[Solution]\n```python\ndef f(x):\n"
              "    return x\n```\n[Test]\n```python\nassert f(1) == 1\n```\n")
    spec = {"task": "text", "analysis": "text", "solution": "code", "tests": {"kind": "code", "titles": ["Test"]}}
    out = parse(answer, "sections", {"sections": spec})
    assert out["task"] == "Write f(x)." and out["analysis"] == "It is the identity."
    assert out["solution"] == "def f(x):\n    return x\n" and out["tests"] == "assert f(1) == 1\n"
    # a bracket inside a line is text, not a heading
    assert parse("## Task\nUse xs[Task] here.", "sections", {"sections": {"task": "text"}})["task"] == (
        "Use xs[Task] here.")


@pytest.mark.parametrize("answer, label", [
    ("YES", "yes"), ("**No.** It is about cooking.", "no"), ("yes, because it asks for code", "yes"),
    ("The answer is NO.", "no"), ("Label: Yes", "yes"),
])
def test_label_parser_reads_a_judges_answer(answer, label):
    assert parse(answer, "label", {"labels": ["yes", "no"]}) == {"label": label}


@pytest.mark.parametrize("answer, reason", [
    ("Maybe; it depends.", "no_label"), ("Yesterday I said no and yes.", "ambiguous_label"), ("", "empty_output"),
])
def test_label_parser_failures(answer, reason):
    with pytest.raises(ParseError) as e:
        parse(answer, "label", {"labels": ["yes", "no"]})
    assert e.value.reason == reason
