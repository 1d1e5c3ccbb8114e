"""The SFT recipes of OpenCoder's instruction mix: every shipped recipe cites its source and runs end to end with the
tiny model on its embedded seeds; well-formed canned answers go through parsing, judging, checks and the real sandbox
to kept records, and every way out is a recorded reason."""

import inspect
import json
import re
from pathlib import Path

import pytest

from oc_common.records import read_file_records
from oc_synth.backends import make_backend
from oc_synth.cli.generate import generate
from oc_synth.synth.config import GenerateConfig
from oc_synth.synth.finalize import REJECTED
from oc_synth.synth.generator import Generator
from oc_synth.synth.recipes import list_recipes, load_recipe
from oc_synth.synth.recipes.recipe import RECIPES_DIR
from oc_synth.synth.verification import SandboxVerifier

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "synth"
# Every shipped recipe and the embedded seed sample it runs on (a new recipe must add itself here).
SEED_FILES = {
    "annealing-snippets": "algorithmic.jsonl",
    "code-textbook": "code.jsonl",
    "educational-instruct": "snippets.jsonl",
    "package-instruct": "packages.jsonl",
    "diverse-instruct": "web.jsonl",
    "realuser-instruct": "realuser.jsonl",
    "filtered-instruct": "general_instructions.jsonl",
    "evol-instruct": "evol.jsonl",
    "mceval-instruct": "multilang.jsonl",
}


@pytest.fixture(scope="module")
def verifier():
    v = SandboxVerifier()
    yield v
    v.close()


def config(recipe, seeds, out, overrides=(), **kw):
    base = dict(recipe=load_recipe(recipe, list(overrides)), seeds=str(seeds), out=out, backend="canned",
                model="canned-model", verify_timeout=10.0, quiet=True)
    return GenerateConfig(**{**base, **kw})


def records(out, shard):
    kept, errors = read_file_records(out / f"{shard}.jsonl")
    rejected, errors2 = read_file_records(out / REJECTED / f"{shard}.jsonl")
    assert not errors and not errors2
    return {r["id"]: r for r in kept}, {r["id"]: r for r in rejected}


def prompt_of(request):
    return request.messages[-1]["content"] if request.messages else request.prompt


# ------------------------------------------------------------------------------------------------ sources and docs
def header(name):
    text = (RECIPES_DIR / f"{name}.yaml").read_text()
    return "\n".join(line for line in text.splitlines() if line.startswith("#"))


def test_every_shipped_recipe_has_seeds_cites_its_source_and_is_listed_in_the_docs():
    assert set(SEED_FILES) == set(list_recipes())
    readme = (REPO / "README.md").read_text()
    cli_help = inspect.signature(generate).parameters["recipe"].default.help
    synthesis = (REPO / "docs" / "synthesis.md").read_text()
    for name, seeds in SEED_FILES.items():
        assert (EXAMPLES / seeds).is_file(), name
        cite = header(name)
        assert re.search(r"paper §\d", cite), f"{name}: no paper section"
        # the paper's own prompt (with its version and what its wording was checked against), another paper's (with its
        # section), or a prompt said to be ours
        quotes_paper = "arXiv:2411.04905 v1" in cite and "Wording checked against" in cite
        quotes_other = re.search(r"arXiv:\d{4}\.\d{5}, §\d", cite) and "verbatim" in cite
        ours = re.search(r"prompt(?: wording)? (?:is )?ours|prompts are ours", cite, re.IGNORECASE)
        assert quotes_paper or quotes_other or ours, name
        assert f"| `{name}` |" in synthesis, f"docs/synthesis.md lacks {name}"
        assert f"`{name}`" in readme, f"README lacks {name}"
        assert f"examples/synth/{seeds}" in synthesis, f"docs/synthesis.md does not name {seeds} for {name}"
        assert name in cli_help, f"oc-synth generate --help does not name {name}"


@pytest.mark.parametrize("name, quoted", [
    ("educational-instruct", "You are a teaching assistant helping to create a Python programming task from a given "
                             "code snippet."),
    ("package-instruct", "Please gain inspiration from the following code snippet to create a high-quality "
                         "programming problem, which is beneficial for learning the use of corresponding libraries."),
    ("diverse-instruct", "You are an expert in designing high-quality programming questions based on the given "
                         "text."),
    ("evol-instruct", "Please increase the difficulty of the given programming test question a bit."),
])
def test_quoted_prompts_reach_the_model(name, quoted):
    r = load_recipe(name)
    seed = {"text": "import heapq\nheapq.heapify([3, 1])\n", "query": "Sort a list.", "apis": ["heapq.heapify"],
            "api_doc": "heapify(heap, /)", "package": "heapq"}
    messages, _ = r.messages(0, {"seed": seed, "seed_id": "s", **r.sample_variables(seed, __import__("random")
                                                                                     .Random(0))})
    assert quoted in messages[-1]["content"]


# ------------------------------------------------------------------------------------ the tiny model, every recipe
@pytest.mark.parametrize("name", sorted(SEED_FILES))
def test_every_recipe_runs_end_to_end_with_the_tiny_model(name, tmp_path, tiny_model, verifier):
    """Random weights write gibberish: every seed still ends as a record with its reason and provenance, through
    every step the recipe has (judges answer no label, parsers find no sections)."""
    seeds = EXAMPLES / SEED_FILES[name]
    rows = [json.loads(line) for line in seeds.read_text().splitlines() if line.strip()]
    out = tmp_path / "out"
    cfg = GenerateConfig(recipe=load_recipe(name), seeds=str(seeds), out=out, backend="hf", model=tiny_model,
                         sampling={"max_tokens": 6}, batch_size=4, verify_timeout=10.0, quiet=True)
    result = Generator(cfg, lambda: make_backend("hf", tiny_model), verifier).run()
    assert result.aborted is None and result.failed_now == 0
    c = result.stats.counters
    assert c["seeds"] == len(rows)
    kept, rejected = records(out, seeds.stem)
    assert not kept  # gibberish never makes a sample
    assert {r["seed_id"] for r in rejected.values()} == {str(row["id"]) for row in rows}
    for r in rejected.values():
        assert r["drop_reasons"] and r["drop_reasons"][0].split(":")[0] in ("seed", "parse", "judge", "check")
        if not r["drop_reasons"][0].startswith("seed:"):
            assert r["provenance"]["model"] == tiny_model and r["raw"], r
    assert c["records_out"] == 0 and c["generated"] == len(rows) - c["seeds_rejected"]


# ------------------------------------------------------------------------------- canned answers through to records
def test_educational_instruct_paper_format_to_verified_record(tmp_path, canned, verifier):
    asserts = "".join(f"assert squeeze_runs({s!r}) == {e!r}\n" for s, e in [
        ("", ""), ("a", "a"), ("aa", "a"), ("aab", "ab"), ("abba", "aba"), ("aaabbbccc", "abc"), ("xyz", "xyz"),
        ("  ", " "), ("aAa", "aAa"), ("zzzz", "z")])
    good = ("[Task]\nWrite squeeze_runs(s) that collapses every run of one repeated character into one.\n"
            "[Analysis]\nWalk the string and keep a character when it differs from the previous one; O(n).\n"
            "[Solution]\n```python\ndef squeeze_runs(s):\n    out = []\n    for ch in s:\n        if not out or "
            "out[-1] != ch:\n            out.append(ch)\n    return ''.join(out)\n```\n[Test]\n```python\n"
            f"{asserts}```\n")

    def answer(request):
        assert "[Code Snippet]\ndef run_lengths(s):" in prompt_of(request) or request.id != "snip-run-length"
        return good if request.id == "snip-run-length" else good.replace("[Test]", "[Tests]").replace(
            asserts, asserts.replace("'abc'", "'abcd'"))  # a wrong expectation: the sandbox fails it

    out = tmp_path / "out"
    Generator(config("educational-instruct", EXAMPLES / "snippets.jsonl", out, limit=2), lambda: canned(answer),
              verifier).run()
    kept, rejected = records(out, "snippets")
    rec = kept["snip-run-length-s0"]
    assert rec["verdict"] == "passed" and rec["instruction"].startswith("Write squeeze_runs(s)")
    assert rec["response"].startswith("Walk the string") and "```python\ndef squeeze_runs" in rec["response"]
    assert rejected["snip-matrix-spiral-s0"]["drop_reasons"] == ["verify:failed"]


def test_package_instruct_feeds_snippet_api_requirement_and_pydoc(tmp_path, canned, verifier):
    prompts = {}
    solution = ("Use `heapq.nsmallest` with a key.\n\n```python\nimport heapq\n\ndef nearest_points(points, k):\n"
                "    return heapq.nsmallest(k, points, key=lambda p: p[0] ** 2 + p[1] ** 2)\n```\n")
    tests = ("assert nearest_points([(3, 4), (1, 1), (0, 2)], 1) == [(1, 1)]\n"
             "assert nearest_points([(3, 4), (1, 1), (0, 2)], 2) == [(1, 1), (0, 2)]\n"
             "assert nearest_points([], 3) == []\nassert nearest_points([(5, 5)], 0) == []\n"
             "assert nearest_points([(2, 0), (0, 1)], 5) == [(0, 1), (2, 0)]\n")

    def answer(request):
        prompts[request.id] = prompt_of(request)
        code = solution if request.id == "pkg-heapq" else solution.replace("heapq.nsmallest(k, points, key=",
                                                                           "sorted(points, key=").replace(
            "p[1] ** 2)", "p[1] ** 2)[:k]")
        return (f"[Problem Description]\nWrite nearest_points(points, k) with heapq.\n[Solution]\n{code}"
                f"[Tests]\n```python\n{tests}```\n")

    out = tmp_path / "out"
    Generator(config("package-instruct", EXAMPLES / "packages.jsonl", out), lambda: canned(answer), verifier).run()
    kept, rejected = records(out, "packages")
    heap = prompts["pkg-heapq"]
    assert "[Code Snippet]\nimport heapq\n\ndef k_closest(points, k):" in heap
    assert "[Library Api Requirements]\nThe solution must use heapq.nsmallest." in heap
    assert "[Library Api Doc]\n## heapq.nsmallest\n" in heap and "Find the n smallest elements" in heap
    assert "statistics.median_low, statistics.mean, statistics.pstdev" in prompts["pkg-statistics"]
    rec = kept["pkg-heapq-s0"]
    assert rec["verdict"] == "passed" and rec["package"] == "heapq" and rec["apis"] == "heapq.nsmallest"
    assert rec["response"].startswith("Use `heapq.nsmallest`") and rec["code"].startswith("import heapq")
    # the same solution without the required API: imports the package, uses none of the APIs the seed named
    assert rejected["pkg-groupby-s0"]["drop_reasons"] == ["check:contains"]
    assert rejected["pkg-counter-s0"]["drop_reasons"] == ["check:contains"]
    assert rejected["pkg-missing"]["drop_reasons"] == ["seed:pydoc"]


def test_package_instruct_requires_the_apis_the_seed_names(tmp_path, canned, verifier):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"id": "h", "text": "import heapq\nprint(heapq.nlargest(2, [1, 5, 3]))\n"}) + "\n")
    code = "import heapq\n\ndef biggest(xs):\n    return sorted(xs)[-1:]\n"
    answer = (f"[Problem Description]\nbiggest(xs)\n[Solution]\n```python\n{code}```\n[Tests]\n```python\n"
              + "assert biggest([1, 2]) == [2]\n" * 5 + "```\n")
    out = tmp_path / "out"
    Generator(config("package-instruct", seeds, out), lambda: canned(lambda r: answer), verifier).run()
    _, rejected = records(out, "s")
    assert rejected["h-s0"]["drop_reasons"] == ["check:mentions_any"]
    assert "uses none of nlargest" in rejected["h-s0"]["drop_details"][0]


def judge_yes_for(*markers):
    def decide(request):
        return "YES" if any(m in prompt_of(request) for m in markers) else "NO."
    return decide


def test_realuser_instruct_judges_then_regenerates(tmp_path, canned):
    answers = []

    def answer(request):
        text = prompt_of(request)
        if "Answer with one word: YES or NO" in text:
            return judge_yes_for("python loop", "JavaScript", "SQL")(request)
        answers.append(text)
        return f"Here is a careful answer to: {text[:30]}\n\n```python\nprint('ok')\n```"

    out = tmp_path / "out"
    result = Generator(config("realuser-instruct", EXAMPLES / "realuser.jsonl", out), lambda: canned(answer),
                       None).run()
    kept, rejected = records(out, "realuser")
    assert set(kept) == {"ru-late-binding-s0", "ru-regex-s0", "ru-sql-s0"}
    assert {k: r["drop_reasons"] for k, r in rejected.items()} == {"ru-poem": ["judge:judge"],
                                                                    "ru-trip": ["judge:judge"]}
    assert "kept only yes" in rejected["ru-poem"]["drop_details"][0] and rejected["ru-poem"]["raw"] == {
        "judge": "NO."}
    sql = kept["ru-sql-s0"]  # the first user turn, after the system message; no assistant turn to keep
    assert sql["instruction"].startswith("In SQL, how do I get") and sql["original_response"] == ""
    assert kept["ru-regex-s0"]["original_response"] == "Use a regex."  # ShareGPT from/value
    assert kept["ru-late-binding-s0"]["response"].startswith("Here is a careful answer")
    assert len(answers) == 3 and answers[2].startswith("In SQL")  # only kept queries are answered, as asked
    c = result.stats.counters
    assert (c["generated"], c["parsed"], c["judged"], c["records_out"]) == (5, 5, 3, 3)


def test_filtered_instruct_keeps_code_samples_unchanged(tmp_path, canned):
    out = tmp_path / "out"
    backend = canned(judge_yes_for("binary search", "git commit"))
    Generator(config("filtered-instruct", EXAMPLES / "general_instructions.jsonl", out), lambda: backend,
              None).run()
    kept, rejected = records(out, "general_instructions")
    assert set(kept) == {"gen-binary-search-s0", "gen-git-undo-s0"}
    original = json.loads((EXAMPLES / "general_instructions.jsonl").read_text().splitlines()[0])
    assert kept["gen-binary-search-s0"]["response"] == original["conversations"][1]["value"]
    assert {r["drop_reasons"][0] for r in rejected.values()} == {"judge:classify"}
    assert all(r.sampling.temperature == 0 and r.sampling.max_tokens == 8 for b in backend.calls for r in b)


def test_a_judge_that_answers_nonsense_is_a_parse_failure(tmp_path, canned):
    out = tmp_path / "out"
    Generator(config("filtered-instruct", EXAMPLES / "general_instructions.jsonl", out, limit=1),
              lambda: canned(lambda r: "Maybe? It depends."), None).run()
    _, rejected = records(out, "general_instructions")
    assert rejected["gen-binary-search-s0"]["drop_reasons"] == ["parse:no_label"]


def test_evol_instruct_evolves_with_a_drawn_heuristic_then_answers_and_verifies(tmp_path, canned, verifier):
    evolve_prompts = {}
    code = "def reverse_word_order(s):\n    return ' '.join(reversed(s.split()))\n"
    tests = ("assert reverse_word_order('a b c') == 'c b a'\nassert reverse_word_order('') == ''\n"
             "assert reverse_word_order('one') == 'one'\nassert reverse_word_order('  x   y ') == 'y x'\n"
             "assert reverse_word_order('hello world') == 'world hello'\n")

    def answer(request):
        text = prompt_of(request)
        if text.startswith("Please increase the difficulty"):
            evolve_prompts[request.id] = text
            return "Write reverse_word_order(s) that reverses the words of s and collapses runs of spaces."
        assert text.startswith("Write reverse_word_order(s)") and "Solve this task in python" in text
        return f"[Solution]\nSplit and join.\n```python\n{code}```\n[Tests]\n```python\n{tests}```\n"

    out = tmp_path / "out"
    Generator(config("evol-instruct", EXAMPLES / "evol.jsonl", out, limit=1), lambda: canned(answer),
              verifier).run()
    kept, _ = records(out, "evol")
    rec = kept["evol-reverse-words-s0"]
    methods = load_recipe("evol-instruct").spec.variables["method"]
    assert rec["evolution"] in methods and rec["evolution"] == rec["provenance"]["variables"]["method"]
    assert f"following methods:\n{rec['evolution']}\n\nWrite a function that reverses" in evolve_prompts[
        "evol-reverse-words"]
    assert rec["verdict"] == "passed" and rec["instruction"].startswith("Write reverse_word_order")


MULTILANG = {  # language: (solution, tests) in the conventions test_instructions asks the model for
    "python": ("def chunk_sizes(n, k):\n    return [min(k, n - i) for i in range(0, n, k)]\n",
               "assert chunk_sizes(5, 2) == [2, 2, 1]\nassert chunk_sizes(0, 3) == []\n"
               "assert chunk_sizes(4, 4) == [4]\n"),
    "javascript": ("function clampAll(xs, lo, hi) {\n  return xs.map((x) => Math.min(hi, Math.max(lo, x)));\n}\n",
                   'const assert = require("assert");\n'
                   "assert.deepStrictEqual(clampAll([1, 5, 9], 2, 8), [2, 5, 8]);\n"
                   "assert.deepStrictEqual(clampAll([], 0, 1), []);\n"
                   "assert.deepStrictEqual(clampAll([3], 3, 3), [3]);\n"),
    # (no strlen: HumanEval/23's entry point, which decontamination drops in any language)
    "c": ("#include <string.h>\nvoid reverse_in_place(char *s) {\n  size_t n = 0;\n  while (s[n]) n++;\n"
          "  for (size_t i = 0; i < n / 2; i++) { char t = s[i]; s[i] = s[n - 1 - i]; s[n - 1 - i] = t; }\n}\n",
          "#include <assert.h>\nint main(void) {\n"
          "  char a[] = \"abc\"; reverse_in_place(a); assert(strcmp(a, \"cba\") == 0);\n"
          "  char b[] = \"\"; reverse_in_place(b); assert(strcmp(b, \"\") == 0);\n"
          "  char c[] = \"ab\"; reverse_in_place(c); assert(strcmp(c, \"ba\") == 0);\n  return 0;\n}\n"),
    "shell": ("count_words() {\n  echo \"$1\" | wc -w | tr -d ' '\n}\n",
              "[ \"$(count_words 'a b c')\" = 3 ]\n[ \"$(count_words '')\" = 0 ]\n[ \"$(count_words one)\" = 1 ]\n"),
}


def test_mceval_instruct_in_several_languages_runs_in_the_sandbox(tmp_path, canned, verifier):
    seeds = tmp_path / "ml.jsonl"
    seeds.write_text("".join(json.dumps({"id": lang, "language": lang, "text": f"// some {lang} code"}) + "\n"
                             for lang in MULTILANG))

    def answer(request):
        code, tests = MULTILANG[request.id]
        assert f"Create a self-contained {request.id} programming task" in prompt_of(request)
        return (f"[Question]\nWrite the {request.id} function.\n[Solution]\nStraightforward.\n"
                f"```{request.id}\n{code}```\n[Tests]\n```{request.id}\n{tests}```\n")

    out = tmp_path / "out"
    Generator(config("mceval-instruct", seeds, out), lambda: canned(answer), verifier).run()
    kept, rejected = records(out, "ml")
    assert not rejected, {k: (r["drop_reasons"], r["drop_details"]) for k, r in rejected.items()}
    assert {r["language"] for r in kept.values()} == set(MULTILANG)
    assert all(r["verdict"] == "passed" for r in kept.values())
