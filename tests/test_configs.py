"""The shipped configs: default.yaml is the defaults, key by key, and every loss has its own file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from ce_lab.config import RunConfig, load_config, resolve_config
from ce_lab.errors import ConfigError
from ce_lab.losses import loss_names

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= leaf_keys(ann, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def flat(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_default_yaml_is_the_defaults_and_names_every_key():
    assert load_config(CONFIGS / "default.yaml") == RunConfig()
    written = flat(yaml.safe_load((CONFIGS / "default.yaml").read_text()))
    assert written == leaf_keys(RunConfig)
    for line in (CONFIGS / "default.yaml").read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "#" in line, f"undocumented key: {line.strip()}"


def test_every_loss_has_a_config_that_selects_it():
    for name in loss_names():
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.loss.name == name


@pytest.mark.parametrize(("item", "key"), [
    ("seed=true", "seed"),                      # YAML booleans are not numbers
    ("optim.lr=yes", "optim.lr"),
    ("train.epochs=3.0", "train.epochs"),       # an integer key takes no float
    ("model.hidden=[128,true]", "model.hidden.1"),
    ("log.thresholds=[0.9,on]", "log.thresholds.1"),
])
def test_booleans_and_floats_are_refused_where_integers_or_numbers_belong(item, key):
    with pytest.raises(ConfigError, match=rf"--set {re.escape(item)}: {re.escape(key)}:"):
        resolve_config(None, [item])


def test_yaml_exponent_without_a_dot_still_reads_as_a_float():
    # YAML 1.1 reads 1e-3 as a string; a learning rate written that way must still work.
    assert resolve_config(None, ["optim.lr=1e-3"]).optim.lr == 0.001
