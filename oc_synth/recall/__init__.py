"""Code-related web recall (OpenCoder §2): a fastText classifier on BPE tokens, three rounds of scoring, domain
discovery and URL-pattern seeds.

Modules, in the order of a round: ``config`` (settings and their provenance), ``pages`` (usable pages, domains),
``tokenize`` (BPE pre-tokenization), ``training`` (seeds, sampled negatives, held-out split), ``classifier``
(fastText training, loading, NeMo Curator filter), ``fasttext_file`` (model file check), ``scoring`` (the NeMo
Curator pipeline), ``domains``, ``urls`` (patterns, new seeds), ``loop`` (rounds, resume, reports). See
docs/recall.md.
"""
