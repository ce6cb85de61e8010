"""ce_lab.suggest: the guess a newcomer's slip gets (issue 19 §4), a name equal but for case first,
then difflib; whole dotted parts of a key only."""

from __future__ import annotations

from ce_lab.losses import loss_names
from ce_lab.suggest import by_last_parts, closest, unknown_name

# --- the guesses ---------------------------------------------------------------------------------


def test_closest_prefers_the_one_name_equal_but_for_case_then_difflib():
    names = loss_names()
    assert closest("MSE", names) == "mse" and closest("Hinge-SQ", names) == "hinge-sq"
    assert closest("msee", names) == "mse" and closest("hinge_sq", names) == "hinge-sq"
    assert closest("Msee", names) == "mse"
    assert closest("cross-entropy-of-doom", names) is None
    assert closest("softmax", names) is None  # double-softmax is not what it means
    assert closest("ab", ["Ab", "aB"]) is None  # two equal but for case: ambiguous, no guess


def test_unknown_name_guesses_or_lists():
    valid = ["ce", "mse", "hinge"]
    assert unknown_name("loss", ["msee"], valid) == "unknown loss 'msee' — did you mean 'mse'?"
    assert unknown_name("loss", ["zzz"], valid) == "unknown loss 'zzz'; valid losses: ce, mse, hinge"
    assert unknown_name("loss", ["msee", "zzz"], valid) == (
        "unknown losses 'msee' (did you mean 'mse'?), 'zzz'; valid losses: ce, mse, hinge")


def test_by_last_parts_matches_whole_parts_only():
    keys = ["optim.lr", "schedule.min_lr", "optim.name", "loss.name"]
    assert by_last_parts("lr", keys) == ["optim.lr"]  # not schedule.min_lr
    assert by_last_parts("LR", keys) == ["optim.lr"]
    assert by_last_parts("name", keys) == ["optim.name", "loss.name"]
    assert by_last_parts("nope", keys) == []
