"""The generate pipeline with canned model answers and the real sandbox: every verdict path, bad input, dedup,
decontamination, backend failures, resume, determinism, multi-step recipes and data-parallel ranks."""

import json

import pytest

from oc_common.outputs import read_stats
from oc_common.records import read_file_records, write_records
from oc_synth.synth.config import GenerateConfig
from oc_synth.synth.finalize import REJECTED
from oc_synth.synth.generator import Generator, derive_seed
from oc_synth.synth.recipes import load_recipe
from oc_synth.synth.store import FAILED, GENERATIONS, GenerationStore
from oc_synth.synth.verification import SandboxVerifier

SOLUTION = "def sum_pair(a, b):\n    return a + b\n"
TEN = "".join(f"assert sum_pair({i}, 1) == {i + 1}\n" for i in range(10))


def lesson(task="Write sum_pair(a, b) that returns the sum of two integers.", solution=SOLUTION, tests=TEN):
    return (f"## Task\n{task}\n\n## Analysis\nAdd the two numbers; O(1).\n\n"
            f"## Solution\n```python\n{solution}```\n\n## Tests\n```python\n{tests}```\n")


ANSWERS = {
    "pass": lesson(),
    "fail": lesson(task="Write sum_pair(a, b) returning a + b, tested with one wrong expectation.",
                   tests=TEN.replace("== 10", "== 11")),
    "timeout": lesson(task="Write sum_pair(a, b) the slow way.",
                      solution="def sum_pair(a, b):\n    while True:\n        pass\n"),
    "error": lesson(task="Write sum_pair(a, b) with a typo.", solution="def sum_pair(a, b)\n    return a + b\n"),
    # asserts inside a function nobody calls: the static checks pass, the sandbox sees no assert run
    "no_tests": lesson(task="Write sum_pair(a, b), tests wrapped in a function.",
                       tests="def _never_called():\n" + "".join("    " + line + "\n" for line in TEN.splitlines())),
    "noblock": "## Task\nAdd numbers.\n## Analysis\nEasy.\n## Solution\nJust return a + b.\n## Tests\nNone.",
    "truncated": lesson()[:-60],
    "nocall": lesson(task="Write sum_pair(a, b), tested on literals.", tests="assert 1 + 1 == 2\n" * 10),
    "few": lesson(task="Write sum_pair(a, b) with three tests.", tests="assert sum_pair(1, 1) == 2\n" * 3),
    "dup": lesson(task="write   SUM_PAIR(a, b) that returns the sum of two integers."),
    "contaminated": lesson(task="Write sum_pair(a, b); see also has_close_elements(numbers, threshold)."),
}
SEED_LINES = [json.dumps({"id": k, "text": f"seed code for {k}"}) for k in ANSWERS] + [
    "{not json", json.dumps({"id": "blank", "text": "   "}), json.dumps({"id": "pass", "text": "duplicate id"})]


def answer_by_seed(request):
    return ANSWERS[request.id]


@pytest.fixture
def seeds(tmp_path):
    p = tmp_path / "seeds" / "part-0.jsonl"
    p.parent.mkdir()
    p.write_text("\n".join(SEED_LINES) + "\n")
    return p.parent


def make_config(recipe_name, seeds, out, **kw):
    base = dict(recipe=load_recipe(recipe_name), seeds=str(seeds), out=out, backend="canned", model="canned-model",
                verify_timeout=1.0, quiet=True)
    return GenerateConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def verifier():
    v = SandboxVerifier()
    yield v
    v.close()


def by_id(path):
    records, errors = read_file_records(path)
    assert not errors
    return {r["id"]: r for r in records}


def test_every_verdict_and_drop_path_is_recorded(seeds, tmp_path, canned, verifier):
    out = tmp_path / "out"
    backend = canned(answer_by_seed)
    result = Generator(make_config("educational-instruct", seeds, out, batch_size=4), lambda: backend,
                       verifier).run()
    kept = by_id(out / "part-0.jsonl")
    assert list(kept) == ["pass-s0"]
    rec = kept["pass-s0"]
    assert rec["verdict"] == "passed" and rec["passed"] is True and rec["runtime_s"] >= 0
    assert rec["instruction"].startswith("Write sum_pair(a, b)") and rec["code"] == SOLUTION and rec["tests"] == TEN
    assert "```python\ndef sum_pair" in rec["response"]
    prov = rec["provenance"]
    assert prov["recipe"] == "educational-instruct" and prov["model"] == "canned-model" and prov["backend"] == "canned"
    assert prov["sampling"]["seed"] == derive_seed(0, "educational-instruct", "pass", "lesson")
    assert prov["sampling"]["temperature"] == 0.7 and prov["seed_source"].endswith("part-0.jsonl:1")
    assert not {"keep", "drop_reasons", "raw"} & set(rec)

    rejected = by_id(out / REJECTED / "part-0.jsonl")
    reasons = {k: r["drop_reasons"][0] for k, r in rejected.items()}
    assert reasons == {
        "fail-s0": "verify:failed", "timeout-s0": "verify:timeout", "error-s0": "verify:error",
        "no_tests-s0": "verify:no_tests", "noblock-s0": "parse:no_code_block",
        "truncated-s0": "parse:unclosed_code_fence", "nocall-s0": "check:tests_call_code",
        "few-s0": "check:min_asserts", "dup-s0": "dedup:exact", "contaminated-s0": "decontam:entry_point",
        "part-0:12": "seed:malformed", "blank": "seed:empty", "pass@part-0:14": "seed:duplicate_id"}
    assert rejected["contaminated-s0"]["drop_details"][-1].startswith("uses has_close_elements() of humaneval:")
    assert rejected["noblock-s0"]["raw"]["lesson"] == ANSWERS["noblock"]  # the model's answer is never lost
    assert "AssertionError" in rejected["fail-s0"]["drop_details"][0]
    c = result.stats.counters
    assert (c["seeds"], c["seeds_rejected"], c["generated"], c["parsed"], c["checked"], c["passed"], c["deduped"],
            c["decontaminated"], c["records_out"]) == (14, 3, 11, 9, 7, 3, 2, 1, 1)
    assert result.stats.groups["verdicts"] == {"passed": 3, "failed": 1, "timeout": 1, "error": 1, "no_tests": 1}
    assert read_stats(out)["counters"]["records_out"] == 1
    assert backend.closed


def test_backend_failures_are_retried_by_the_next_run_and_done_seeds_skipped(seeds, tmp_path, canned, verifier):
    out = tmp_path / "out"
    flaky = canned(lambda r: TimeoutError("read timed out") if r.id in ("fail", "few") else ANSWERS[r.id])
    first = Generator(make_config("educational-instruct", seeds, out), lambda: flaky, verifier).run()
    assert first.failed_now == 2 and first.stats.counters["backend_failed"] == 2
    failed, _ = read_file_records(out / FAILED / "part-0.jsonl")
    assert {f["seed_id"] for f in failed} == {"fail", "few"} and "read timed out" in failed[0]["error"]
    healthy = canned(answer_by_seed)
    second = Generator(make_config("educational-instruct", seeds, out), lambda: healthy, verifier).run()
    assert sorted(healthy.seen_ids) == ["fail", "few"]  # only what was not done
    assert second.stats.counters["backend_failed"] == 0 and not (out / FAILED / "part-0.jsonl").exists()
    rejected = by_id(out / REJECTED / "part-0.jsonl")
    assert rejected["fail-s0"]["drop_reasons"] == ["verify:failed"]
    assert second.stats.counters["generated"] == 11
    third = canned(answer_by_seed)  # nothing left: the model is not even loaded
    Generator(make_config("educational-instruct", seeds, out), lambda: third, verifier).run()
    assert third.calls == []


def test_a_backend_that_dies_stops_generation_but_loses_nothing(seeds, tmp_path, canned, verifier):
    out = tmp_path / "out"
    calls = {"n": 0}

    def dies_after_first_batch(request):
        return ANSWERS[request.id]

    backend = canned(dies_after_first_batch)
    real = backend._generate

    def generate(requests):
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("engine core died")
        return real(requests)

    backend._generate = generate
    cfg = make_config("educational-instruct", seeds, out, batch_size=2, max_failed_batches=2)
    result = Generator(cfg, lambda: backend, verifier).run()
    assert result.aborted and "2 batches in a row" in result.aborted and calls["n"] == 3
    log = {sid for sid, _ in GenerationStore(out).done_generations()}
    assert log == {"pass", "fail"}  # the first batch is in the log
    assert result.stats.counters["backend_failed"] == 4  # the two failed batches, recorded for the retry
    healthy = canned(answer_by_seed)
    again = Generator(make_config("educational-instruct", seeds, out, batch_size=2), lambda: healthy, verifier).run()
    assert not again.aborted and "pass" not in healthy.seen_ids
    assert again.stats.counters["records_out"] == 1 and again.stats.counters["generated"] == 11


def test_torn_log_tail_is_repaired_and_the_seed_redone(seeds, tmp_path, canned):
    out = tmp_path / "out"
    cfg = make_config("educational-instruct", seeds, out, verify=False, decontaminate=False)
    Generator(cfg, lambda: canned(answer_by_seed), None).run()
    log = out / GENERATIONS / "part-0.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # a run killed in the middle of its last append
    again = canned(answer_by_seed)
    Generator(make_config("educational-instruct", seeds, out, verify=False, decontaminate=False),
              lambda: again, None).run()
    last_seed = json.loads(lines[-1])["seed_id"]
    assert again.seen_ids == [last_seed]
    assert log.read_bytes().count(b"\n") == len(lines)


def test_samples_do_not_depend_on_batching_and_n_gives_one_record_each(seeds, tmp_path, canned):
    def record_seeds(batch_size, out):
        b = canned(lambda r: [ANSWERS["pass"], ANSWERS["few"]])
        Generator(make_config("educational-instruct", seeds, out, n=2, batch_size=batch_size, verify=False,
                              dedup=False, decontaminate=False), lambda: b, None).run()
        return {r.id: r.sampling.seed for batch in b.calls for r in batch}, b

    one, b1 = record_seeds(1, tmp_path / "a")
    many, _ = record_seeds(64, tmp_path / "b")
    assert one == many and len(set(one.values())) == len(one)
    assert all(len(batch) == 1 for batch in b1.calls)
    kept = by_id(tmp_path / "a" / "part-0.jsonl")
    assert {k for k in kept if k.startswith("pass")} == {"pass-s0"}
    rejected = by_id(tmp_path / "a" / REJECTED / "part-0.jsonl")
    assert rejected["pass-s1"]["drop_reasons"] == ["check:min_asserts"] and rejected["pass-s1"]["sample"] == 1


def test_multi_step_recipe_and_declined_seeds(tmp_path, canned, verifier):
    seeds = tmp_path / "web.jsonl"
    write_records(seeds, [{"id": "py", "text": "Python dict comprehensions build dicts."},
                          {"id": "cake", "text": "Bake a banana bread."}])
    solution = "def twice(x):\n    return 2 * x\n"
    tests = "assert twice(2) == 4\nassert twice(0) == 0\nassert twice(-1) == -2\n"
    commented = "def twice(x):\n    # doubling is adding x to itself\n    return 2 * x\n"

    def answer(request):
        content = request.messages[-1]["content"]
        if "[Given Text]" in content:  # step 1: the paper's question prompt
            return "NONE" if "banana" in content else "[Created Question]\nWrite twice(x) returning 2 * x."
        if content.startswith("Write twice(x) returning 2 * x.\n\nAnswer this question in python"):  # step 2
            return f"[Solution]\n```python\n{solution}```\n[Tests]\n```python\n{tests}```\n"
        assert "Rewrite the answer" in content and solution in content  # step 3 sees step 2's parsed answer
        return f"```python\n{commented}```\n\nIt multiplies its argument by two, so twice(2) is 4."

    out = tmp_path / "out"
    backend = canned(answer)
    result = Generator(make_config("diverse-instruct", seeds, out, n=1, sampling={"max_tokens": 99},
                                   recipe=load_recipe("diverse-instruct", ["variables.language=[python]"])),
                       lambda: backend, verifier).run()
    assert [len(b) for b in backend.calls] == [2, 1, 1]
    assert [r.sampling.max_tokens for b in backend.calls for r in b] == [99, 99, 99, 99]
    (rec,) = by_id(out / "web.jsonl").values()
    # the commented code of the last step is what the sandbox ran with the tests of the second
    assert rec["code"] == commented and rec["tests"] == tests and rec["verdict"] == "passed"
    assert rec["instruction"] == "Write twice(x) returning 2 * x." and "twice(2) is 4" in rec["response"]
    assert rec["difficulty"] in ("easy", "medium", "hard") and rec["language"] == "python"
    assert set(rec["provenance"]["steps"]) == {"question", "answer", "polish"}
    declined = by_id(out / REJECTED / "web.jsonl")["cake"]
    assert declined["drop_reasons"] == ["parse:declined"] and declined["raw"] == {"question": "NONE"}
    assert result.stats.counters["generated"] == 2 and result.stats.counters["records_out"] == 1


def test_ranks_split_the_seeds_and_an_unranked_run_finalizes(seeds, tmp_path, canned):
    out = tmp_path / "out"
    seen = []
    for rank in (0, 1):
        b = canned(answer_by_seed)
        r = Generator(make_config("educational-instruct", seeds, out, rank=rank, world_size=2, verify=False),
                      lambda b=b: b, None).run()
        assert not r.finalized and not (out / "part-0.jsonl").exists()
        seen.append(set(b.seen_ids))
    assert seen[0] and seen[1] and not seen[0] & seen[1] and len(seen[0] | seen[1]) == 11
    assert sorted(p.name for p in (out / GENERATIONS).iterdir()) == ["part-0.rank00000.jsonl",
                                                                      "part-0.rank00001.jsonl"]
    final = canned(answer_by_seed)
    result = Generator(make_config("educational-instruct", seeds, out, verify=False), lambda: final, None).run()
    assert final.calls == [] and result.finalized
    single = tmp_path / "single"
    Generator(make_config("educational-instruct", seeds, single, verify=False), lambda: canned(answer_by_seed),
              None).run()
    assert set(by_id(out / "part-0.jsonl")) == set(by_id(single / "part-0.jsonl"))
    assert set(by_id(out / REJECTED / "part-0.jsonl")) == set(by_id(single / REJECTED / "part-0.jsonl"))


def test_other_options_refuse_to_resume_and_limit_takes_first_rows(seeds, tmp_path, canned):
    from oc_common.errors import OutputExistsError

    out = tmp_path / "out"
    b = canned(answer_by_seed)
    Generator(make_config("educational-instruct", seeds, out, verify=False, limit=3), lambda: b, None).run()
    assert b.seen_ids == ["pass", "fail", "timeout"]
    with pytest.raises(OutputExistsError, match="other options"):
        Generator(make_config("educational-instruct", seeds, out, verify=False, seed=1), lambda: b, None).run()


def test_an_edited_seed_is_generated_again_and_removed_seeds_are_left_out(tmp_path, canned):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write_records(seeds / "part-0.jsonl", [{"id": "a", "text": "seed code a"}, {"id": "b", "text": "seed code b"}])
    write_records(seeds / "part-1.jsonl", [{"id": "c", "text": "seed code c"}])

    def answer(request):  # the task says which version of the seed it was written from
        version = "second" if "edited" in request.messages[-1]["content"] else "first"
        return lesson(task=f"Write sum_pair(a, b) for seed {request.id}, {version} version.")

    def run():
        b = canned(answer)
        result = Generator(make_config("educational-instruct", seeds, tmp_path / "out", verify=False, dedup=False,
                                       decontaminate=False), lambda: b, None).run()
        return b, result.stats.counters

    def instructions():
        return {k: r["instruction"] for k, r in by_id(tmp_path / "out" / "part-0.jsonl").items()}

    backend, _ = run()
    assert sorted(backend.seen_ids) == ["a", "b", "c"] and (tmp_path / "out" / "part-1.jsonl").exists()
    write_records(seeds / "part-0.jsonl", [{"id": "b", "text": "seed code b, edited"}])  # a removed, b edited
    (seeds / "part-1.jsonl").unlink()  # c's whole file removed
    backend, counters = run()
    assert backend.seen_ids == ["b"]  # the edited seed, under the same id, and nothing else
    assert instructions() == {"b-s0": "Write sum_pair(a, b) for seed b, second version."}
    assert not (tmp_path / "out" / "part-1.jsonl").exists()
    assert not (tmp_path / "out" / REJECTED / "part-1.jsonl").exists()
    assert (counters["seeds_gone"], counters["records_of_gone_seeds"], counters["records_superseded"]) == (2, 2, 1)
    assert counters["seeds"] == 1 and counters["records_out"] == 1
    assert read_stats(tmp_path / "out")["counters"]["seeds_gone"] == 2
    write_records(seeds / "part-0.jsonl", [{"id": "b", "text": "seed code b"}])  # back to the first version
    backend, counters = run()
    assert backend.seen_ids == []  # that generation is in the log already
    assert instructions() == {"b-s0": "Write sum_pair(a, b) for seed b, first version."}
