"""One typed, validated config object for a run, and how it is resolved from its sources.

Sources, weakest first: defaults < ``--config FILE.yaml`` < ``--set dotted.key=value`` < dedicated
CLI flags. The resolved ``RunConfig`` is frozen; ``to_yaml`` / ``load_config`` round-trip it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ce_lab.config_base import Float, Int, _Section  # noqa: F401
from ce_lab.config_keys import NON_RESULT_KEYS, differing_keys, flatten, parse_value, same  # noqa: F401
from ce_lab.data.settings import DataConfig, data_problem
from ce_lab.errors import ConfigError
from ce_lab.losses import loss_names, loss_options, option_fields
from ce_lab.progress import PROGRESS_MODES
from ce_lab.shown import capped, quoted
from ce_lab.suggest import unknown_name
from ce_lab.yaml_files import read_yaml_mapping


class ModelConfig(_Section):
    hidden: tuple[Int, ...] = (256,)  # hidden layer widths; [] is a linear classifier
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"  # between hidden layers
    init: Literal["default", "kaiming", "xavier"] = "default"  # default: torch's nn.Linear init
    # Multipliers applied to the initial weights and biases after ``init``: every layer, then the
    # last layer once more. 1 leaves them bit for bit as drawn; large values start a run
    # confidently (and, for most examples, wrongly) saturated (configs/study-saturation.yaml).
    init_gain: Float = Field(1.0, gt=0)
    output_gain: Float = Field(1.0, gt=0)

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in v):
            raise ValueError("every hidden width must be at least 1")
        return v


class _LossConfigBase(_Section):
    name: str = "ce"  # one of `ce-lab losses`

    @field_validator("name")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        names = loss_names()
        if v not in names:
            raise ValueError(unknown_name("loss", [v], names))
        return v

    @model_validator(mode="after")
    def _options_by_their_model(self) -> _LossConfigBase:
        loss_options(self)  # the selected loss's own validators, beyond each field's constraints
        return self


# The loss section: ``name`` and every option of every registered loss (ce_lab/losses/ keeps
# each option with its loss: mse_reduction with mse, hinge_margin with hinge and hinge-sq), so a
# config file keeps one flat ``loss:`` section. A value is checked by its option's field.
LossConfig = create_model("LossConfig", __base__=_LossConfigBase, __module__=__name__,
                          **{key: (field.annotation, field)
                             for key, field in option_fields().items()})


class OptimConfig(_Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Float = Field(0.1, gt=0)  # learning rate
    momentum: Float = Field(0.0, ge=0, lt=1)  # sgd only
    nesterov: bool = False  # sgd only; needs momentum > 0
    weight_decay: Float = Field(0.0, ge=0)
    beta1: Float = Field(0.9, ge=0, lt=1)  # adam, adamw
    beta2: Float = Field(0.999, ge=0, lt=1)  # adam, adamw

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimConfig:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class ScheduleConfig(_Section):
    name: Literal["none", "step", "cosine"] = "none"  # learning-rate schedule, stepped per batch
    step_every: Int = Field(1000, ge=1)  # step: multiply the lr by gamma every this many steps
    gamma: Float = Field(0.1, gt=0, le=1)  # step: the factor
    min_lr: Float = Field(0.0, ge=0)  # cosine: the lr at the end (as CosineAnnealingLR)


class TrainConfig(_Section):
    epochs: Int = Field(3, ge=0)  # passes over the training split
    max_steps: Int | None = Field(None, ge=1)  # stop after this many steps, even mid-epoch
    batch_size: Int = Field(64, ge=1)
    eval_batch_size: Int = Field(2000, ge=1)  # evaluation only; changes no result


# Each threshold is a column of every comparison, keyed by two decimals ("0.90"): 100 of them
# cover every key there is.
MAX_THRESHOLDS = 100


class LogConfig(_Section):
    log_every: Int = Field(10, ge=1)  # steps between rows of metrics.csv
    # Steps between validation passes (and at every epoch end). 50: 18 points in an MNIST epoch
    # (860 steps), a smooth curve; each pass is a forward over the whole validation split, on a
    # CPU about 30 training steps' time at 5,000 images (docs/plots.md, bench_train.py).
    eval_every: Int = Field(50, ge=1)
    thresholds: tuple[Float, ...] = (0.90, 0.95, 0.97)  # validation accuracies for convergence
    grad_stats: bool = True  # gradient norms, d loss/d logits, update ratios (off: loss only)
    checkpoint: bool = True  # write checkpoint.pt at every epoch end
    progress: Literal[PROGRESS_MODES] = "auto"  # type: ignore[valid-type]  # auto: a bar on a terminal
    tensorboard: bool = False  # also write TensorBoard event files into each run folder (extra)

    @field_validator("thresholds")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < t <= 1 for t in v):
            raise ValueError("thresholds are accuracies in (0, 1]")
        if len(set(v)) > MAX_THRESHOLDS:
            raise ValueError(f"at most {MAX_THRESHOLDS} thresholds (each is a column, keyed by two "
                             f"decimals: 0.01 to 1.00), got {len(set(v))}")
        return tuple(sorted(set(v)))


class RunConfig(_Section):
    # torch seeds take an unsigned 64-bit number, and the batch order adds an offset to the seed
    seed: Int = Field(0, ge=0, le=2**63 - 1)  # initial weights, validation split and batch order
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: cuda, then mps, then cpu
    out_dir: Path = Path("runs")  # run folders are created under it
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    log: LogConfig = LogConfig()


# ---------------------------------------------------------------------------------------------
# Resolution


def _walk_fields(model: type[BaseModel], keys: Sequence[str]) -> type[BaseModel] | None:
    """The section model reached by following ``keys`` from ``model`` (None if not a section)."""
    for key in keys:
        field = model.model_fields.get(key)
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _check_keys(data: Mapping[str, Any], model: type[BaseModel], prefix: tuple[str, ...],
                where: str, marks: dict[tuple[str, ...], int]) -> None:
    """Reject unknown keys before pydantic does, so the error can suggest the right name."""
    for key, value in data.items():
        path = (*prefix, str(key))
        if key not in model.model_fields:
            dotted = ".".join(path)
            guess = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            hint = (f"; did you mean '{'.'.join((*prefix, guess[0]))}'?" if guess
                    else _tail_hint(str(key), model))
            raise ConfigError(f"{_place(where, marks, path)}unknown key '{dotted}'{hint}")
        sub = _walk_fields(model, [key])
        if sub is not None and isinstance(value, Mapping):
            _check_keys(value, sub, path, where, marks)


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key of ``model`` as a dotted path, in field order."""
    keys = []
    for name in model.model_fields:
        sub = _walk_fields(model, [name])
        keys += _dotted_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return keys


def _tail_hint(key: str, model: type[BaseModel]) -> str:
    """``; did you mean 'optim.lr'?`` for ``lr`` (or ``train.lr``): the run config's keys whose
    last part it is, for a key of the run config that no key of its own section is close to."""
    from ce_lab.suggest import by_last_parts

    sections = {RunConfig, *(_walk_fields(RunConfig, [n]) for n in RunConfig.model_fields)}
    if model not in sections:  # another model (a batch file's own keys): no run-config guess
        return ""
    found = by_last_parts(key, _dotted_keys(RunConfig))
    if not found:
        return ""
    return f"; did you mean {found[0]!r}?" if len(found) == 1 else (
        f"; did you mean one of {', '.join(map(repr, found))}?")


def _place(where: str, marks: dict[tuple[str, ...], int], path: tuple[str, ...]) -> str:
    if not where:
        return ""
    line = marks.get(path)
    return f"{where}:{line}: " if line else f"{where}: "


def parse_set(item: str) -> tuple[tuple[str, ...], Any]:
    """``a.b=value`` -> (("a", "b"), value), the value parsed as a YAML scalar or flow list."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects dotted.key=value, got {quoted(item)}")
    if any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"--set {capped(item)}: the key {quoted(key)} has an empty part; "
                          "write it as dotted.key=value, e.g. optim.lr=0.05")
    return tuple(part.strip() for part in key.split(".")), parse_value(raw)


def _deep_set(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        nxt = target.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            target[key] = nxt
        target = nxt
    target[path[-1]] = value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge of two nested mappings; ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def validate(data: Mapping[str, Any], where: str = "",
             marks: dict[tuple[str, ...], int] | None = None) -> RunConfig:
    """Validate a nested mapping into a RunConfig; the one-line error names the key."""
    return validate_model(RunConfig, data, where, marks)


def validate_model(model: type[BaseModel], data: Mapping[str, Any], where: str = "",
                   marks: dict[tuple[str, ...], int] | None = None) -> Any:
    """Validate a nested mapping into any pydantic ``model`` (e.g. a batch file), same errors."""
    marks = marks or {}
    _check_keys(data, model, (), where, marks)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        path = tuple(str(p) for p in err["loc"])
        # pydantic adds index entries for list items; the key is what the user wrote.
        key_path = tuple(p for p in path if not p.isdigit())
        msg = err["msg"].removeprefix("Value error, ")
        got = f" (got {quoted(err['input'])})" if "input" in err and not isinstance(
            err["input"], (dict, list)) else ""  # capped: a 10,000-character name is not echoed
        raise ConfigError(f"{_place(where, marks, key_path)}{'.'.join(path)}: {msg}{got}") from None


def resolve_config(
    config_file: Path | None = None,
    sets: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> RunConfig:
    """defaults < config file < ``--set`` items < dedicated flags (dotted key -> value, None=unset)."""
    data: dict[str, Any] = {}
    if config_file is not None:
        data, marks = read_yaml_mapping(config_file)
        validate(data, str(config_file), marks)  # errors point at the file and line
    for item in sets:
        path, value = parse_set(item)
        try:
            _check_keys(_nest(path, value), RunConfig, (), "", {})
        except ConfigError as e:
            raise ConfigError(f"--set {capped(item)}: {e}") from None
        data = merge(data, _nest(path, value))
        try:
            validate(data)
        except ConfigError as e:
            raise ConfigError(f"--set {capped(item)}: {e}") from None
    for dotted, value in (flags or {}).items():
        if value is not None:
            data = merge(data, _nest(tuple(dotted.split(".")), value))
    return validate(data)


def check_trains(cfg: RunConfig) -> RunConfig:
    """``cfg``, or ConfigError (exit 2) when it would train no step: train.epochs 0 leaves the
    length to train.max_steps, and without it a run would write a folder, evaluate the initial
    weights and report them "completed". Checked where a run is about to start, not by the model,
    so ``--set train.epochs=0 --set train.max_steps=5`` may come in either order."""
    if cfg.train.epochs == 0 and cfg.train.max_steps is None:
        raise ConfigError("train.epochs is 0 and train.max_steps is not set: the run would "
                          "train no steps; give --epochs 1 or more, or --max-steps N")
    if problem := data_problem(cfg.data):  # the data keys together (a set's size, its map)
        raise ConfigError(problem)
    return cfg


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _deep_set(out, path, value)
    return out


def keyword_overrides(*, loss=None, epochs=None, max_steps=None, lr=None, optimizer=None,
                      batch_size=None, device=None, seed=None, out_dir=None,
                      data_dir=None) -> dict[str, Any]:
    """The dedicated CLI flags (and the Python API's keyword arguments) as dotted config keys;
    None: not given. Enums give their value, paths their text."""

    def val(v):
        if isinstance(v, Enum):
            return v.value
        return str(v) if isinstance(v, Path) else v

    return {
        "loss.name": val(loss), "train.epochs": epochs, "train.max_steps": max_steps,
        "optim.lr": lr, "optim.name": val(optimizer), "train.batch_size": batch_size,
        "device": val(device), "seed": seed, "out_dir": val(out_dir), "data.root": val(data_dir),
    }


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def load_config(path: Path) -> RunConfig:
    data, marks = read_yaml_mapping(path)
    return validate(data, str(path), marks)


def with_overrides(cfg: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with dotted-key overrides applied, validated again."""
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        data = merge(data, _nest(dotted_path(dotted), value))
    return validate(data)


def dotted_path(dotted: Any) -> tuple[str, ...]:
    """The parts of a dotted config key; ConfigError naming the key as given when it is not a
    string or has an empty part (``../../x`` would otherwise read as the unknown key '')."""
    if not isinstance(dotted, str):
        raise ConfigError(f"config keys are dotted strings such as 'optim.lr', got {dotted!r}")
    parts = tuple(dotted.split("."))
    if not all(parts):
        raise ConfigError(f"unknown key {dotted!r}: a dotted key has no empty part, e.g. "
                          "'optim.lr'")
    return parts
