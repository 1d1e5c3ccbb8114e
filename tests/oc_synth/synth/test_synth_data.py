"""Seeds (files, Parquet, saved HF datasets, pydoc), the append-only log, dedup and decontamination."""

import json

import pytest

from oc_common.records import write_records
from oc_synth.synth.decontaminate import Decontaminator, Problem, load_humaneval, load_mbpp
from oc_synth.synth.dedup import find_duplicates
from oc_synth.synth.recipes.recipe import DedupSpec, SeedSpec
from oc_synth.synth.seeds import BadSeed, Seed, chat_turns, package_apis, plan_seed_shards, prepare_seeds, snippet_apis
from oc_synth.synth.store import GenerationStore, append_records, iter_log, repair_tail


def prepared(path, spec, seen=None):
    (shard,) = plan_seed_shards(path)
    return list(prepare_seeds(shard, spec, set() if seen is None else seen))


def test_seed_ids_validation_and_truncation(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join([json.dumps({"id": 7, "text": "x" * 50}), json.dumps({"text": "no id"}),
                            json.dumps({"text": "no id"}), "[1]", json.dumps({"id": {"a": 1}, "text": "t"}),
                            json.dumps({"id": "e", "text": ""}), json.dumps({"id": "m"})]) + "\n")
    items = prepared(p, SeedSpec(require=["text"], truncate={"text": 10}))
    assert isinstance(items[0], Seed) and items[0].id == "7" and items[0].record["text"] == "x" * 10
    assert items[0].line == 1 and items[0].where.endswith("s.jsonl:1")
    assert isinstance(items[1], Seed) and items[1].id.startswith("h")  # content hash: stable across runs
    assert prepared(p, SeedSpec(require=["text"]))[1].id == items[1].id
    assert [(b.id, b.reason) for b in items[2:] if isinstance(b, BadSeed)] == [
        (f"{items[1].id}@s:3", "seed:duplicate_id"), ("s:4", "seed:malformed"), ("s:5", "seed:bad_id"),
        ("e", "seed:empty"), ("m", "seed:empty")]


def test_parquet_and_saved_hf_dataset_seeds(tmp_path):
    import datasets

    write_records(tmp_path / "pq" / "a.parquet", [{"id": "p1", "text": "one"}, {"id": "p2", "text": "two"}])
    shards = plan_seed_shards(tmp_path / "pq")
    assert [(s.name, s.size_hint) for s in shards] == [("a", 2)]
    datasets.Dataset.from_list([{"id": "h1", "text": "hello"}]).save_to_disk(str(tmp_path / "hfds"))
    (shard,) = plan_seed_shards(tmp_path / "hfds")
    assert shard.name == "hf-hfds"
    (seed,) = prepare_seeds(shard, SeedSpec(require=["text"]), set())
    assert (seed.id, seed.record["text"]) == ("h1", "hello")


def test_pydoc_enrichment_and_unimportable_packages(tmp_path):
    p = tmp_path / "pk.jsonl"
    write_records(p, [{"id": "c", "package": "collections", "symbol": "Counter"},
                      {"id": "x", "package": "no_such_package_xyz"}, {"id": "y", "package": "json", "symbol": "nope"}])
    good, missing, attr = prepared(p, SeedSpec(require=["package"], enrich="pydoc", api_doc_chars=500))
    assert good.record["api_name"] == "collections.Counter" and "most_common" in good.record["api_doc"]
    assert len(good.record["api_doc"]) <= 510
    assert missing.reason == "seed:pydoc" and "cannot import 'no_such_package_xyz'" in missing.detail
    assert attr.reason == "seed:pydoc" and "no attribute 'nope'" in attr.detail


def test_snippet_apis_resolve_imports_and_aliases():
    code = ("import numpy as np\nimport os.path\nfrom collections import Counter, OrderedDict as OD\n"
            "from . import sibling\n\ndef f(xs):\n    c = Counter(xs)\n    np.linalg.norm(xs)\n"
            "    return os.path.join('a', c.most_common(1)[0][0])\n")
    # in order of first use; an instance's method (c.most_common) is no import; an unused from-import comes last
    assert snippet_apis(code) == ["collections.Counter", "numpy.linalg.norm", "os.path.join", "collections.OrderedDict"]
    with pytest.raises(SyntaxError):
        snippet_apis("fn main() { println!(\"rust\"); }")


def test_package_apis_from_a_snippet_restricted_to_its_package():
    code = "import heapq\nimport json\n\ndef top(xs, k):\n    return json.dumps(heapq.nlargest(k, xs))\n"
    got = package_apis({"text": code, "package": "heapq"}, max_chars=3000, max_apis=8)
    assert got["apis"] == ["heapq.nlargest"] and got["api_name"] == "heapq.nlargest" and got["package"] == "heapq"
    assert got["api_doc"].startswith("## heapq.nlargest\n") and "Find the n largest elements" in got["api_doc"]
    every = package_apis({"text": code}, max_chars=3000, max_apis=8)  # no package named: every imported API
    assert every["apis"] == ["json.dumps", "heapq.nlargest"] and every["package"] == "json"
    assert len(every["api_doc"]) <= 3010 and "## json.dumps" in every["api_doc"] and "## heapq.nlargest" in every[
        "api_doc"]
    with_symbol = package_apis({"text": code, "package": "heapq", "symbol": "heapify"}, 3000, 1)
    assert with_symbol["apis"] == ["heapq.heapify"]  # the seed's own symbol first; max_apis cuts the rest
    with pytest.raises(LookupError, match="uses no API of itertools"):
        package_apis({"text": code, "package": "itertools"}, 3000, 8)
    with pytest.raises(LookupError, match="not Python"):
        package_apis({"text": "SELECT 1;", "package": "sqlite3"}, 3000, 8)


@pytest.mark.parametrize("record, expected", [
    ({"conversation": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                       {"role": "user", "content": "q2"}]}, {"query": "q1", "response": "a1"}),  # WildChat
    ({"conversations": [{"from": "system", "value": "be nice"}, {"from": "human", "value": "q"},
                        {"from": "gpt", "value": "a"}]}, {"query": "q", "response": "a"}),  # ShareGPT, Infinity
    ({"messages": [{"role": "user", "content": "only a question"}]}, {"query": "only a question"}),
    ({"instruction": "Sort xs.", "input": "[3, 1]", "output": "[1, 3]"}, {"query": "Sort xs.\n\n[3, 1]",
                                                                          "response": "[1, 3]"}),
    ({"query": "already there"}, {}),
])
def test_chat_turns_of_the_usual_formats(record, expected):
    assert chat_turns(record) == expected


def test_chat_enrichment_in_seeds(tmp_path):
    p = tmp_path / "chat.jsonl"
    write_records(p, [{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}]},
                      {"id": "b", "query": "mine", "conversation": [{"role": "user", "content": "theirs"}]},
                      {"id": "c", "conversation": [{"role": "assistant", "content": "no user turn"}]},
                      {"id": "d", "text": "no conversation at all"}])
    a, b, c, d = prepared(p, SeedSpec(require=["query"], enrich="chat"))
    assert (a.record["query"], a.record["response"]) == ("q", "r")
    assert b.record["query"] == "mine"  # the seed's own field wins
    assert (c.reason, d.reason) == ("seed:chat", "seed:chat") and "no user turn" in c.detail


def test_log_appends_repair_a_torn_tail_and_know_done_generations(tmp_path):
    store = GenerationStore(tmp_path)
    store.append("a", [{"seed_id": "s1", "seed_digest": "d1", "sample": 0, "samples": 2},
                       {"seed_id": "s1", "seed_digest": "d1", "sample": 1, "samples": 2},
                       {"seed_id": "bad", "seed_digest": "db", "sample": None, "samples": 0}])
    store.append("a", [{"seed_id": "s2", "seed_digest": "d2", "sample": 0, "samples": 2}])  # s2 lost its 2nd sample
    path = store.log_path("a")
    with open(path, "ab") as f:
        f.write(b'{"seed_id": "s3", "sam')
    assert store.done_generations() == {("s1", "d1"), ("bad", "db")}
    assert [r["seed_id"] for _, r in iter_log(path)] == ["s1", "s1", "bad", "s2"]  # the torn line is skipped
    assert repair_tail(path) == len(b'{"seed_id": "s3", "sam')
    assert repair_tail(path) == 0
    append_records(path, [{"seed_id": "s2", "seed_digest": "d2", "sample": 1, "samples": 2},
                          {"seed_id": "s1", "seed_digest": "e1", "sample": 0, "samples": 2}])
    # s1 edited (digest e1): its new generation is not done until both samples are in; the old one stays done
    assert store.done_generations() == {("s1", "d1"), ("bad", "db"), ("s2", "d2")}
    assert GenerationStore(tmp_path, rank=3).log_path("x/y").name == "y.rank00003.jsonl"
    assert set(store.log_files()) == {"a"}


def test_exact_and_near_duplicates_keep_the_first():
    texts = [
        "Write a function that returns the n-th Fibonacci number using memoization and explain its complexity.",
        "write a function  that returns the N-th fibonacci number using memoization and explain its complexity.",
        "Write a function that returns the n-th Fibonacci number using memoization, and explain its complexity!!",
        "Implement a trie supporting insert, search and startsWith for lowercase words.",
        "",
        "",
    ]
    dups = find_duplicates(texts, DedupSpec())
    assert dups == [None, (0, "exact"), (0, "near"), None, None, (4, "exact")]
    assert find_duplicates(texts, DedupSpec(fuzzy=False))[2] is None
    assert find_duplicates(texts, DedupSpec(exact=False))[1] == (0, "near")


def test_decontamination_against_humaneval_and_mbpp(tmp_path):
    he = load_humaneval()
    assert len(he) == 164 and he[0].entry_point == "has_close_elements"
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text(json.dumps({"task_id": 11, "text": "Write a python function to remove first and last occurrence "
                                                       "of a given character from the string.",
                                "code": "def remove_Occ(s,ch):\n    return s", "test_list": [
                                    'assert remove_Occ("hello","l") == "heo"']}) + "\n")
    d = Decontaminator(he + load_mbpp(mbpp))
    assert d.benchmarks() == {"humaneval": 164, "mbpp": 1}
    assert d.check("def has_close_elements(xs, t):\n    pass")[0] == "decontam:entry_point"
    assert d.check("print(remove_Occ('a', 'b'))") == ("decontam:entry_point", "uses remove_Occ() of mbpp:11")
    assert d.check("seen.add(x); words.sort()") is None  # methods are not the benchmark's functions
    hit = d.check("Task: Write a python function to remove first and last occurrence of a given character.")
    assert hit[0] == "decontam:ngram" and "mbpp:11" in hit[1]
    assert d.check("Write a python function to remove the first occurrence of a given letter.") is None
    assert Decontaminator([Problem("x", "1", "add", "")], ignore_names={"add"}).check("add(1, 2)") is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no tests", "code": "", "test_list": []}\n')
    with pytest.raises(Exception, match="entry point"):
        load_mbpp(bad)
