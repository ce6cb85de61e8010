"""The run config: the shipped configs (default.yaml is the defaults, key by key, and every file in
configs/ is a valid run config or batch file), which keys differ, an empty file, precedence of
file, --set items and flags, round trip, immutability, YAML anchors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from ce_lab.batches.spec import load_batch
from ce_lab.config import (
    RunConfig,
    load_config,
    resolve_config,
    to_yaml,
    with_overrides,
)
from ce_lab.errors import ConfigError
from ce_lab.losses import LOSSES
from tests.helpers import write_dedented

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BATCH_KEYS = {"base", "grid", "runs"}  # a batch file has these; a run config has none of them


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


def loss_option_keys() -> set[str]:
    return {f"loss.{key}" for spec in LOSSES.values() if spec.options
            for key in spec.options.model_fields}


def test_default_yaml_is_the_defaults_and_names_every_key():
    assert load_config(CONFIGS / "default.yaml") == RunConfig()
    written = flat(yaml.safe_load((CONFIGS / "default.yaml").read_text()))
    # Every key but the loss options, which `ce-lab losses` documents with their loss: a new
    # loss need not edit this file (those written here are validated and are the defaults).
    options = loss_option_keys()
    assert written - options == leaf_keys(RunConfig) - options
    assert written <= leaf_keys(RunConfig)
    for line in (CONFIGS / "default.yaml").read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "#" in line, f"undocumented key: {line.strip()}"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    data = yaml.safe_load(path.read_text())
    if BATCH_KEYS & set(data):
        batch = load_batch(path)
        assert batch.entries
        for entry in batch.entries:
            assert entry.config.loss.name in LOSSES
    else:
        assert load_config(path).loss.name in LOSSES


@pytest.mark.parametrize(("item", "key"), [
    ("seed=true", "seed"),                      # YAML booleans are not numbers
    ("optim.lr=yes", "optim.lr"),
    ("train.epochs=3.0", "train.epochs"),       # an integer key takes no float
    ("model.hidden=[128,true]", "model.hidden.1"),
    ("log.thresholds=[0.9,on]", "log.thresholds.1"),
    ("loss.hinge_margin=true", "loss.hinge_margin"),
])
def test_booleans_and_floats_are_refused_where_integers_or_numbers_belong(item, key):
    with pytest.raises(ConfigError, match=rf"--set {re.escape(item)}: {re.escape(key)}:"):
        resolve_config(None, [item])


def test_yaml_exponent_without_a_dot_still_reads_as_a_float():
    # YAML 1.1 reads 1e-3 as a string; a learning rate written that way must still work.
    assert resolve_config(None, ["optim.lr=1e-3"]).optim.lr == 0.001


# ---------------------------------------------------------------------------------------------
# Which keys differ: one function for comparisons, `runs diff` and a stack's member labels


def test_differing_keys_in_config_order_with_absent_keys_as_null_or_as_absent():
    from ce_lab.config import differing_keys, flatten, same

    old = {"seed": 0, "optim": {"lr": 0.1, "name": "sgd"}, "out_dir": "a"}  # written before q
    new = {"seed": 1, "optim": {"lr": 0.1, "name": "sgd"}, "out_dir": "b",
           "loss": {"q": None, "hidden": [8, 4]}}
    newer = new | {"loss": {"q": None, "hidden": [8, 4.0]}}  # JSON text: 4.0 is not 4
    assert flatten(new) == {"seed": 1, "optim.lr": 0.1, "optim.name": "sgd", "out_dir": "b",
                            "loss.q": None, "loss.hidden": [8, 4]}
    assert flatten({"data": {}}) == {"data": {}}  # an empty mapping is a value, not nothing
    assert differing_keys([old, new]) == ["seed", "out_dir", "loss.hidden"]
    assert differing_keys([old, new], ignore={"out_dir"}) == ["seed", "loss.hidden"]
    assert differing_keys([old, new], absent_differs=True) == ["seed", "out_dir", "loss.q",
                                                               "loss.hidden"]
    assert differing_keys([new, newer]) == ["loss.hidden"]
    assert differing_keys([new]) == [] and differing_keys([]) == []
    assert same([1, {"b": 2, "a": 1}]) == same([1, {"a": 1, "b": 2}])
    # a value that spells "<absent>" is not taken for an absent key
    assert differing_keys([{"k": "<absent>"}, {}], absent_differs=True) == ["k"]


# ---------------------------------------------------------------------------------------------
# Config files


def test_empty_yaml_is_the_defaults(tmp_path):
    path = write_dedented(tmp_path, "empty.yaml", "")
    assert resolve_config(path) == RunConfig()


# ---------------------------------------------------------------------------------------------
# Precedence, round trip, immutability (the config API the commands build on)


def test_precedence_defaults_file_set_flags(tmp_path):
    path = write_dedented(tmp_path, "run.yaml", """\
        seed: 5
        optim:
          lr: 0.2
          momentum: 0.5
        train:
          epochs: 7
        """)
    defaults = RunConfig()
    from_file = resolve_config(path)
    assert (from_file.seed, from_file.optim.lr, from_file.train.epochs) == (5, 0.2, 7)

    with_sets = resolve_config(path, ["optim.lr=0.3", "seed=6"])
    assert (with_sets.seed, with_sets.optim.lr) == (6, 0.3)
    assert with_sets.optim.momentum == 0.5  # a --set of a sibling key keeps the file's value

    full = resolve_config(path, ["optim.lr=0.3", "seed=6"], {"optim.lr": 0.5, "seed": None})
    assert full.optim.lr == 0.5  # flag beats --set and file
    assert full.seed == 6  # a flag left unset (None) changes nothing
    assert full.train.epochs == 7  # file beats defaults
    assert full.train.batch_size == defaults.train.batch_size  # untouched: the default


def test_later_set_wins():
    assert resolve_config(None, ["optim.lr=0.3", "optim.lr=0.4"]).optim.lr == 0.4


def test_flag_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        resolve_config(None, [], {"optim.lr": 0.0})
    assert info.value.exit_code == 2
    assert "optim.lr" in str(info.value)


def test_yaml_round_trip(tmp_path):
    cfg = resolve_config(
        None,
        [
            "seed=3",
            "device=cpu",
            "out_dir=elsewhere/runs",
            "data.root=/tmp/mnist",
            "model.hidden=[32, 16]",
            "model.activation=tanh",
            "loss.name=hinge-sq",
            "loss.hinge_margin=0.5",
            "optim.name=adam",
            "optim.lr=1.0e-4",
            "schedule.name=cosine",
            "train.max_steps=12",
            "log.thresholds=[0.5, 0.99]",
            "log.grad_stats=false",
        ],
    )
    assert cfg != RunConfig()
    path = tmp_path / "round.yaml"
    path.write_text(to_yaml(cfg), encoding="utf-8")
    assert load_config(path) == cfg
    assert load_config(path).model.hidden == (32, 16)


def test_default_round_trip(tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text(to_yaml(RunConfig()), encoding="utf-8")
    assert load_config(path) == RunConfig()


def test_config_is_frozen():
    cfg = RunConfig()
    with pytest.raises(ValidationError):
        cfg.seed = 1
    with pytest.raises(ValidationError):
        cfg.optim.lr = 0.5
    assert cfg == RunConfig()


def test_with_overrides_returns_a_new_validated_config():
    cfg = RunConfig()
    new = with_overrides(cfg, {"optim.lr": 0.01})
    assert new.optim.lr == 0.01 and cfg.optim.lr == RunConfig().optim.lr
    with pytest.raises(ConfigError):
        with_overrides(cfg, {"optim.lr": -1})


def test_anchors_and_merge_keys_are_not_duplicates(tmp_path):
    cfg = tmp_path / "anchor.yaml"
    cfg.write_text("optim: &o\n  lr: 0.3\n  <<: {momentum: 0.5}\n", encoding="utf-8")
    got = resolve_config(cfg)
    assert got.optim.lr == 0.3 and got.optim.momentum == 0.5


def test_the_default_cadence_draws_an_mnist_epoch_with_at_least_15_validation_points(tiny_config):
    """log.eval_every's default on an epoch as long as MNIST's default split makes it (55,000
    training images at the default batch: 860 steps), trained for real on the tiny MNIST at batch 1:
    every default-cadence step and the epoch's end are evaluated, and that is at least 15 points."""
    import csv
    import math

    from ce_lab.training import train

    default = RunConfig()
    assert default.data.val_size is None  # a twelfth of MNIST's 60,000: 5,000
    steps = math.ceil((60_000 - 5_000) / default.train.batch_size)
    assert steps == 860
    cfg = tiny_config(**{"log.eval_every": default.log.eval_every, "train.batch_size": 1,
                         "train.max_steps": steps, "log.grad_stats": False})
    out = train(cfg)
    with open(out.run_dir / "eval.csv", newline="") as f:
        evaluated = [int(r["step"]) for r in csv.DictReader(f)]
    every = default.log.eval_every
    assert evaluated == [*range(every, steps, every), steps]
    assert len(evaluated) >= 15
