"""Backends: transformers on a tiny random Llama, and the OpenAI client against a scripted server on 127.0.0.1."""

import time

import pytest

from oc_common.errors import BackendError
from oc_synth.backends import GenerationRequest, SamplingParams, make_backend


def chat(rid, content="hello", **sampling):
    return GenerationRequest(rid, messages=[{"role": "user", "content": content}], sampling=SamplingParams(**sampling))


def test_sampling_params_validate():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="n must"):
        SamplingParams(n=0)
    assert SamplingParams(stop="###").stop == ("###",)
    with pytest.raises(ValueError, match="exactly one"):
        GenerationRequest("x")


def test_make_backend_rejects_unknown_options():
    with pytest.raises(BackendError, match="unknown option.*colour.*known: .*concurrency"):
        make_backend("openai", "m", colour="red")
    with pytest.raises(BackendError, match="unknown backend"):
        make_backend("tgi", "m")


def test_hf_backend_seeds_samples_stops_and_modes(tiny_model):
    with make_backend("hf", tiny_model) as b:
        reqs = [chat("a", max_tokens=12, temperature=1.0, seed=7, n=3), chat("b", max_tokens=6),
                GenerationRequest("c", prompt="def add", sampling=SamplingParams(max_tokens=8))]
        a, g, c = b.generate(reqs)
        assert (a.request_id, len(a.texts)) == ("a", 3) and 3 <= a.completion_tokens <= 36
        assert len(set(a.texts)) > 1  # three different samples
        assert set(a.finish_reasons) <= {"length", "stop"} and g.prompt_tokens > c.prompt_tokens
        # same seed, same samples, whatever else is in the batch
        (again,) = b.generate([reqs[0]])
        assert again.texts == a.texts
        (other,) = b.generate([chat("a", max_tokens=12, temperature=1.0, seed=8, n=3)])
        assert other.texts != a.texts
        # greedy n>1 repeats the one greedy answer
        (gn,) = b.generate([chat("g", max_tokens=6, n=2)])
        assert gn.texts == [g.texts[0]] * 2
        # a stop string cuts the sample before it
        text = c.texts[0]
        cut = next((text[:i] for i in range(1, len(text)) if text[i] != text[0] and text[i].strip()), None)
        if cut:
            stop = text[len(cut)]
            (s,) = b.generate([GenerationRequest("s", prompt="def add", sampling=SamplingParams(max_tokens=8,
                                                                                               stop=(stop,)))])
            assert s.texts[0] == text[: text.index(stop)] and s.finish_reasons == ["stop"]
        with pytest.raises(BackendError, match="structured output"):
            b.generate([chat("j", json_schema={"type": "object"})])


def test_hf_backend_errors_are_clear(tmp_path, tiny_model):
    with pytest.raises(BackendError, match="not a local path"):
        make_backend("hf", "no-such-org/no-such-model", local_files_only=True)
    with pytest.raises(BackendError, match="GGUF file not found"):
        make_backend("hf", str(tmp_path / "x.gguf"))
    with make_backend("hf", tiny_model) as b:
        b.tokenizer.chat_template = None
        with pytest.raises(BackendError, match="no chat template"):
            b.generate([chat("a")])


def openai_backend(server, **kw):
    return make_backend("openai", "served-model", base_url=server.base_url, api_key="test", backoff=0.01, **kw)


def test_openai_chat_and_completion_with_bounded_concurrency(fake_openai):
    b = openai_backend(fake_openai, concurrency=3)
    reqs = [chat(f"r{i}", content=f"q{i}", n=2, seed=i, stop=("END",), max_tokens=5) for i in range(9)]
    reqs.append(GenerationRequest("p", prompt="def f", sampling=SamplingParams(max_tokens=4)))
    out = b.generate(reqs)
    assert [c.request_id for c in out] == [r.id for r in reqs]
    assert out[4].texts == ["echo[0]: q4", "echo[1]: q4"] and out[4].completion_tokens == 5
    assert out[-1].texts == ["echo[0]: def f"] and out[-1].finish_reasons == ["length"]
    assert fake_openai.in_flight_max <= 3 and fake_openai.in_flight_max >= 2
    body = next(r for r in fake_openai.requests if r.get("messages", [{}])[-1].get("content") == "q4")
    assert (body["model"], body["n"], body["seed"], body["stop"], body["max_tokens"]) == (
        "served-model", 2, 4, ["END"], 5)
    b.generate([chat("j", json_schema={"type": "object"})])
    assert fake_openai.requests[-1]["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_openai_retries_transient_errors_then_succeeds(fake_openai):
    fake_openai.script = [("status", 500), ("status", 429), ("status", 503)]
    b = openai_backend(fake_openai, max_retries=3)
    (c,) = b.generate([chat("a", content="hi")])
    assert c.ok and c.texts == ["echo[0]: hi"] and b.attempts == 4 and b.retries == 3


def test_openai_gives_up_after_retries_and_never_retries_a_bad_request(fake_openai):
    fake_openai.script = [("status", 500)] * 3 + [("status", 400)]
    b = openai_backend(fake_openai, max_retries=2)
    (first,) = b.generate([chat("a")])
    (second,) = b.generate([chat("b")])
    assert not first.ok and "HTTP 500" in first.error and "after 3 attempts" in first.error
    assert not second.ok and "HTTP 400" in second.error and "after 1 attempt" in second.error
    assert b.attempts == 4


def test_openai_timeout_and_dead_server_fail_requests_not_the_batch(fake_openai):
    fake_openai.by_prompt = {"slow": ("sleep", 1.0)}
    b = openai_backend(fake_openai, timeout=0.3, max_retries=0)
    slow, fine = b.generate([chat("slow", content="slow"), chat("fine")])
    assert not slow.ok and "Timeout" in slow.error and fine.ok
    fake_openai.stop()
    t0 = time.perf_counter()
    (dead,) = openai_backend(fake_openai, max_retries=1).generate([chat("x")])
    assert not dead.ok and "APIConnectionError" in dead.error and time.perf_counter() - t0 < 10
    fake_openai.stop = lambda: None  # already stopped


def test_describe_names_engine_and_model(fake_openai):
    assert openai_backend(fake_openai).describe() == {"backend": "openai", "model": "served-model",
                                                      "base_url": fake_openai.base_url}
