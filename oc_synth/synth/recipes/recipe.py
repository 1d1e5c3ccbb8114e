"""A synthesis recipe: one YAML file of prompt templates, parsers, output fields and checks. No code needed.

A recipe runs one or more steps per seed. Each step renders a Jinja prompt (chat messages or a raw completion
prompt), samples the model and parses the answer into fields; the next step sees those fields under the step's name.
The last step is sampled ``n`` times (one record per sample), earlier steps once. ``output`` then renders the record
fields (``instruction``, ``response``, ``code``, ``tests``, ``text``, ...) from everything known about the sample.

Template context: ``seed`` (the seed record), ``seed_id``, every variable (sampled per seed), and each finished
step's parsed fields by step name (``write.task``). A step with ``keep_if`` is a judge: a sample whose parsed answer
does not have one of the listed values goes no further (``judge:<step>``). Templates are strict: an undefined name
is an error, never an empty string in a prompt. See docs/synthesis.md for the full format and the shipped recipes.
"""

from __future__ import annotations

import hashlib
import inspect
import random
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.sandbox
from pydantic import Field, field_validator, model_validator

from oc_common.config import StrictModel, load_config
from oc_common.errors import ConfigError
from oc_synth.backends.base import SamplingParams
from oc_synth.synth.recipes.checks import CHECKS, run_checks
from oc_synth.synth.recipes.conventions import test_instructions
from oc_synth.synth.recipes.parsers import PARSERS, ParseError, first_code_block, parse

RECIPES_DIR = Path(__file__).parent
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Fields the pipeline writes on every record; a recipe's output may not overwrite them.
RESERVED_FIELDS = frozenset({"id", "seed_id", "sample", "samples", "recipe", "keep", "drop_reasons", "drop_details",
                             "raw", "provenance", "verdict", "passed", "verdict_detail", "stderr_tail", "runtime_s"})


class SamplingSpec(StrictModel):
    """Sampling settings; every field optional so that steps and the command line can override a subset."""

    n: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = None
    json_schema: dict[str, Any] | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StepSpec(StrictModel):
    name: str = Field(pattern=_IDENT)
    mode: Literal["chat", "completion"] = "chat"
    system: str | None = None
    prompt: str | None = None
    prompt_file: str | None = Field(None, description="a Jinja file next to the recipe, instead of prompt")
    sampling: SamplingSpec = SamplingSpec()
    parser: dict[str, Any] = Field(default_factory=lambda: {"type": "text"})
    keep_if: dict[str, list[Any]] | None = Field(
        None, description="a judge step: the sample goes on only when each parsed field named here has one of the "
                          "listed values (compared as lower-case text); otherwise it is dropped as judge:<step>")

    @model_validator(mode="after")
    def _one_prompt(self) -> StepSpec:
        if (self.prompt is None) == (self.prompt_file is None):
            raise ValueError("give exactly one of prompt or prompt_file")
        if self.mode == "completion" and self.system is not None:
            raise ValueError("a completion-mode step has no system message")
        kind = self.parser.get("type")
        if kind not in PARSERS:
            raise ValueError(f"parser.type: unknown parser {kind!r}; known: {', '.join(sorted(PARSERS))}")
        _check_params(f"parser {kind}", PARSERS[kind], {k: v for k, v in self.parser.items() if k != "type"},
                      skip=1)
        for name, allowed in (self.keep_if or {}).items():
            if not allowed or any(isinstance(a, bool) for a in allowed):
                raise ValueError(f"keep_if.{name}: a non-empty list of values; quote yes/no ('yes'), which YAML "
                                 "otherwise reads as true/false")
        return self


class SeedSpec(StrictModel):
    require: list[str] = Field(default_factory=list, description="seed fields that must be present and non-blank")
    id_field: str = "id"
    truncate: dict[str, int] = Field(default_factory=dict, description="cut long seed fields to this many chars")
    enrich: Literal["pydoc", "chat"] | None = Field(
        None, description="pydoc: the APIs the seed's Python snippet (text) uses, restricted to its package when "
                          "given, plus package.symbol, with their pydoc text (apis, api_name, api_doc); chat: query "
                          "and response from a conversation (messages, conversation, conversations) or an "
                          "instruction/output pair")
    api_doc_chars: int = Field(6000, ge=200, description="pydoc: characters of documentation in all")
    max_apis: int = Field(8, ge=1, description="pydoc: at most this many APIs per seed, in order of first use")


class DedupSpec(StrictModel):
    """Dedup of generated instructions (defaults are ours: OpenCoder does not publish them)."""

    field: str | None = Field(None, description="record field compared; default: instruction, else text")
    exact: bool = True
    fuzzy: bool = True
    ngram: int = Field(5, ge=1)
    bands: int = Field(20, ge=1)
    rows: int = Field(10, ge=1)
    jaccard: float = Field(0.7, gt=0, le=1, description="candidate pairs must reach this exact Jaccard similarity")


class RecipeSpec(StrictModel):
    name: str
    description: str
    kind: Literal["annealing", "instruction"]
    seeds: SeedSpec = SeedSpec()
    variables: dict[str, list[Any] | dict[str, float]] = Field(default_factory=dict)
    sampling: SamplingSpec = SamplingSpec(n=1, temperature=0.7, top_p=0.95, max_tokens=2048)
    steps: list[StepSpec] = Field(min_length=1)
    output: dict[str, str] = Field(min_length=1)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    verify: bool = Field(False, description="records carry code + tests to execute in the sandbox")
    dedup: DedupSpec = DedupSpec()
    decontaminate: list[str] | None = Field(None, description="fields scanned for benchmark overlap; default all")

    @field_validator("variables")
    @classmethod
    def _variables(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, values in v.items():
            if not values:
                raise ValueError(f"{name}: no values")
            if isinstance(values, dict) and any(w < 0 for w in values.values()):
                raise ValueError(f"{name}: weights must be >= 0")
        return v

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, spec in enumerate(v):
            name = spec.get("check")
            if name not in CHECKS:
                raise ValueError(f"item {i}: unknown check {name!r}; known: {', '.join(sorted(CHECKS))}")
            _check_params(f"item {i} ({name})", CHECKS[name], {k: x for k, x in spec.items() if k != "check"},
                          skip=1)
        return v

    @model_validator(mode="after")
    def _steps(self) -> RecipeSpec:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"steps: duplicate step names {names}")
        clash = set(names) & (set(self.variables) | {"seed", "seed_id"})
        if clash:
            raise ValueError(f"steps: names {sorted(clash)} clash with variables or seed")
        if self.verify and not {"code", "tests"} <= set(self.output):
            raise ValueError("verify: true needs output fields code and tests")
        reserved = set(self.output) & RESERVED_FIELDS
        if reserved:
            raise ValueError(f"output: {sorted(reserved)} are set by the pipeline, choose other names")
        return self


def _check_params(what: str, fn: Any, params: dict[str, Any], skip: int) -> None:
    sig = inspect.signature(fn)
    try:
        sig.bind(*([None] * skip), **params)
    except TypeError as e:
        known = [p for p in list(sig.parameters)[skip:]]
        raise ValueError(f"{what}: {e}; parameters: {', '.join(known)}") from None


class RecipeError(ConfigError):
    pass


class Recipe:
    """A validated recipe with compiled templates. ``source`` is the YAML file; ``sha`` covers it and its files."""

    def __init__(self, spec: RecipeSpec, source: Path, sha: str):
        self.spec, self.source, self.sha = spec, source, sha
        self.env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
        self.env.filters["first_code_block"] = first_code_block
        self.env.filters["test_instructions"] = test_instructions
        self._templates: dict[str, jinja2.Template] = {}
        for i, step in enumerate(spec.steps):
            if step.system is not None:
                self._compile(f"steps.{i}.system", step.system)
            text = step.prompt if step.prompt is not None else self._read_prompt_file(i, step.prompt_file or "")
            self._compile(f"steps.{i}.prompt", text)
        for key, text in spec.output.items():
            self._compile(f"output.{key}", text)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def steps(self) -> list[StepSpec]:
        return self.spec.steps

    def _read_prompt_file(self, i: int, name: str) -> str:
        path = self.source.parent / name
        if not path.is_file():
            raise RecipeError(f"{self.source}: steps.{i}.prompt_file: {path} not found")
        return path.read_text(encoding="utf-8")

    def _compile(self, key: str, text: str) -> None:
        try:
            self._templates[key] = self.env.from_string(text)
        except jinja2.TemplateSyntaxError as e:
            raise RecipeError(f"{self.source}: {key}: template line {e.lineno}: {e.message}") from None

    def render(self, key: str, context: dict[str, Any]) -> str:
        """Render one template; a missing name raises ``RenderError`` naming the template."""
        try:
            return self._templates[key].render(**context)
        except ParseError:
            raise  # a filter such as first_code_block found no code: a parse failure of the answer
        except jinja2.UndefinedError as e:
            raise RenderError(f"{key}: {e.message}") from None
        except jinja2.TemplateError as e:
            raise RenderError(f"{key}: {e}") from None

    # ------------------------------------------------------------------------------------------------ per seed
    def sample_variables(self, seed: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Each variable from the seed when the seed has it (non-blank), else drawn from the recipe's values.
        Drawn in sorted name order from ``rng``, so the draw is a function of the per-seed seed alone."""
        out = {}
        for name in sorted(self.spec.variables):
            values = self.spec.variables[name]
            if seed.get(name) not in (None, ""):
                out[name] = seed[name]
            elif isinstance(values, dict):
                out[name] = rng.choices(list(values), weights=list(values.values()))[0]
            else:
                out[name] = rng.choice(values)
        return out

    def sampling(self, step_index: int, overrides: dict[str, Any], n: int | None = None) -> SamplingParams:
        """recipe sampling < step sampling < command line; only the last step samples ``n`` times."""
        step = self.steps[step_index]
        values = {**self.spec.sampling.values(), **step.sampling.values(), **overrides}
        last = step_index == len(self.steps) - 1
        values["n"] = (n or values.get("n", 1)) if last else 1
        if "stop" in values:
            values["stop"] = tuple(values["stop"])
        return SamplingParams(**values)

    def messages(self, step_index: int, context: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str | None]:
        """(messages, None) for a chat step, (None, prompt) for a completion step."""
        step = self.steps[step_index]
        prompt = self.render(f"steps.{step_index}.prompt", context)
        if step.mode == "completion":
            return None, prompt
        msgs = []
        if step.system is not None:
            msgs.append({"role": "system", "content": self.render(f"steps.{step_index}.system", context)})
        msgs.append({"role": "user", "content": prompt})
        return msgs, None

    def parse(self, step_index: int, answer: str) -> dict[str, Any]:
        p = dict(self.steps[step_index].parser)
        return parse(answer, p.pop("type"), p)

    def judge(self, step_index: int, parsed: dict[str, Any]) -> str | None:
        """None when the step keeps the sample (or is no judge), else why it does not."""
        keep_if = self.steps[step_index].keep_if or {}
        for name, allowed in keep_if.items():
            value = str(parsed.get(name, "")).strip().lower()
            if value not in {str(a).strip().lower() for a in allowed}:
                return (f"step {self.steps[step_index].name}: {name} is {value or 'missing'!r}; kept only "
                        f"{', '.join(map(str, allowed))}")
        return None

    def output(self, context: dict[str, Any]) -> dict[str, str]:
        return {key: self.render(f"output.{key}", context).strip("\n") + ("\n" if key in ("code", "tests") else "")
                for key in self.spec.output}

    def check(self, record: dict[str, Any]) -> tuple[str, str] | None:
        return run_checks(record, self.spec.checks)

    @cached_property
    def dedup_field(self) -> str:
        if self.spec.dedup.field:
            return self.spec.dedup.field
        return "instruction" if "instruction" in self.spec.output else "text"


class RenderError(ValueError):
    pass


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise RecipeError(f"{p}: recipe file not found")
        return p
    shipped = RECIPES_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise RecipeError(f"unknown recipe {str(name_or_path)!r}: shipped recipes are {', '.join(list_recipes())}; "
                      "or give the path of a recipe YAML file")


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, override (dotted keys, e.g. ``sampling.temperature=0.2``), validate and compile a recipe."""
    path = resolve_recipe_path(name_or_path)
    spec = load_config(path, overrides, RecipeSpec)
    digest = hashlib.sha256(path.read_bytes())
    for step in spec.steps:
        if step.prompt_file:
            f = path.parent / step.prompt_file
            if f.is_file():
                digest.update(f.read_bytes())
    digest.update(repr(sorted(overrides)).encode())
    return Recipe(spec, path, digest.hexdigest()[:16])
