"""``data.val_noise``: the validation labels get the training labels' noise (rate, kind, map) from a
stream of their own, the training labels stay as they were, test labels stay clean; meta.json and
the report say how many validation labels changed; off (the default) changes nothing."""

from __future__ import annotations

import json

import pytest
import torch

from ce_lab.config import DataConfig, with_overrides
from ce_lab.data.loader import load_mnist
from ce_lab.data.noise import changed_count
from ce_lab.errors import ConfigError
from tests.mnist_fixture import TINY_TRAIN, TINY_VAL_SIZE


def _data_cfg(root, **kw) -> DataConfig:
    return DataConfig(root=root, verify_md5=False, val_size=TINY_VAL_SIZE, **kw)


def test_val_noise_corrupts_the_validation_labels_by_the_same_rule(tiny_mnist):
    clean = load_mnist(_data_cfg(tiny_mnist), seed=0, device="cpu")
    train_only = load_mnist(_data_cfg(tiny_mnist, label_noise=0.3, label_noise_kind="pairflip"),
                            seed=0, device="cpu")
    both = load_mnist(_data_cfg(tiny_mnist, label_noise=0.3, label_noise_kind="pairflip",
                                val_noise=True), seed=0, device="cpu")
    # the training labels are those of the run without val_noise: its own stream
    assert torch.equal(both.train_y, train_only.train_y)
    assert torch.equal(both.train_x, train_only.train_x) and torch.equal(both.val_x, clean.val_x)
    changed = both.val_y != clean.val_y
    assert int(changed.sum()) == changed_count(0.3, TINY_VAL_SIZE) == 60
    assert torch.equal(both.val_y[changed], (clean.val_y[changed] + 1) % 10)
    assert torch.equal(both.test_y, clean.test_y)  # test labels always stay clean
    n = TINY_TRAIN - TINY_VAL_SIZE
    assert both.describe()["label_noise"] == {
        "fraction": 0.3, "kind": "pairflip", "changed": changed_count(0.3, n), "n_train": n,
        "val": {"changed": 60, "n_val": TINY_VAL_SIZE}}
    assert "val" not in train_only.describe()["label_noise"]  # off: meta.json as before


def test_val_noise_draws_a_stream_apart_from_the_training_labels(tiny_mnist):
    a = load_mnist(_data_cfg(tiny_mnist, label_noise=0.5, val_noise=True), seed=1, device="cpu")
    b = load_mnist(_data_cfg(tiny_mnist, label_noise=0.5, val_noise=True), seed=1, device="cpu")
    c = load_mnist(_data_cfg(tiny_mnist, label_noise=0.5, val_noise=True), seed=2, device="cpu")
    clean = load_mnist(_data_cfg(tiny_mnist), seed=1, device="cpu")
    assert torch.equal(a.val_y, b.val_y)  # one corruption per seed
    assert int((a.val_y != clean.val_y).sum()) == 100
    assert not torch.equal(a.val_y, c.val_y)
    # symmetric: every wrong label is another class, drawn from the other nine
    wrong = a.val_y != clean.val_y
    assert len(set(a.val_y[wrong].tolist())) > 5


def test_val_noise_asym_flips_the_rounded_fraction_of_each_source_class(tiny_mnist):
    clean = load_mnist(_data_cfg(tiny_mnist), seed=0, device="cpu")
    noisy = load_mnist(_data_cfg(tiny_mnist, label_noise=0.4, label_noise_kind="asym",
                                 noise_map=((1, 2), (3, 4)), val_noise=True), seed=0, device="cpu")
    expected = {c: changed_count(0.4, int((clean.val_y == c).sum())) for c in (1, 3)}
    assert all(expected.values())
    for source, target in ((1, 2), (3, 4)):
        flipped = (clean.val_y == source) & (noisy.val_y != clean.val_y)
        assert int(flipped.sum()) == expected[source]
        assert bool((noisy.val_y[flipped] == target).all())
    other = ~torch.isin(clean.val_y, torch.tensor([1, 3]))
    assert torch.equal(noisy.val_y[other], clean.val_y[other])
    val = noisy.label_noise.to_dict()["val"]
    assert val == {"changed": sum(expected.values()), "n_val": TINY_VAL_SIZE,
                   "changed_per_class": {str(c): n for c, n in expected.items()}}


def test_val_noise_without_label_noise_changes_nothing(tiny_mnist):
    clean = load_mnist(_data_cfg(tiny_mnist), seed=0, device="cpu")
    on = load_mnist(_data_cfg(tiny_mnist, val_noise=True), seed=0, device="cpu")
    assert torch.equal(on.val_y, clean.val_y)
    assert on.describe()["label_noise"]["val"] == {"changed": 0, "n_val": TINY_VAL_SIZE}


def test_a_run_records_it_in_meta_and_the_report_says_so(tiny_config, tmp_path):
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.record import load_run
    from ce_lab.training import train

    runs = [train(tiny_config(**{"data.label_noise": 0.2, "data.val_noise": True,
                                 "data.train_size": 500, "loss.name": name}))
            for name in ("ce", "mae")]
    meta = json.loads((runs[0].run_dir / "meta.json").read_text())
    assert meta["label_noise"]["changed"] == 100 and meta["label_noise"]["n_train"] == 500
    assert meta["label_noise"]["val"] == {"changed": 40, "n_val": TINY_VAL_SIZE}
    (tmp_path / "cmp").mkdir()
    write_comparison([load_run(r.run_dir) for r in runs], tmp_path / "cmp", plots=False)
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "data.val_noise=True" in report
    assert "100/500 training labels and 40/200 validation labels changed (symmetric)" in report


@pytest.mark.parametrize("value", ["sometimes", 2])
def test_a_bad_value_is_refused(tiny_config, value):
    with pytest.raises(ConfigError, match="data.val_noise"):
        with_overrides(tiny_config(), {"data.val_noise": value})
