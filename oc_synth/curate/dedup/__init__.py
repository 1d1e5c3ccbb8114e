"""Exact and fuzzy dedup (``oc-synth curate dedup``); docs/dedup.md explains behaviour and measurements.

Module map, in the order a run uses them:

- ``settings``    mode, engine, MinHash/LSH parameters and presets (validated)
- ``workflow``    the three passes, the summary table and stats.json
- ``engines``     the engine interface, the CPU engine, ``--engine auto`` resolution
- ``curator_gpu`` the GPU engine: NeMo Curator's dedup stages/workflow adapted to our ids and keep rule
- ``index``       pass 1: per-shard index files (keep-rule fields, SHA-256, LSH band keys)
- ``shingles`` / ``minhash``  word or char shingles -> rensa signatures -> band keys
- ``clusters``    equal keys -> groups, LSH buckets -> edges -> connected components
- ``jaccard``     optional exact-Jaccard check of candidate pairs
- ``keep_rule``   stars / commit_time / id parsing and the survivor order
- ``decisions``   pass 2: survivors and per-shard decision files, removed-ids list
- ``removal``     pass 3: the run_sharded stage that applies decisions
"""
