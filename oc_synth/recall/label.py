"""Seed labelling with an LLM (``oc-synth recall label``): ask a model whether each web page is code-related.

OpenCoder grew its ~500k seed pages this way (after DeepSeekMath's Autonomous Data Selection); a few dozen seeds are
too few for a classifier to learn from (the quality gate says so), and labelling a sample of the corpus is how to
get more. Pages labelled ``code`` are seeds for ``recall run --seeds``; pages labelled ``other`` are clean negatives
for ``--negatives`` (negatives sampled from the corpus contain code).

The prompt is a YAML recipe (``label.yaml`` next to this file is the default; ``--recipe`` brings another): a Jinja
system and user prompt over the page (``text``, cut to ``max_chars``; ``url``; ``domain``), sampling settings, and
``answers``: label -> words meaning it; the first such word in the answer decides, an answer without one is
``unparsed`` (kept, with the answer, never a seed), and a prompt longer than the model's context is
``prompt_too_long`` (kept: lower ``max_chars``). Any backend of ``oc_synth.backends`` runs it (vllm, openai, hf).

Layout of OUT::

    OUT/labels.jsonl     every labelled page: url, text, label, answer (appended per batch: a killed run loses at
                         most the batch in flight, and a rerun labels only the pages not in it)
    OUT/code.jsonl       the pages labelled code (rewritten at the end of every run)
    OUT/other.jsonl      the pages labelled other
    OUT/.oc/             manifest (recipe, backend, model, options: a rerun with others is refused) and stats.json

Pages whose backend call failed are not logged, so the next run retries them.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from pydantic import Field, field_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.config import StrictModel, load_config
from oc_common.errors import BackendError, ConfigError
from oc_common.fileio import atomic_write_json
from oc_common.log import console, get_logger
from oc_common.outputs import OutputDir, claim_outputs, stats_path
from oc_common.records import RecordError, iter_file_records, list_record_files, write_records
from oc_common.stats import Stats
from oc_synth.backends import Backend, GenerationRequest, SamplingParams
from oc_synth.recall.pages import page_problem, stable_key, url_domain
from oc_synth.synth.recipes.recipe import SamplingSpec
from oc_synth.synth.store import append_records, iter_log, repair_tail

log = get_logger(__name__)

DEFAULT_RECIPE = Path(__file__).with_name("label.yaml")
LABELS_LOG = "labels.jsonl"
UNPARSED = "unparsed"
TOO_LONG = "prompt_too_long"  # the page's prompt does not fit the model's context (lower max_chars)
LABEL_FIELD = "label"
SAMPLE_SALT = 3  # stable_key salt of the --sample draw (independent of training's negative sample and split)
MAX_FAILED_BATCHES = 3  # whole batches failing in a row: the backend is down, stop (a rerun resumes)
SECRET_OPTIONS = ("api_key",)  # backend options never written to the manifest


class LabelRecipe(StrictModel):
    name: str
    description: str = ""
    max_chars: int = Field(3000, ge=100, description="characters of the page shown to the model")
    system: str | None = None
    prompt: str
    answers: dict[str, list[str]] = Field(min_length=2, description="label -> words that mean it, e.g. code: [yes]")
    sampling: SamplingSpec = SamplingSpec(temperature=0.0, max_tokens=4)

    @field_validator("answers", mode="before")
    @classmethod
    def _quoted(cls, v: Any) -> Any:
        if isinstance(v, dict) and any(isinstance(w, bool) for ws in v.values() if isinstance(ws, list) for w in ws):
            raise ValueError('write the words in quotes (code: ["yes"]): YAML reads a bare yes or no as true/false')
        return v

    @field_validator("answers")
    @classmethod
    def _answers(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if "code" not in v:
            raise ValueError("needs a `code` label (the seeds)")
        if UNPARSED in v:
            raise ValueError(f"`{UNPARSED}` is reserved for answers without any of the words")
        if TOO_LONG in v:
            raise ValueError(f"`{TOO_LONG}` is reserved for prompts longer than the model's context")
        seen: dict[str, str] = {}
        for label, words in v.items():
            if not words or any(not isinstance(w, str) or not w.strip() for w in words):
                raise ValueError(f"{label}: give one or more non-empty words")
            for w in words:
                if w.strip().lower() in seen:
                    raise ValueError(f"{w!r} means both {seen[w.strip().lower()]} and {label}")
                seen[w.strip().lower()] = label
        return v


@dataclass
class Labeller:
    """A loaded recipe: renders a page's messages and reads the model's answer."""

    recipe: LabelRecipe
    source: Path
    sha: str
    _templates: dict[str, jinja2.Template] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        for key in ("system", "prompt"):
            text = getattr(self.recipe, key)
            if text is None:
                continue
            try:
                self._templates[key] = env.from_string(text)
            except jinja2.TemplateSyntaxError as e:
                raise ConfigError(f"{self.source}: {key}: template line {e.lineno}: {e.message}") from None
        words = {w.strip().lower(): label for label, ws in self.recipe.answers.items() for w in ws}
        self._words = words
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                                   + r")\b", re.IGNORECASE)
        self.check_templates()

    def check_templates(self) -> None:
        """Render once with a made-up page, so an undefined name fails before any model is loaded."""
        self.messages({"url": "https://example.org/a", "text": "print('hello')"})

    def messages(self, page: dict[str, Any]) -> list[dict[str, str]]:
        url = page.get("url") if isinstance(page.get("url"), str) else ""
        context = {"text": page["text"][: self.recipe.max_chars], "url": url,
                   "domain": (url_domain(url) or "") if url else ""}
        out = []
        for key, role in (("system", "system"), ("prompt", "user")):
            if key in self._templates:
                try:
                    out.append({"role": role, "content": self._templates[key].render(**context)})
                except jinja2.TemplateError as e:
                    raise ConfigError(f"{self.source}: {key}: {getattr(e, 'message', None) or e}") from None
        return out

    def sampling(self, seed: int) -> SamplingParams:
        values = {"temperature": 0.0, "max_tokens": 4, **self.recipe.sampling.values(), "n": 1, "seed": seed}
        if "stop" in values:
            values["stop"] = tuple(values["stop"])
        return SamplingParams(**values)

    def parse(self, answer: str) -> str:
        m = self._pattern.search(answer)
        return self._words[m.group(1).lower()] if m else UNPARSED


def load_labeller(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Labeller:
    path = Path(path) if path else DEFAULT_RECIPE
    if not path.is_file():
        raise ConfigError(f"{path}: label recipe not found")
    recipe = load_config(path, list(overrides), LabelRecipe)
    sha = hashlib.sha256(path.read_bytes() + repr(sorted(overrides)).encode()).hexdigest()[:16]
    return Labeller(recipe, path, sha)


def page_key(rec: dict[str, Any]) -> str:
    url = rec.get("url")
    return url.strip() if isinstance(url, str) and url.strip() else rec["text"]


def iter_candidates(inp: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    """Usable pages (non-empty UTF-8 text; a URL is optional), each key once; the rest counted."""
    seen: set[int] = set()
    for f in list_record_files(inp):
        for _, rec in iter_file_records(f):
            if isinstance(rec, RecordError):
                stats.add_to("skipped", "bad_record")
                continue
            problem = page_problem(rec, url_field=None)
            if problem:
                stats.add_to("skipped", problem)
                continue
            h = stable_key(page_key(rec))
            if h in seen:
                stats.add_to("skipped", "duplicate")
                continue
            seen.add(h)
            yield rec


def select_candidates(inp: Path, sample: int | None, seed: int, stats: Stats) -> list[dict[str, Any]]:
    """Every usable page, or a uniform sample of ``sample`` of them (bottom-k by a salted hash of the key: the same
    pages whatever the shard order), in a fixed order."""
    pages = iter_candidates(inp, stats)
    if sample is None:
        return list(pages)
    heap: list[tuple[int, int, dict[str, Any]]] = []
    for i, rec in enumerate(pages):
        rank = stable_key(page_key(rec), SAMPLE_SALT + seed)
        if len(heap) < sample:
            heapq.heappush(heap, (-rank, i, rec))
        elif -heap[0][0] > rank:
            heapq.heapreplace(heap, (-rank, i, rec))
    return [rec for _, _, rec in sorted(heap, reverse=True)]


def done_keys(log_path: Path) -> set[int]:
    repair_tail(log_path)  # a run killed mid-append leaves a partial last line
    return {stable_key(rec["key"]) for _, rec in iter_log(log_path)} if log_path.exists() else set()


def label_pages(inp: Path, out: Path, backend_name: str, model: str, backend_options: dict[str, Any], *,
                recipe: str | Path | None = None, recipe_overrides: list[str] | tuple[str, ...] = (),
                sample: int | None = None, seed: int = 0, batch_size: int = 32, overwrite: bool = False,
                quiet: bool = False, backend: Backend | None = None, executor: str = "local",
                workers: int = 1) -> Stats:
    """Label the candidate pages of ``inp`` into ``out`` (resuming); return the stats. ``backend`` (tests) is used
    instead of building one from ``backend_name``. ``executor="ray"``: ``workers`` copies of the backend on Ray
    workers share each batch (``RayBackendPool``; the labels are those of one backend)."""
    from oc_common.errors import UsageError

    if executor != "ray" and workers > 1:
        raise UsageError("recall label --workers > 1 runs copies of the backend on Ray workers: add --executor ray")
    from oc_synth.backends import make_backend

    labeller = load_labeller(recipe, recipe_overrides)  # a bad recipe fails before the inputs are read
    list_record_files(inp)
    options = {"recipe": str(labeller.source), "recipe_sha": labeller.sha, "backend": backend_name, "model": model,
               "backend_options": {k: v for k, v in backend_options.items() if k not in SECRET_OPTIONS},
               "sample": sample, "seed": seed}
    claim_outputs("recall label", options, inputs={"IN": inp},
                  dirs=[OutputDir(out, "OUT", [LABELS_LOG, *(f"{lab}.jsonl" for lab in labeller.recipe.answers)])],
                  overwrite=overwrite)
    stats = Stats()
    log_path = out / LABELS_LOG
    done = done_keys(log_path)
    todo = [rec for rec in select_candidates(inp, sample, seed, stats) if stable_key(page_key(rec)) not in done]
    stats.add("done_earlier", len(done))
    t0 = time.perf_counter()
    if todo:
        owned = backend is None
        if backend is None and executor == "ray":
            from oc_synth.backends.ray_pool import RayBackendPool

            backend = RayBackendPool(backend_name, model, backend_options, workers)
        backend = backend or make_backend(backend_name, model, **backend_options)
        try:
            label_batches(todo, labeller, backend, log_path, batch_size, stats, quiet)
        finally:
            if owned:
                backend.close()
    counts = write_label_files(out, log_path, labeller)
    stats.counters.update({f"labelled_{k}": v for k, v in counts.items()})
    stats.add("seconds", round(time.perf_counter() - t0, 3))
    atomic_write_json(stats_path(out), {"command": "recall label", **stats.to_dict()})
    return stats


def label_batches(todo: list[dict[str, Any]], labeller: Labeller, backend: Backend, log_path: Path, batch_size: int,
                  stats: Stats, quiet: bool) -> None:
    failed_in_a_row = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet, transient=True) as progress:
        bar = progress.add_task("recall label: pages", total=len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            requests = [GenerationRequest(str(i), messages=labeller.messages(rec),
                                          sampling=labeller.sampling(stable_key(page_key(rec)) % 2**31))
                        for i, rec in enumerate(batch)]
            try:
                completions = backend.generate(requests)
            except Exception as e:  # noqa: BLE001 - the backend contract: an exception fails the whole batch
                failed_in_a_row += 1
                stats.add("backend_failed", len(batch))
                log.warning("a batch of %d pages failed in the backend: %s", len(batch), e)
                if failed_in_a_row >= MAX_FAILED_BATCHES:
                    raise BackendError(f"{MAX_FAILED_BATCHES} batches in a row failed in the {backend.name} backend "
                                       f"(last: {e}); the pages labelled so far are kept, rerun to resume") from None
                progress.advance(bar, len(batch))
                continue
            failed_in_a_row = 0
            logged = []
            for rec, c in zip(batch, completions, strict=True):
                if c.prompt_too_long:  # the same prompt would fail again: a final outcome, not a retry
                    label, answer = TOO_LONG, c.error
                elif not c.ok:
                    stats.add("backend_failed")
                    stats.add_to("backend errors", c.error.split(":")[0][:80])
                    continue
                else:
                    answer = c.texts[0]
                    label = labeller.parse(answer)
                stats.add_to("labels", label)
                logged.append({"key": page_key(rec), **{k: v for k, v in rec.items() if k != LABEL_FIELD},
                               LABEL_FIELD: label, "answer": answer[:500]})
            append_records(log_path, logged)
            progress.advance(bar, len(batch))


def write_label_files(out: Path, log_path: Path, labeller: Labeller) -> dict[str, int]:
    """``OUT/<label>.jsonl`` for every label of the recipe, from the whole log (pages without ``key``/``answer``)."""
    by_label: dict[str, list[dict[str, Any]]] = {label: [] for label in labeller.recipe.answers}
    counts: dict[str, int] = {UNPARSED: 0, TOO_LONG: 0}
    if log_path.exists():
        for _, rec in iter_log(log_path):
            label = rec.get(LABEL_FIELD)
            counts[label] = counts.get(label, 0) + 1
            if label in by_label:
                by_label[label].append({k: v for k, v in rec.items() if k not in ("key", "answer")})
    for label, recs in by_label.items():
        write_records(out / f"{label}.jsonl", recs)
        counts.setdefault(label, 0)
    return counts
