"""Plain progress lines: members named while they fit on a line, a big stack summarised."""

from __future__ import annotations

import io

from rich.console import Console

from ce_lab.progress import MAX_NAMED, PlainReporter


def _lines(run) -> list[str]:
    out = io.StringIO()
    reporter = PlainReporter(Console(file=out, width=80, force_terminal=False), every=0.0)
    run(reporter)
    return out.getvalue().splitlines()


def test_a_few_members_are_named_with_their_values():
    def run(r):
        r.start(["ce", "mse lr=3.16"], 100)
        r.logged(10, 1, {"ce": 0.30694, "mse lr=3.16": float("nan")})
        r.evaluated(20, {"ce": 0.9, "mse lr=3.16": 0.85})

    start, logged, evaluated = _lines(run)
    assert start == "training ce, mse lr=3.16 for 100 steps"
    assert logged.startswith("step 10/100 epoch 1 loss ce: 0.3069, mse lr=3.16: nan (")
    assert evaluated == "step 20/100 val_acc ce: 0.9000, mse lr=3.16: 0.8500"


def test_a_stack_too_big_for_a_line_shows_its_size_best_and_non_finite_count():
    names = [f"ce lr={i}" for i in range(MAX_NAMED + 20)]
    losses = {n: 1.0 + i for i, n in enumerate(names)}
    losses[names[5]] = 0.25  # the smallest loss is the best
    losses[names[6]] = float("inf")
    accs = {n: 0.5 for n in names} | {names[3]: 0.97}

    def run(r):
        r.start(names, 10)
        r.logged(1, 1, losses)
        r.evaluated(2, accs)

    _, logged, evaluated = _lines(run)
    assert logged.startswith(f"step 1/10 epoch 1 loss {len(names)} members, best ce lr=5: "
                             "0.2500, 1 non-finite (")
    assert evaluated == f"step 2/10 val_acc {len(names)} members, best ce lr=3: 0.9700"
    assert max(len(line) for line in (logged, evaluated)) < 120


def _grid(losses, n_rates):
    return [f"{loss} lr={i}" for loss in losses for i in range(n_rates)]


def test_a_big_stack_of_several_losses_is_counted_per_loss_and_compared_within_each():
    """A --tune-lr grid: the header counts each loss's members instead of naming 28 of them;
    a loss value is compared only with the same loss's (mse's 0.07 is not 'better' than ce's
    0.2), an accuracy with every member's."""
    names = _grid(["ce", "mse", "hinge", "nll-manual"], 7)
    losses = {n: 1.0 for n in names} | {"ce lr=2": 0.2, "mse lr=5": 0.0722, "hinge lr=0": 0.5,
                                         "nll-manual lr=1": 0.3, "nll-manual lr=6": float("nan")}
    accs = {n: 0.5 for n in names} | {"hinge lr=3": 0.98}

    def run(r):
        r.start(names, 20)
        r.logged(1, 1, losses)
        r.evaluated(2, accs)

    start, logged, evaluated = _lines(run)
    assert start == "training 28 members (7 ce, 7 mse, 7 hinge, 7 nll-manual) for 20 steps"
    assert logged.startswith("step 1/20 epoch 1 loss 28 members, lowest per loss: ce lr=2: 0.2000, "
                             "mse lr=5: 0.0722, hinge lr=0: 0.5000, nll-manual lr=1: 0.3000, "
                             "1 non-finite (")
    assert "best" not in logged
    assert evaluated == "step 2/20 val_acc 28 members, best hinge lr=3: 0.9800"


def test_more_losses_than_fit_on_a_line_are_counted_only():
    names = _grid([f"loss{i}" for i in range(MAX_NAMED + 1)], 2)

    def run(r):
        r.start(names, 5)
        r.logged(1, 1, dict.fromkeys(names, 1.0))

    start, logged = _lines(run)
    assert start == f"training {len(names)} members of {MAX_NAMED + 1} losses for 5 steps"
    assert logged.startswith(f"step 1/5 epoch 1 loss {len(names)} members (")


def test_the_bar_counts_a_big_stack_too():
    from ce_lab.progress import BarReporter

    out = io.StringIO()
    reporter = BarReporter(Console(file=out, width=200, force_terminal=True))
    reporter.start(_grid(["ce", "mse"], 7), 10)
    reporter.finish()
    assert "14 members (7 ce, 7 mse)" in out.getvalue() and "lr=3" not in out.getvalue()
