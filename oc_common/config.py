"""Typed configs: YAML recipe + dotted CLI overrides, validated before any work starts.

A config class is a pydantic model. ``load_config(path, overrides, Model)`` merges the YAML file with overrides like
``train.lr=1e-4`` (values parsed as YAML scalars/lists) and validates the result; any problem raises ``ConfigError``
naming the file and the dotted key, never a bare traceback.

A dotted override that reaches *into* a map field (``keep_fraction.Java=0.44``) changes that one entry and keeps the
map's other entries, its defaults included (``HTML`` stays downsampled); a value for the map itself
(``keep_fraction={Java: 0.44}``) replaces the whole map, so replacing a map takes the whole map.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from oc_common.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], parsed value). The value is parsed as YAML (1e-4, true, [1, 2], null)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=1e-4")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads 1e-4 as a string (no dot in the mantissa); users mean a float.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in "eE.") and not value.isalpha() else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], model: type[BaseModel] | None = None
                    ) -> dict[str, Any]:
    """Set each dotted ``KEY=VALUE`` in ``data``. With the config ``model``, an override inside a map field that
    ``data`` does not hold yet starts from the field's default map (the entry merges into the map, see above)."""
    for item in overrides:
        keys, value = parse_override(item)
        if model is not None:
            _seed_default_maps(data, keys, model)
        node = data
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[: i + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    return data


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_map(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _seed_default_maps(data: dict[str, Any], keys: list[str], model: type[BaseModel]) -> None:
    """Walk ``keys`` (all but the last) through ``model``'s fields; where the path enters a map field missing from
    ``data``, put the field's default there (as plain data), so that the override below merges into it."""
    node: Any = data
    annotation: Any = model
    for k in keys[:-1]:
        if not isinstance(node, dict):
            return
        if _is_model(annotation):
            field = annotation.model_fields.get(k)
            if field is None:
                return  # an unknown key: validation names it
            child_annotation = _unwrap_optional(field.annotation)
            if _is_map(child_annotation) and node.get(k) is None:
                default = field.get_default(call_default_factory=True)
                if isinstance(default, Mapping):
                    node[k] = TypeAdapter(field.annotation).dump_python(copy.deepcopy(default))
        elif _is_map(annotation):
            args = typing.get_args(annotation)
            child_annotation = _unwrap_optional(args[1]) if len(args) == 2 else Any
        else:
            return
        if node.get(k) is None:
            node[k] = {}  # as the override itself would create it
        node, annotation = node[k], child_annotation


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line (the CLIs print every mistake as one line): ``SOURCE: key: problem; other.key: problem``."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        got = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
        problems.append(f"{key}: {msg}{shown}")
    return f"{source}: " + "; ".join(problems)


def validate_config(data: dict[str, Any], model: type[M], source: str = "<config>") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_config(path: str | Path | None, overrides: Iterable[str] = (), model: type[M] | None = None,
                defaults: dict[str, Any] | None = None) -> M | dict[str, Any]:
    """Read ``path`` (or start from ``defaults``), apply dotted overrides, validate against ``model``."""
    data = copy.deepcopy(defaults) if defaults else {}
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    data = apply_overrides(data, overrides, model)
    if model is None:
        return data
    return validate_config(data, model, str(path) if path is not None else "defaults + command-line overrides")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(cfg: BaseModel | dict[str, Any], path: str | Path) -> None:
    """Write the resolved config next to outputs, so every run records exactly what it ran with."""
    from oc_common.fileio import atomic_write_text

    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
