"""Backends: transformers on a tiny random Llama, and the OpenAI client against a scripted server on 127.0.0.1."""

import logging
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
    reqs = [chat(f"r{i}", content=f"q{i}", n=2, seed=i, stop=("END",), max_tokens=5, temperature=0.7)
            for i in range(9)]
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


# ---- server errors, stop strings, greedy n, prompts that do not fit --------------------------------------------------
# What vLLM 0.32's server answered (measured): 12 stop strings (OpenAI's API and vLLM take 4), and a prompt longer
# than max_model_len.
VLLM_STOP_VALIDATION = (
    "2 validation errors:\n"
    "  {'type': 'string_type', 'loc': 'body.stop', 'msg': 'Input should be a valid string', "
    "'input': '<list of 12 items>'}\n"
    "  {'type': 'too_long', 'loc': 'body.stop', 'msg': 'List should have at most 4 items after validation, not 12', "
    "'input': '<list of 12 items>', 'ctx': {'field_type': 'List', 'max_length': 4, 'actual_length': 12}}")
VLLM_TOO_LONG = ("This model's maximum context length is 256 tokens. However, your prompt contains at least 257 input "
                 "tokens, which exceeds this limit even without any output tokens. Please reduce the length of the "
                 "input prompt. (parameter=input_tokens, value=257)")


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def openai_log():
    handler = Captured()
    logger = logging.getLogger("oc.oc_synth.backends.openai")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_openai_error_keeps_every_line_of_the_servers_explanation(fake_openai, openai_log):
    fake_openai.script = [("error", (400, VLLM_STOP_VALIDATION)), ("error", (400, VLLM_STOP_VALIDATION)),
                          ("error", (400, "x" * 5000))]
    b = openai_backend(fake_openai)
    first, second = b.generate([chat("a"), chat("b")])
    assert first.error == "HTTP 400 (after 1 attempt): " + VLLM_STOP_VALIDATION and not first.prompt_too_long
    assert second.error == first.error
    # the log: the whole message once per distinct error, with how many requests had it
    assert openai_log == [f"request a failed (and 1 more request(s) of this batch): {first.error}"]
    (huge,) = b.generate([chat("c")])
    assert 1500 < len(huge.error) < 1600 and huge.error.endswith(" [... 3500 more characters]")


def test_openai_recognises_a_servers_too_long_refusal(fake_openai):
    fake_openai.by_prompt = {  # by prompt: the two requests are in flight at once, in either order
        "long prompt": ("error", (400, VLLM_TOO_LONG)),
        "many tokens": ("error", (400, "max_tokens=300 cannot be greater than max_model_len=256. Please request "
                                       "fewer output tokens. (parameter=max_tokens, value=300)"))}
    b = openai_backend(fake_openai, max_retries=3)
    too_long, too_many = b.generate([chat("a", "long prompt"), chat("b", "many tokens")])
    assert too_long.prompt_too_long and too_long.error_kind == "prompt_too_long"
    assert too_long.error == f"the server refused the prompt: HTTP 400 (after 1 attempt): {VLLM_TOO_LONG}"
    assert not too_many.prompt_too_long and "max_tokens=300" in too_many.error  # a setting, not the prompt
    assert b.attempts == 2  # neither is retried


def test_openai_sends_at_most_max_stop_strings_and_applies_all_of_them(fake_openai):
    fake_openai.respond = lambda prompt: "alpha S5 beta S1 gamma"
    stops = ("S1", "S2", "S3", "S4", "S5", "S6")
    b = openai_backend(fake_openai)
    (c,) = b.generate([GenerationRequest("p", prompt="def", sampling=SamplingParams(max_tokens=8, stop=stops))])
    assert fake_openai.requests[-1]["stop"] == ["S1", "S2", "S3", "S4"]
    assert c.texts == ["alpha "] and c.finish_reasons == ["stop"]  # cut at S5, which the server was not given
    (kept,) = openai_backend(fake_openai, max_stop=6).generate(
        [GenerationRequest("q", prompt="def", sampling=SamplingParams(max_tokens=8, stop=stops))])
    assert fake_openai.requests[-1]["stop"] == list(stops) and kept.finish_reasons == ["length"]


def test_openai_greedy_n_asks_once_and_copies(fake_openai):
    b = openai_backend(fake_openai)
    (g,) = b.generate([GenerationRequest("g", prompt="p", sampling=SamplingParams(n=3, max_tokens=4))])
    assert fake_openai.requests[-1]["n"] == 1 and g.texts == ["echo[0]: p"] * 3 and len(g.finish_reasons) == 3
    (s,) = b.generate([GenerationRequest("s", prompt="p", sampling=SamplingParams(n=3, max_tokens=4,
                                                                                  temperature=0.8))])
    assert fake_openai.requests[-1]["n"] == 3 and s.texts == [f"echo[{i}]: p" for i in range(3)]


def test_openai_counts_prompt_tokens_before_sending_with_a_local_tokenizer(fake_openai, tiny_model):
    from transformers import AutoTokenizer

    from oc_synth.backends.context import count_prompt_tokens

    long = GenerationRequest("long", prompt="def add(a, b):\n    return a + b\n" * 4,
                             sampling=SamplingParams(max_tokens=4))
    short = GenerationRequest("short", prompt="def", sampling=SamplingParams(max_tokens=4))
    n_long = count_prompt_tokens(AutoTokenizer.from_pretrained(tiny_model), long)
    assert n_long > 16
    fake_openai.models = [{"id": "other", "object": "model", "max_model_len": 1},
                          {"id": tiny_model, "object": "model", "max_model_len": 16}]
    b = make_backend("openai", tiny_model, base_url=fake_openai.base_url, api_key="test")
    lc, sc = b.generate([long, short])
    assert lc.prompt_too_long and sc.ok
    assert lc.error.startswith(f"the prompt is {n_long} tokens and the model's context is 16 (max_model_len of the "
                               f"model served at {fake_openai.base_url})")
    assert [r["prompt"] for r in fake_openai.requests] == ["def"]  # the long prompt was never sent
    # a served name that is no local directory: tokenizer= gives the tokenizer; a server that does not say its
    # context leaves the check to the server
    fake_openai.models = [{"id": "served", "object": "model"}]
    b = make_backend("openai", "served", base_url=fake_openai.base_url, api_key="test", tokenizer=tiny_model)
    lc, sc = b.generate([long, short])
    assert lc.ok and sc.ok and len(fake_openai.requests) == 3
    with pytest.raises(BackendError, match="tokenizer '/no/such/dir' does not load"):
        make_backend("openai", "served", base_url=fake_openai.base_url, tokenizer="/no/such/dir")


def test_hf_prompt_too_long_and_answers_end_at_the_context(tmp_path):
    from oc_synth.backends.tiny import build_tiny_llama

    model = str(build_tiny_llama(tmp_path / "m", context=32))

    def prompt(rid, tokens, max_tokens):  # "~" is one token each: the tokenizer never merged it
        return GenerationRequest(rid, prompt="~" * tokens, sampling=SamplingParams(max_tokens=max_tokens))

    with make_backend("hf", model) as b:
        assert len(b.tokenizer("~" * 31)["input_ids"]) == 31
        fits, last, exact, long = b.generate([prompt("fits", 24, 20), prompt("last", 31, 5), prompt("exact", 32, 1),
                                              prompt("long", 40, 1)])
    assert fits.ok and fits.prompt_tokens == 24 and fits.completion_tokens <= 8
    assert fits.completion_tokens < 8 or fits.finish_reasons == ["length"]  # ended at the context, not at eos
    assert last.ok and last.completion_tokens == 1  # one free position: one token, whatever max_tokens says
    for c, n in ((exact, 32), (long, 40)):
        assert c.prompt_too_long and c.error.startswith(
            f"the prompt is {n} tokens and the model's context is 32 (max_position_embeddings in its config.json)")
