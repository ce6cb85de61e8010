"""Label noise (ce_lab/data/noise.py): exact counts, always a different class, the pairflip map,
clean validation and test labels, one corruption per seed, recorded in meta.json and the report."""

from __future__ import annotations

import json

import pytest
import torch

from ce_lab.config import DataConfig, with_overrides
from ce_lab.data.loader import load_mnist
from ce_lab.data.noise import changed_count, corrupt_labels, subset_indices
from ce_lab.errors import ConfigError, DataError
from ce_lab.training.fusion import fusion_key, plan_stacks
from tests.mnist_fixture import TINY_TRAIN, TINY_VAL_SIZE


def labels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fraction,n,expected", [
    (0.0, 1000, 0), (0.2, 1000, 200), (0.4, 55_000, 22_000), (0.25, 10, 3), (0.15, 10, 2),
    (0.05, 10, 1), (0.04, 10, 0), (0.999, 7, 7), (0.5, 1, 1), (0.3, 0, 0)])
def test_changed_count_rounds_half_up(fraction, n, expected):
    assert changed_count(fraction, n) == expected


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
@pytest.mark.parametrize("fraction,n", [(0.2, 1000), (0.4, 997), (0.25, 10), (0.9, 50)])
def test_exactly_the_count_changes_each_to_another_class(kind, fraction, n):
    y = labels(n)
    noisy, info = corrupt_labels(y, fraction, kind, 10, seed=3)
    changed = noisy != y
    assert int(changed.sum()) == changed_count(fraction, n) == info.changed
    assert info.n_train == n and info.kind == kind and info.fraction == fraction
    assert noisy.dtype == torch.int64 and int(noisy.min()) >= 0 and int(noisy.max()) <= 9
    if kind == "pairflip":
        assert torch.equal(noisy[changed], (y[changed] + 1) % 10)
    assert torch.equal(labels(n), y)  # the input is not modified in place


def test_symmetric_draws_every_other_class_about_equally():
    y = torch.full((20_000,), 4, dtype=torch.int64)
    noisy, _ = corrupt_labels(y, 0.9, "symmetric", 10, seed=0)
    counts = torch.bincount(noisy, minlength=10)
    assert int(counts[4]) == 2000  # the 10% left alone; a corrupted label is never its own class
    others = counts[torch.arange(10) != 4].double()
    assert others.sum() == 18_000
    assert float((others - 2000).abs().max()) < 200  # 2000 expected each, sd about 42


def test_same_seed_same_corruption_other_seed_another():
    y = labels(500)
    a, _ = corrupt_labels(y, 0.3, "symmetric", 10, seed=7)
    b, _ = corrupt_labels(y, 0.3, "symmetric", 10, seed=7)
    c, _ = corrupt_labels(y, 0.3, "symmetric", 10, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_noise_draws_nothing_and_returns_the_labels():
    y = labels(100)
    state = torch.random.get_rng_state()
    out, info = corrupt_labels(y, 0.0, "symmetric", 10, seed=0)
    assert out is y and info.changed == 0
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is untouched


def test_subset_is_sorted_seeded_and_bounded():
    a = subset_indices(1000, 100, seed=1)
    assert len(a) == 100 and len(set(a.tolist())) == 100 and torch.equal(a, a.sort().values)
    assert torch.equal(a, subset_indices(1000, 100, seed=1))
    assert not torch.equal(a, subset_indices(1000, 100, seed=2))
    assert subset_indices(1000, None, seed=1) is None
    with pytest.raises(DataError, match="data.train_size=1001"):
        subset_indices(1000, 1001, seed=1)


def _data_cfg(root, **kw) -> DataConfig:
    return DataConfig(root=root, verify_md5=False, val_size=TINY_VAL_SIZE, **kw)


def test_loader_corrupts_the_training_split_only(tiny_mnist):
    clean = load_mnist(_data_cfg(tiny_mnist), seed=0, device="cpu")
    noisy = load_mnist(_data_cfg(tiny_mnist, label_noise=0.3, label_noise_kind="pairflip"),
                       seed=0, device="cpu")
    n = TINY_TRAIN - TINY_VAL_SIZE
    assert clean.label_noise.changed == 0 and noisy.label_noise.changed == changed_count(0.3, n)
    assert torch.equal(clean.train_x, noisy.train_x)  # the same images, in the same order
    changed = clean.train_y != noisy.train_y
    assert int(changed.sum()) == noisy.label_noise.changed
    assert torch.equal(noisy.train_y[changed], (clean.train_y[changed] + 1) % 10)
    for split in ("val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(clean, split), getattr(noisy, split)), split
    assert noisy.describe()["label_noise"] == {"fraction": 0.3, "kind": "pairflip",
                                               "changed": noisy.label_noise.changed, "n_train": n}


def test_train_size_is_a_seeded_subset_of_the_training_split(tiny_mnist):
    full = load_mnist(_data_cfg(tiny_mnist), seed=0, device="cpu")
    part = load_mnist(_data_cfg(tiny_mnist, train_size=300, label_noise=0.2), seed=0,
                      device="cpu")
    assert part.n_train == 300 and part.label_noise.changed == 60
    assert torch.equal(part.val_y, full.val_y) and torch.equal(part.test_y, full.test_y)
    rows = {tuple(r) for r in full.train_x.tolist()}
    assert all(tuple(r) in rows for r in part.train_x.tolist())  # drawn from the training split
    with pytest.raises(DataError, match="data.train_size"):
        load_mnist(_data_cfg(tiny_mnist, train_size=TINY_TRAIN), seed=0, device="cpu")


@pytest.mark.parametrize("key,value,text", [
    ("data.label_noise", 1.0, "less than 1"), ("data.label_noise", -0.1, "greater than or equal"),
    ("data.label_noise_kind", "uniform", "symmetric"), ("data.train_size", 0, "greater than")])
def test_bad_noise_keys_are_refused(tiny_config, key, value, text):
    with pytest.raises(ConfigError, match=text):
        with_overrides(tiny_config(), {key: value})


def test_noise_is_a_shared_key_of_a_stack(tiny_config):
    base = tiny_config()
    a = with_overrides(base, {"data.label_noise": 0.2})
    b = with_overrides(base, {"data.label_noise": 0.2, "loss.name": "mse"})
    c = with_overrides(base, {"data.label_noise": 0.4})
    assert fusion_key(a) == fusion_key(b) != fusion_key(c)
    assert plan_stacks([a, b, c]) == [[0, 1], [2]]


def test_a_noisy_run_resumed_ends_as_an_uninterrupted_one(tiny_config):
    from ce_lab.training import resume, train
    from tests.helpers import InterruptAt, rows, without_wall

    cfg = tiny_config(**{"data.label_noise": 0.3, "data.train_size": 600, "train.epochs": 2,
                         "log.checkpoint": True})
    full = train(cfg)
    cut = train(cfg, reporter=InterruptAt(15))  # mid-epoch 2 (10 steps an epoch)
    assert cut.status == "interrupted"
    done = resume(cut.run_dir)  # loads the data again: the same subset, the same corruption
    assert done.status == "completed"
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall(rows(done.run_dir / name)) == without_wall(rows(full.run_dir / name))
    meta = json.loads((done.run_dir / "meta.json").read_text())
    assert meta["label_noise"]["changed"] == 180 and meta["label_noise"]["n_train"] == 600


def test_the_report_states_noise_and_gains_only_where_they_are_set(tmp_path):
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.record import load_run
    from tests.run_factory import make_run

    def report(records, name):
        (tmp_path / name).mkdir()
        write_comparison(records, tmp_path / name, plots=False)
        return (tmp_path / name / "report.md").read_text()

    plain = [load_run(make_run(tmp_path / "a", n)) for n in ("ce", "mse")]
    text = report(plain, "c1")
    assert "label_noise" not in text and "init_gain" not in text and "train_size" not in text
    noisy = [load_run(make_run(tmp_path / "b", n, overrides={
        "data.label_noise": 0.2, "model.output_gain": 5.0})) for n in ("ce", "mse")]
    text = report(noisy, "c2")
    assert "data.label_noise=0.2, data.label_noise_kind=symmetric" in text
    assert "model.output_gain=5.0" in text and "init_gain" not in text
