"""Run inside the vLLM environment (tests/vllm_server.py run_in_vllm_env): our vllm backend on MODEL, printing what
the test checks as one ``RESULT {json}`` line. Needs only ``oc_synth.backends`` from this repository.

    python vllm_offline_driver.py MODEL_DIR
"""

import json
import sys


def main() -> None:
    from oc_synth.backends import GenerationRequest, SamplingParams, make_backend
    from oc_synth.backends.context import count_prompt_tokens

    model = sys.argv[1]
    chat = [{"role": "user", "content": "Write a function that adds two numbers."}]
    greedy = SamplingParams(max_tokens=8)
    requests = [
        GenerationRequest("completion", prompt="def add(a, b):", sampling=greedy),
        GenerationRequest("chat", messages=chat, sampling=greedy),
        GenerationRequest("greedy_n3", prompt="def add(a, b):", sampling=greedy.replace(n=3)),
        GenerationRequest("sampled", prompt="def add(a, b):",
                          sampling=SamplingParams(n=2, temperature=1.0, seed=5, max_tokens=8)),
        # "~" is one token each in the tiny tokenizer: far past the 256-token context, in the same batch
        GenerationRequest("too_long", prompt="~" * 400, sampling=greedy),
        GenerationRequest("structured", prompt="{", sampling=SamplingParams(max_tokens=24, json_schema={
            "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})),
    ]
    with make_backend("vllm", model, dtype="float32", enforce_eager=True) as backend:
        out = {c.request_id: c for c in backend.generate(requests)}
        counted = {r.id: count_prompt_tokens(backend.tokenizer, r) for r in requests}
        context = backend.context
    print("RESULT " + json.dumps({
        "context": context,
        "completions": {rid: {"texts": c.texts, "finish_reasons": c.finish_reasons, "error": c.error,
                              "error_kind": c.error_kind, "prompt_tokens": c.prompt_tokens} for rid, c in out.items()},
        "counted": counted}))


if __name__ == "__main__":
    main()
