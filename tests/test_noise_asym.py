"""Asymmetric (class-dependent) label noise, ``data.label_noise_kind: asym`` (ce_lab/data/noise.py):
the literature's maps for MNIST and Fashion-MNIST, a map of one's own, exact counts per class."""

from __future__ import annotations

import pytest
import torch
import yaml

from ce_lab.config import check_trains, resolve_config
from ce_lab.data.loader import load_mnist
from ce_lab.data.noise import corrupt_labels
from ce_lab.data.sets import FASHION_NOISE_MAP, MNIST_NOISE_MAP
from ce_lab.errors import ConfigError
from tests.mnist_fixture import TINY_VAL_SIZE


def balanced(n_per_class: int) -> torch.Tensor:
    return torch.arange(10 * n_per_class, dtype=torch.int64) % 10


def test_the_literature_maps():
    # SCE / APL on MNIST: 7 -> 1, 2 -> 7, 5 <-> 6, 3 -> 8
    assert MNIST_NOISE_MAP == {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
    # Zhang & Sabuncu on Fashion-MNIST: boot -> sneaker, sneaker -> sandal, pullover -> shirt,
    # coat <-> dress
    assert FASHION_NOISE_MAP == {9: 7, 7: 5, 2: 6, 4: 3, 3: 4}


def test_mnist_map_changes_exactly_the_rounded_fraction_of_each_source_class():
    y = balanced(100)  # 100 of each class
    noisy, info = corrupt_labels(y, 0.25, "asym", 10, seed=3, noise_map=MNIST_NOISE_MAP)
    assert info.per_class == {2: 25, 3: 25, 5: 25, 6: 25, 7: 25}
    assert info.changed == 125 == int((noisy != y).sum())
    for source, target in MNIST_NOISE_MAP.items():
        flipped = (y == source) & (noisy != y)
        assert int(flipped.sum()) == 25
        assert bool((noisy[flipped] == target).all())
    untouched = ~torch.isin(y, torch.tensor(list(MNIST_NOISE_MAP)))
    assert torch.equal(noisy[untouched], y[untouched])  # 0, 1, 4, 8, 9 keep their labels
    # 5 <-> 6 swaps disjoint sets: 75 fives stay, 25 sixes became fives
    assert int((noisy == 5).sum()) == 100 and int((noisy == 1).sum()) == 125
    assert info.to_dict()["map"] == {"2": 7, "3": 8, "5": 6, "6": 5, "7": 1}


def test_counts_round_half_up_per_class_and_the_draw_follows_the_seed():
    y = torch.cat([torch.full((7,), 7), torch.full((3,), 2), torch.zeros(5, dtype=torch.int64)])
    a, info = corrupt_labels(y, 0.5, "asym", 10, seed=1, noise_map={7: 1, 2: 7})
    assert info.per_class == {2: 2, 7: 4}  # 1.5 -> 2, 3.5 -> 4
    assert info.changed == 6 and info.n_train == 15
    b, _ = corrupt_labels(y, 0.5, "asym", 10, seed=1, noise_map={7: 1, 2: 7})
    assert torch.equal(a, b)
    others = [corrupt_labels(y, 0.5, "asym", 10, seed=s, noise_map={7: 1, 2: 7})[0]
              for s in range(2, 12)]
    assert any(not torch.equal(a, o) for o in others)


def test_no_fraction_no_change_and_no_map_is_an_error():
    y = balanced(3)
    same, info = corrupt_labels(y, 0.0, "asym", 10, seed=0, noise_map=MNIST_NOISE_MAP)
    assert same is y and info.changed == 0
    with pytest.raises(ValueError, match="needs a class map"):
        corrupt_labels(y, 0.2, "asym", 10, seed=0)


def test_the_loader_applies_the_sets_map_and_records_it(tiny_mnist):
    cfg = resolve_config(None, [f"data.root={tiny_mnist}", "data.verify_md5=false",
                                f"data.val_size={TINY_VAL_SIZE}", "data.label_noise=0.4",
                                "data.label_noise_kind=asym"])
    data = load_mnist(cfg.data, 0, "cpu")
    clean = load_mnist(cfg.data.model_copy(update={"label_noise": 0.0}), 0, "cpu")
    info = data.label_noise.to_dict()
    assert info["kind"] == "asym" and info["map"] == {"2": 7, "3": 8, "5": 6, "6": 5, "7": 1}
    per = {int(k): v for k, v in info["changed_per_class"].items()}
    for c, k in per.items():  # exactly floor(0.4 * n_c + 0.5) of each source class
        n_c = int((clean.train_y == c).sum())
        assert k == int(0.4 * n_c + 0.5)
    assert int((data.train_y != clean.train_y).sum()) == sum(per.values()) == info["changed"]
    assert torch.equal(data.val_y, clean.val_y) and torch.equal(data.test_y, clean.test_y)


def test_a_map_of_ones_own(tiny_mnist):
    cfg = resolve_config(None, [f"data.root={tiny_mnist}", "data.verify_md5=false",
                                f"data.val_size={TINY_VAL_SIZE}", "data.label_noise=0.5",
                                "data.label_noise_kind=asym", "data.noise_map={0: 9}"])
    assert cfg.data.noise_map == ((0, 9),) and cfg.data.asym_map() == {0: 9}
    data = load_mnist(cfg.data, 0, "cpu")
    clean = load_mnist(cfg.data.model_copy(update={"label_noise": 0.0}), 0, "cpu")
    zeros = int((clean.train_y == 0).sum())
    assert data.label_noise.to_dict()["map"] == {"0": 9}
    assert data.label_noise.per_class == {0: int(0.5 * zeros + 0.5)}
    assert int((data.train_y == 0).sum()) == zeros - int(0.5 * zeros + 0.5)


def test_a_map_round_trips_and_an_override_replaces_it():
    from ce_lab.config import to_yaml, validate, with_overrides

    cfg = resolve_config(None, ["data.noise_map={7: 1, 2: 7}"])
    assert cfg.data.noise_map == ((2, 7), (7, 1))
    assert validate(yaml.safe_load(to_yaml(cfg))) == cfg
    assert with_overrides(cfg, {"data.noise_map": {3: 8}}).data.asym_map() == {3: 8}
    assert resolve_config(None, ["data.noise_map=[[3, 8]]"]).data.asym_map() == {3: 8}


@pytest.mark.parametrize("sets,text", [
    (["data.noise_map={3: 3}"], "3: 3 is no flip"),
    (["data.noise_map=[[3, 4], [3, 5]]"], "a class appears twice as a source"),
    (["data.noise_map={a: 4}"], "a map of class numbers"),
    (["data.noise_map={}"], "an empty map changes no label"),
    (["data.label_noise_kind=asym", "data.label_noise=0.2", "data.noise_map={1: 12}"],
     "class 12 does not exist (mnist has 10 classes"),
    (["data.name=kmnist", "data.label_noise_kind=asym", "data.label_noise=0.2"],
     "kmnist has no standard class map; give data.noise_map"),
])
def test_bad_maps_are_config_errors(sets, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(")):
        check_trains(resolve_config(None, sets))
