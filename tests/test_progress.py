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
