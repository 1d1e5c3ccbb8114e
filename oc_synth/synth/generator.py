"""The generator behind ``oc-synth generate``: seeds -> prompts -> model -> parse -> checks -> sandbox -> log; then
dedup, decontamination and the output shards (``finalize``).

Layout of OUT (see store.py for the log)::

    OUT/<shard>.jsonl                kept records: recipe fields, verdict fields, provenance (.parquet, .jsonl.gz
                                     with --output-format)
    OUT/.oc/rejected/<shard>.jsonl   every other record, with drop_reasons / drop_details and the raw model answers
    OUT/.oc/generations/, failed/    the append-only generation log, and seeds whose backend call failed
    OUT/.oc/manifest.json, stats.json  (the output contract: oc_common/outputs.py, docs/outputs.md)

Guarantees:
- resumable: a rerun generates only seeds that are not done, keyed on each seed's id and content (a seed edited
  under the same id is generated again); finalize is recomputed from the log every run, from the generations of the
  seeds in the input as it is now, so dedup and decontamination always see all samples, across shards and
  data-parallel ranks, and samples of edited or removed seeds are never served;
- deterministic: each (seed, step) has its own sampling seed derived from --seed, the recipe and the seed id, so a
  sample does not depend on batch size, order, rank or resume;
- nothing is lost: bad seeds, unparseable answers, failed checks and verdicts are records with reasons; backend
  failures are logged in .oc/failed and retried by the next run; a backend that keeps failing stops generation
  (after ``max_failed_batches`` batches in a row) but the run still finalizes and reports.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.errors import BackendError, OcError
from oc_common.log import console, get_logger
from oc_common.outcome import DROP_DETAILS, DROP_REASONS, KEEP, reject
from oc_common.outputs import OutputDir, claim_outputs
from oc_common.stats import Stats
from oc_synth.backends.base import PROMPT_TOO_LONG, Backend, Completion, GenerationRequest
from oc_synth.synth.config import COMMAND, GenerateConfig
from oc_synth.synth.recipes.parsers import ParseError
from oc_synth.synth.recipes.recipe import RenderError
from oc_synth.synth.seeds import BadSeed, Seed, plan_seed_shards, prepare_seeds, seed_index
from oc_synth.synth.store import SEED_DIGEST, GenerationStore
from oc_synth.synth.verification import Verifier, apply_verdicts

log = get_logger(__name__)


@dataclass
class RunResult:
    stats: Stats
    generated_now: int = 0
    failed_now: int = 0
    aborted: str | None = None  # why generation stopped early (a backend that kept failing)
    finalized: bool = False


class BackendDied(RuntimeError):
    pass


def derive_seed(base: int, recipe: str, seed_id: str, purpose: str) -> int:
    """A 31-bit sampling seed that depends only on the run's --seed, the recipe, the seed id and the step."""
    digest = hashlib.sha256(f"{base}\x00{recipe}\x00{seed_id}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rank_of(seed_id: str, world_size: int) -> int:
    return int.from_bytes(hashlib.sha256(seed_id.encode()).digest()[:8], "little") % world_size


class Generator:
    def __init__(self, cfg: GenerateConfig, backend_factory: Callable[[], Backend], verifier: Verifier | None):
        self.cfg, self.recipe = cfg, cfg.recipe
        self.backend_factory = backend_factory
        self.verifier = verifier
        self.backend: Backend | None = None
        self.store = GenerationStore(cfg.out, cfg.rank)
        self.failed_in_a_row = 0
        self.died: str | None = None
        self.generated_now = 0
        self.failed_now = 0
        self.verify = cfg.verify and self.recipe.spec.verify

    # ------------------------------------------------------------------------------------------------------ run
    def run(self) -> RunResult:
        cfg = self.cfg
        if cfg.rank is not None and cfg.overwrite:
            raise OcError("--overwrite with --rank would delete the other ranks' work; clear OUT once, before")
        if self.verify and self.verifier is None:
            raise OcError("this recipe's samples are executed but no verifier is available; pass --no-verify")
        shards = plan_seed_shards(cfg.seeds)
        claim_output(cfg, shards)
        current = seed_index(shards, self.recipe.spec.seeds)  # what the output is made of: the seeds as they are now
        done = self.store.done_generations()
        total = sum(s.size_hint or 0 for s in shards)
        if cfg.limit is not None:
            total = min(total, cfg.limit)
        done_now = sum((sid, digest) in done for sid, digest in current.items())
        aborted = None
        t0 = time.perf_counter()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=cfg.quiet, transient=True) as progress:
            bar = progress.add_task(f"generate {self.recipe.name}", total=total or None,
                                    completed=min(done_now, total) if cfg.world_size == 1 else 0)
            try:
                for shard_name, chunk in ([] if cfg.finalize_only else self._chunks(shards, done)):
                    self._process_chunk(shard_name, chunk)
                    progress.advance(bar, len(chunk))
            except BackendDied as e:
                aborted = str(e)
                log.error("%s; stopping generation (rerun to resume)", e)
            finally:
                if self.backend is not None:
                    self.backend.close()
                close = getattr(self.verifier, "close", None)
                if callable(close):
                    close()
        log.info("generation: %d records logged, %d seeds failed in the backend, %.1f s", self.generated_now,
                 self.failed_now, time.perf_counter() - t0)
        result = RunResult(Stats(), self.generated_now, self.failed_now, aborted)
        if cfg.rank is None:
            from oc_synth.synth.finalize import finalize

            result.stats = finalize(cfg, self.store, current)
            result.finalized = True
        return result

    def _chunks(self, shards: list, done: set[tuple[str, str | None]]) -> Iterator[tuple[str, list[Seed | BadSeed]]]:
        cfg = self.cfg
        seen: set[str] = set()
        considered = 0
        for shard in shards:
            chunk: list[Seed | BadSeed] = []
            for item in prepare_seeds(shard, self.recipe.spec.seeds, seen):
                if cfg.limit is not None and considered >= cfg.limit:
                    break
                considered += 1
                if (item.id, item.digest) in done or (cfg.world_size > 1
                                                      and rank_of(item.id, cfg.world_size) != cfg.rank):
                    continue
                chunk.append(item)
                if len(chunk) >= cfg.batch_size:
                    yield shard.name, chunk
                    chunk = []
            if chunk:
                yield shard.name, chunk
            if cfg.limit is not None and considered >= cfg.limit:
                return

    # ------------------------------------------------------------------------------------------------ one chunk
    def _process_chunk(self, shard: str, items: list[Seed | BadSeed]) -> None:
        records: list[dict[str, Any]] = [bad_seed_record(b) for b in items if isinstance(b, BadSeed)]
        failures: list[dict[str, Any]] = []
        seeds = [s for s in items if isinstance(s, Seed)]
        ctx = {s.id: self._context(s) for s in seeds}
        prov = {s.id: self._provenance(s) for s in seeds}
        raw: dict[str, dict[str, str]] = {s.id: {} for s in seeds}
        last = len(self.recipe.steps) - 1
        alive = seeds
        for k, step in enumerate(self.recipe.steps):
            requests: list[tuple[Seed, GenerationRequest]] = []
            for s in alive:
                try:
                    messages, prompt = self.recipe.messages(k, ctx[s.id])
                except RenderError as e:
                    records.append(seed_reject(s, "seed:render_error", str(e), raw[s.id], prov[s.id]))
                    continue
                sp = self.recipe.sampling(k, self.cfg.sampling, self.cfg.n).replace(
                    seed=derive_seed(self.cfg.seed, self.recipe.name, s.id, step.name))
                requests.append((s, GenerationRequest(s.id, messages=messages, prompt=prompt, sampling=sp)))
            completions = self._call_backend([r for _, r in requests])
            alive = []
            for (s, req), c in zip(requests, completions, strict=True):
                if c.prompt_too_long:  # asking again cannot help: the seed is done, with its reason
                    records.append(seed_reject(s, PROMPT_TOO_LONG, f"step {step.name}: {c.error}", raw[s.id],
                                               prov[s.id]))
                    continue
                if not c.ok:
                    failures.append({"seed_id": s.id, SEED_DIGEST: s.digest, "step": step.name, "error": c.error,
                                     "where": s.where})
                    continue
                prov[s.id]["steps"][step.name] = {
                    "seed": req.sampling.seed, "finish_reasons": c.finish_reasons, "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens}
                if k < last:
                    raw[s.id][step.name] = c.texts[0]
                    try:
                        ctx[s.id][step.name] = self.recipe.parse(k, c.texts[0])
                    except ParseError as e:
                        records.append(seed_reject(s, f"parse:{e.reason}", f"step {step.name}: {e.detail}",
                                                   raw[s.id], prov[s.id]))
                        continue
                    judged_out = self.recipe.judge(k, ctx[s.id][step.name])
                    if judged_out:
                        records.append(seed_reject(s, f"judge:{step.name}", judged_out, raw[s.id], prov[s.id]))
                    else:
                        alive.append(s)
                else:
                    prov[s.id]["sampling"] = req.sampling.to_dict()
                    for j, text in enumerate(c.texts):
                        records.append(self._sample_record(s, j, len(c.texts), text, ctx[s.id], raw[s.id], prov[s.id],
                                                           c.finish_reasons[j] if j < len(c.finish_reasons) else None))
        if self.verify:
            self._verify([r for r in records if r[KEEP] and r.get("sample") is not None])
        self.store.append(shard, records)
        self.store.append_failures(shard, failures)
        self.generated_now += len(records)
        self.failed_now += len(failures)
        if self.died:
            raise BackendDied(self.died)

    def _context(self, s: Seed) -> dict[str, Any]:
        rng = random.Random(derive_seed(self.cfg.seed, self.recipe.name, s.id, "variables"))
        s.variables = self.recipe.sample_variables(s.record, rng)
        return {"seed": s.record, "seed_id": s.id, **s.variables}

    def _provenance(self, s: Seed) -> dict[str, Any]:
        return {"recipe": self.recipe.name, "recipe_sha": self.recipe.sha, "model": self.cfg.model,
                "backend": self.cfg.backend, "seed_id": s.id, "seed_source": s.where, "seed_line": s.line,
                "run_seed": self.cfg.seed, "variables": dict(s.variables), "steps": {}}

    def _sample_record(self, s: Seed, j: int, n: int, text: str, ctx: dict[str, Any], raw: dict[str, str],
                       prov: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        step = self.recipe.steps[-1]
        rec: dict[str, Any] = {"id": f"{s.id}-s{j}", "seed_id": s.id, SEED_DIGEST: s.digest, "sample": j,
                               "samples": n, "recipe": self.recipe.name, KEEP: True, DROP_REASONS: [],
                               DROP_DETAILS: []}
        rec["raw"] = {**raw, step.name: text}
        rec["provenance"] = {**prov, "finish_reason": finish_reason}
        try:
            parsed = self.recipe.parse(len(self.recipe.steps) - 1, text)
            judged_out = self.recipe.judge(len(self.recipe.steps) - 1, parsed)
            if judged_out:
                reject(rec, f"judge:{step.name}", judged_out)
                return rec
            rec.update(self.recipe.output({**ctx, step.name: parsed}))
        except ParseError as e:
            reject(rec, f"parse:{e.reason}", f"step {step.name}: {e.detail}")
            if finish_reason == "length":
                rec[DROP_DETAILS][-1] += " (the answer hit max_tokens)"
            return rec
        except RenderError as e:
            reject(rec, "render:output", str(e))
            return rec
        failed = self.recipe.check(rec)
        if failed is not None:
            reject(rec, f"check:{failed[0]}", failed[1])
        return rec

    def _call_backend(self, requests: list[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        if self.died:
            return [Completion.failed(r.id, self.died) for r in requests]
        if self.backend is None:
            self.backend = self.backend_factory()
        try:
            completions = self.backend.generate(requests)
        except BackendError:
            raise  # a configuration problem (no chat template, no structured output): fix and rerun
        except Exception as e:  # noqa: BLE001 - an engine crash or a dead server costs this batch, not the run
            log.warning("backend failed on a batch of %d requests: %s: %s", len(requests), type(e).__name__, e)
            completions = [Completion.failed(r.id, f"backend failure: {type(e).__name__}: {e}") for r in requests]
        if all(not c.ok and not c.prompt_too_long for c in completions):  # a too-long prompt got an answer
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= self.cfg.max_failed_batches:  # the chunk is logged, then generation stops
                self.died = (f"the backend failed {self.failed_in_a_row} batches in a row "
                             f"(last error: {completions[0].error})")
        else:
            self.failed_in_a_row = 0
        return completions

    def _verify(self, records: list[dict[str, Any]]) -> None:
        assert self.verifier is not None
        apply_verdicts(records, self.verifier, workers=self.cfg.verify_workers, timeout=self.cfg.verify_timeout)
        for r in records:
            if r["verdict"] != "passed":
                tail = (r.get("verdict_detail") or r.get("stderr_tail") or "").strip()
                reject(r, f"verify:{r['verdict']}", tail[-300:])


def claim_output(cfg: GenerateConfig, shards: list | None = None) -> None:
    """The output contract (oc_common/outputs.py) for OUT: separate from the seeds, resumed only with the same
    options, and ``--overwrite`` removes only what an earlier run wrote there."""
    shards = plan_seed_shards(cfg.seeds) if shards is None else shards
    given = {"--seeds": cfg.seeds, "--mbpp": cfg.mbpp}
    local = {label: Path(str(p)) for label, p in given.items() if p and not str(p).startswith("hf:")}
    claim_outputs(COMMAND, cfg.fingerprint_options(), overwrite=cfg.overwrite,
                  inputs={label: p for label, p in local.items() if p.exists()},
                  dirs=[OutputDir(Path(cfg.out), "--out", [f"{s.name}.{cfg.output_format}" for s in shards])],
                  concurrent=cfg.rank is not None)  # the other ranks write there at the same time


def seed_reject(s: Seed, reason: str, detail: str, raw: dict[str, str], prov: dict[str, Any]) -> dict[str, Any]:
    """One record for a seed that produced no samples (a prompt that did not render, an earlier step's answer that
    did not parse): the seed is done, and the reason and the answers so far are kept."""
    return {"id": s.id, "seed_id": s.id, SEED_DIGEST: s.digest, "sample": None, "samples": 0, KEEP: False,
            DROP_REASONS: [reason], DROP_DETAILS: [detail], "raw": dict(raw), "provenance": prov}


def bad_seed_record(b: BadSeed) -> dict[str, Any]:
    return {"id": b.id, "seed_id": b.id, SEED_DIGEST: b.digest, "sample": None, "samples": 0, KEEP: False,
            DROP_REASONS: [b.reason], DROP_DETAILS: [f"{b.where}: {b.detail}"], "seed": b.record}
