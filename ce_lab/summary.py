"""summary.json of a run, derived from the CSV files it wrote (so a resumed run needs no extra state)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ce_lab.runs.files import read_csv_rows
from ce_lab.runs.folder import threshold_key


def _f(text: str) -> float:
    return float(text)  # float() reads nan, inf and -inf as written by runstore.format_value


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(run_dir: Path, *, status: str, loss: str, seed: int, steps: int, examples: int,
              wall_seconds: float, steps_per_epoch: int, thresholds: tuple[float, ...],
              test: dict[str, float] | None, diverged_at: int | None,
              diverged_quantity: str | None, group: str | None) -> dict[str, Any]:
    metrics = read_csv_rows(run_dir / "metrics.csv")
    evals = read_csv_rows(run_dir / "eval.csv")
    last_eval = evals[-1] if evals else None
    val_acc = [(_f(r["val_acc"]), int(r["step"])) for r in evals]
    finite_acc = [(a, s) for a, s in val_acc if math.isfinite(a)]
    best = max(finite_acc, key=lambda t: (t[0], -t[1])) if finite_acc else None

    convergence: dict[str, Any] = {}
    for t in thresholds:
        hit = next((r for r in evals if _f(r["val_acc"]) >= t), None)
        convergence[threshold_key(t)] = None if hit is None else {
            "step": int(hit["step"]), "examples": int(hit["examples"]), "seconds": _f(hit["wall_s"])
        }

    grad_summary = None
    grad_cols = [c for c in (metrics[0].keys() if metrics else []) if c.startswith("grad_norm/")]
    if grad_cols:
        first_epoch = min(int(r["epoch"]) for r in metrics)
        last_epoch = max(int(r["epoch"]) for r in metrics)
        first = [r for r in metrics if int(r["epoch"]) == first_epoch]
        last = [r for r in metrics if int(r["epoch"]) == last_epoch]

        def per_layer(rows):
            return {c.removeprefix("grad_norm/"): _mean([_f(r[c]) for r in rows]) for c in grad_cols}

        grad_summary = {
            "first_epoch": per_layer(first),
            "last_epoch": per_layer(last),
            "logit_grad_norm_start": _mean([_f(r["logit_grad_norm"]) for r in first]),
            "logit_grad_norm_end": _mean([_f(r["logit_grad_norm"]) for r in last]),
        }

    epochs_done = steps / steps_per_epoch if steps_per_epoch else 0.0
    return {
        "status": status,
        "loss": loss,
        "seed": seed,
        "steps": steps,
        "epochs_completed": steps // steps_per_epoch if steps_per_epoch else 0,
        "examples": examples,
        "wall_seconds": wall_seconds,
        "seconds_per_epoch": wall_seconds / epochs_done if epochs_done else None,
        "final": {
            "val_loss": _f(last_eval["val_loss"]) if last_eval else None,
            "val_acc": _f(last_eval["val_acc"]) if last_eval else None,
            "test_loss": test["loss"] if test else None,
            "test_acc": test["acc"] if test else None,
        },
        "best_val_acc": best[0] if best else None,
        "best_val_step": best[1] if best else None,
        "thresholds": list(thresholds),
        "convergence": convergence,
        "grad_summary": grad_summary,
        "diverged_at": diverged_at,
        "diverged_quantity": diverged_quantity,
        "group": group,
    }
