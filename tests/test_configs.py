"""The shipped configs: default.yaml is the defaults, key by key, and every loss has its own file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from ce_lab.config import RunConfig, load_config
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
