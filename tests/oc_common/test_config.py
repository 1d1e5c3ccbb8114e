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
