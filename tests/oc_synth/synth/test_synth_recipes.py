"""Recipes: shipped ones load and render; user recipes need no code; mistakes fail at load, naming file and key;
static checks (asserts, tests that call the code) across languages."""

import random

import pytest

from oc_common.errors import ConfigError
from oc_synth.synth.recipes import RenderError, checks, list_recipes, load_recipe

SEED = {"id": "s1", "text": "def add(a, b):\n    return a + b\n", "package": "json", "api_name": "json.dumps",
        "apis": ["json.dumps"], "api_doc": "dumps(obj) -> str", "query": "How do I sort a dict by value?",
        "response": "Use sorted()."}


class AnyField(dict):
    """A parsed step answer that has every field a later template asks for."""

    def __missing__(self, key):
        return f"<{key} of an earlier step>"


def test_shipped_recipes_load_and_render_every_prompt():
    assert set(list_recipes()) >= {"annealing-snippets", "code-textbook", "educational-instruct", "package-instruct",
                                   "diverse-instruct", "realuser-instruct", "filtered-instruct", "evol-instruct",
                                   "mceval-instruct"}
    for name in list_recipes():
        r = load_recipe(name)
        ctx = {"seed": SEED, "seed_id": "s1", **r.sample_variables(SEED, random.Random(0))}
        for k, step in enumerate(r.steps):
            messages, prompt = r.messages(k, ctx)
            text = messages[-1]["content"] if messages else prompt
            assert "{{" not in text and "{%" not in text and "{#" not in text and len(text) > 20, (name, step.name)
            ctx[step.name] = AnyField()  # what the next step of a multi-step recipe sees
        sp = r.sampling(len(r.steps) - 1, {"max_tokens": 7}, n=3)
        assert (sp.max_tokens, sp.n) == (7, 3)
        if len(r.steps) > 1:  # only the last step is sampled n times
            assert r.sampling(0, {}, n=3).n == 1


def test_variables_drawn_deterministically_and_seed_field_wins():
    r = load_recipe("diverse-instruct")
    a = r.sample_variables({}, random.Random(42))
    assert a == r.sample_variables({}, random.Random(42))
    assert set(a) == {"language", "difficulty", "task_type"}
    draws = {r.sample_variables({}, random.Random(i))["language"] for i in range(200)}
    assert "python" in draws and len(draws) >= 4  # weighted, but every language shows up
    assert r.sample_variables({"language": "rust"}, random.Random(42))["language"] == "rust"


def test_user_recipe_from_files_with_prompt_file(tmp_path):
    (tmp_path / "ask.jinja").write_text("Explain {{ seed.topic }} in {{ style }} style.")
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ndescription: d\nkind: annealing\nseeds: {require: [topic]}\n"
        "variables: {style: [terse]}\nsteps:\n  - {name: say, prompt_file: ask.jinja, mode: completion}\n"
        "output: {text: '{{ say.text }}'}\n")
    r = load_recipe(tmp_path / "mine.yaml", ["sampling.temperature=0"])
    assert r.messages(0, {"seed": {"topic": "recursion"}, "seed_id": "x", "style": "terse"}) == (
        None, "Explain recursion in terse style.")
    assert r.sampling(0, {}).temperature == 0
    with pytest.raises(RenderError, match="steps.0.prompt.*topic"):
        r.messages(0, {"seed": {}, "seed_id": "x", "style": "terse"})


@pytest.mark.parametrize("body, message", [
    ("steps:\n  - {name: s, prompt: hi, parser: {type: xml}}\noutput: {text: x}",
     "steps.0: .*unknown parser 'xml'"),
    ("steps:\n  - {name: s, prompt: hi, parser: {type: code_blocks, blocks: [a]}}\noutput: {text: x}",
     "parser code_blocks.*blocks.*parameters: names, split_asserts"),
    ("steps:\n  - {name: s, prompt: 'hi {{ seed.x'}\noutput: {text: x}", "steps.0.prompt: template line 1"),
    ("steps:\n  - {name: s, prompt: hi}\noutput: {text: x}\nchecks: [{check: min_assert}]",
     "checks: .*unknown check 'min_assert'"),
    ("steps:\n  - {name: s, prompt: hi}\noutput: {text: x}\nverify: true", "verify: true needs output fields"),
    ("steps:\n  - {name: s, prompt: hi}\noutput: {text: x}\nsampling: {temprature: 1}", "sampling.temprature"),
    ("steps: []\noutput: {text: x}", "steps"),
])
def test_recipe_mistakes_fail_at_load_naming_file_and_key(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\ndescription: d\nkind: instruction\n{body}\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_recipe(path)
    assert str(path) in str(e.value)


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="educational-instruct"):
        load_recipe("no-such-recipe")


@pytest.mark.parametrize("tests, language, n", [
    ("assert f(1) == 2\nassert f(2) == 3\n# assert in a comment\n", "python", 2),
    ("import unittest\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(f(1), 2)\n",
     "python", 1),
    ("int main() { assert(f(1) == 2); assert (f(2) == 3); return 0; }", "cpp", 2),
    ("const assert = require('assert');\nassert.strictEqual(f(1), 2);\nassert.deepStrictEqual(g(), [1]);",
     "javascript", 2),
    ("fn main() { assert_eq!(f(1), 2); assert!(f(2) > 0); }", "rust", 2),
    ("assert f(1) == 2 : \"one\";", "java", 1),
])
def test_count_asserts_across_languages(tests, language, n):
    assert checks.count_asserts(tests, language) == n


def test_tests_must_call_the_code():
    rec = {"code": "def add(a, b):\n    return a + b\n", "tests": "assert add(1, 2) == 3\n", "language": "python"}
    assert checks.tests_call_code(rec) is None
    assert "never call" in checks.tests_call_code({**rec, "tests": "assert 1 + 2 == 3\n"})
    # a test file that defines its own add() tests its own copy
    own_copy = "def add(a, b):\n    return 3\nassert add(1, 2) == 3\n"
    assert "never call" in checks.tests_call_code({**rec, "tests": own_copy})
    assert "defines no function" in checks.tests_call_code({**rec, "code": "x = 1\n"})
    cpp = {"code": "int gcd(int a, int b) {\n  return b ? gcd(b, a % b) : a;\n}\n",
           "tests": "int main() { assert(gcd(4, 6) == 2); }", "language": "cpp"}
    assert checks.defined_names(cpp["code"], "cpp") == {"gcd"}
    assert checks.tests_call_code(cpp) is None
    js = {"code": "const twice = (x) => 2 * x;\nclass Stack {}\n", "tests": "assert.equal(twice(2), 4)",
          "language": "javascript"}
    assert checks.defined_names(js["code"], "javascript") == {"twice", "Stack"}
    assert checks.tests_call_code(js) is None


def test_run_checks_reports_the_first_failure():
    rules = [{"check": "required", "fields": ["code", "tests"]}, {"check": "min_asserts", "count": 3},
              {"check": "contains", "field": "code", "value_of": "package"}]
    rec = {"code": "import json\ndef f(x):\n    return json.dumps(x)\n", "tests": "assert f(1) == '1'\n",
           "package": "json"}
    assert checks.run_checks(rec, rules) == ("min_asserts", "tests has 1 assert(s), need at least 3")
    assert checks.run_checks({**rec, "tests": ""}, rules)[0] == "required"
    rec3 = {**rec, "tests": "assert f(1)\nassert f(2)\nassert f(3)\n"}
    assert checks.run_checks(rec3, rules) is None
    assert checks.run_checks({**rec3, "package": "numpy"}, rules)[0] == "contains"


def test_output_may_not_overwrite_pipeline_fields(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\ndescription: d\nkind: annealing\nsteps:\n  - {name: s, prompt: hi}\n"
                    "output: {text: x, verdict: passed}\n")
    with pytest.raises(ConfigError, match=r"\['verdict'\] are set by the pipeline"):
        load_recipe(path)


def test_a_judge_step_keeps_only_the_listed_labels(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("name: j\ndescription: d\nkind: instruction\nsteps:\n"
                    "  - {name: ask, prompt: 'Code? {{ seed.q }}', parser: {type: label, labels: ['yes', 'no']},\n"
                    "     keep_if: {label: ['yes']}}\n"
                    "  - {name: answer, prompt: '{{ seed.q }}'}\noutput: {text: '{{ answer.text }}'}\n")
    r = load_recipe(path)
    assert r.judge(0, {"label": "yes"}) is None
    assert r.judge(0, {"label": "no"}) == "step ask: label is 'no'; kept only yes"
    assert r.judge(0, {}) == "step ask: label is 'missing'; kept only yes"
    assert r.judge(1, {"text": "anything"}) is None  # not a judge
    path.write_text(path.read_text().replace("keep_if: {label: ['yes']}", "keep_if: {label: [yes]}"))
    with pytest.raises(ConfigError, match="keep_if.label: .*quote yes/no"):
        load_recipe(path)  # YAML reads a bare yes as true


def test_mentions_any_and_shell_checks():
    rec = {"code": "import heapq\ndef smallest(xs):\n    return heapq.nsmallest(2, xs)\n",
           "apis": "heapq.nsmallest, heapq.heapify"}
    assert checks.mentions_any(rec, field="code", value_of="apis") is None
    assert checks.mentions_any({**rec, "apis": ["heapq.heapify"]}, field="code", value_of="apis") == (
        "code uses none of heapify (apis)")
    assert checks.mentions_any({**rec, "code": "nsmallest_ok = 1"}, field="code", value_of="apis") is not None
    shell = {"language": "shell", "code": "count_words() {\n  echo \"$1\" | wc -w\n}\n",
             "tests": "[ \"$(count_words 'a b')\" = 2 ]\ntest \"$(count_words '')\" = 0\n"}
    assert checks.defined_names(shell["code"], "shell") == {"count_words"}
    assert checks.count_asserts(shell["tests"], "shell") == 2
    assert checks.tests_call_code(shell) is None
    assert checks.tests_call_code({**shell, "tests": "[ 1 = 1 ]\n"}) is not None


def test_test_instructions_follow_the_sandboxs_conventions():
    from oc_synth.synth.recipes.conventions import test_instructions

    assert "assert" in test_instructions("python") and test_instructions("py") == test_instructions("python")
    assert "public class Main" in test_instructions("java")
    assert "set -e" in test_instructions("bash") and 'require("assert")' in test_instructions("js")
    assert "non-zero status" in test_instructions("cobol")
    r = load_recipe("mceval-instruct")
    messages, _ = r.messages(0, {"seed": {"text": "x"}, "seed_id": "s", "language": "rust"})
    assert "fn main()" in messages[-1]["content"] and "assert_eq!" in messages[-1]["content"]
