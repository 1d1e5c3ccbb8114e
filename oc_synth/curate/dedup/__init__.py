"""Exact and fuzzy dedup (``oc-synth curate dedup``); docs/dedup.md explains behaviour and measurements.

Module map, in the order a run uses them:

- ``settings``    mode, engine, presets of the MinHash/LSH parameters (validated)
- ``workflow``    the three passes, the summary table and stats.json
- ``engines``     the engine interface, the CPU engine, ``--engine auto`` resolution
- ``curator_gpu`` the GPU engine: NeMo Curator's dedup stages/workflow adapted to our ids and keep rule
- ``index``       pass 1: per-shard index files (keep-rule fields, SHA-256, LSH band keys)
- ``jaccard``     optional exact-Jaccard check of candidate pairs
- ``keep_rule``   stars / commit_time / id parsing and the survivor order
- ``decisions``   pass 2: survivors and per-shard decision files, removed-ids list
- ``removal``     pass 3: the run_sharded stage that applies decisions

Shingles, signatures, band keys and the LSH grouping are ``oc_synth.minhash`` (shared with synthesis dedup).
"""
