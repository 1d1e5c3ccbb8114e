import pytest
from pydantic import Field

from oc_common.config import StrictModel, apply_overrides, load_config, parse_override
from oc_common.errors import ConfigError


class Optim(StrictModel):
    lr: float = 3e-4
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.95])


class Train(StrictModel):
    steps: int = Field(10, ge=1)
    optim: Optim = Field(default_factory=Optim)
    name: str = "run"


def test_yaml_plus_dotted_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 5\noptim:\n  lr: 0.1\n")
    cfg = load_config(p, ["optim.lr=1e-4", "optim.betas=[0.8, 0.9]", "name=abc"], Train)
    assert cfg.steps == 5 and cfg.optim.lr == 1e-4 and cfg.optim.betas == [0.8, 0.9] and cfg.name == "abc"


@pytest.mark.parametrize("raw,value", [("a=1e-4", 1e-4), ("a=3", 3), ("a=true", True), ("a=null", None),
                                       ("a=v1.2", "v1.2"), ("a=x.y", "x.y"), ("a=", "")])
def test_override_values(raw, value):
    assert parse_override(raw) == (["a"], value)


def test_errors_name_file_and_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 0\noptim:\n  lrr: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, [], Train)
    msg = str(e.value)
    assert str(p) in msg and "steps: Input should be greater than or equal to 1" in msg
    assert "optim.lrr: unknown key" in msg
    p.write_text("steps: [\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+:\d+: invalid YAML"):
        load_config(p, [], Train)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", [], Train)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["oops"], Train)
    with pytest.raises(ConfigError, match="name is not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


class Weighted(StrictModel):
    weight: float = 1.0
    note: str = ""


class Sampling(StrictModel):
    keep_fraction: dict[str, float] = Field(default_factory=lambda: {"Java": 0.49, "HTML": 0.3})
    sources: dict[str, Weighted] = Field(default_factory=lambda: {"code": Weighted(weight=2.0, note="raw")})
    optional_map: dict[str, int] | None = Field(default_factory=lambda: {"a": 1})


class Run(StrictModel):
    sampling: Sampling = Field(default_factory=Sampling)
    seed: int = 0


def test_a_dotted_override_merges_into_a_map_and_a_whole_value_replaces_it(tmp_path):
    # The README's example: -s keep_fraction.Java=0.44 must keep the HTML default.
    cfg = load_config(None, ["keep_fraction.Java=0.44"], Sampling)
    assert cfg.keep_fraction == {"Java": 0.44, "HTML": 0.3}
    cfg = load_config(None, ["keep_fraction.Rust=0.5"], Sampling)
    assert cfg.keep_fraction == {"Java": 0.49, "HTML": 0.3, "Rust": 0.5}
    # Nested: a section not in the file, a map of sections, an optional map.
    cfg = load_config(None, ["sampling.keep_fraction.HTML=0.1", "sampling.sources.code.weight=3",
                             "sampling.optional_map.b=2"], Run)
    assert cfg.sampling.keep_fraction == {"Java": 0.49, "HTML": 0.1}
    assert cfg.sampling.sources["code"] == Weighted(weight=3.0, note="raw")
    assert cfg.sampling.optional_map == {"a": 1, "b": 2}
    # Replacing a map takes the whole map (the value of the map key itself).
    cfg = load_config(None, ["keep_fraction={Java: 0.44}"], Sampling)
    assert cfg.keep_fraction == {"Java": 0.44}
    # A map written in the file is the map (the defaults do not come back), and overrides merge into it.
    p = tmp_path / "s.yaml"
    p.write_text("keep_fraction:\n  Java: 0.5\n")
    assert load_config(p, [], Sampling).keep_fraction == {"Java": 0.5}
    assert load_config(p, ["keep_fraction.Go=0.2"], Sampling).keep_fraction == {"Java": 0.5, "Go": 0.2}
    # Unknown keys are still named by validation.
    with pytest.raises(ConfigError, match="sampling.nope: unknown key"):
        load_config(None, ["sampling.nope.x=1"], Run)
