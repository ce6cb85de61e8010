"""Synthetic run folders in the exact on-disk format of a real run (docs/files.md).

The numbers are chosen by the test (when each threshold is reached, final accuracies, gradient
norms), so table, statistics and plots can be checked against known values without training.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ce_lab.config import RunConfig, to_yaml, with_overrides
from ce_lab.runs.formats import FORMAT
from ce_lab.summary import val_acc_auc

PARAMS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")  # hidden=(256,): two layers


def _cell(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def make_run(
    out_dir: Path,
    loss: str = "ce",
    seed: int = 0,
    *,
    reach: Mapping[float, int | None] | None = None,
    steps: int = 600,
    final_val_acc: float = 0.96,
    best_val_acc: float | None = None,
    test_acc: float | None = 0.955,
    grad_early: float = 0.5,
    grad_late: float = 0.05,
    logit_start: float = 0.9,
    logit_end: float = 0.1,
    status: str = "completed",
    diverged_at: int | None = None,
    grad_stats: bool = True,
    group: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    started: str = "2026-11-23T10:00:00+00:00",
    name: str | None = None,
    flags: list[str] | None = None,
    old_grad_keys: bool = False,
    label_noise: Mapping[str, Any] | None = None,
) -> Path:
    """Write one finished run folder under ``out_dir``; returns its path.

    ``reach``: threshold -> the step validation accuracy first reached it (None: never). Eval rows
    are written every 50 steps, so use multiples of 50. From ``diverged_at`` on, metric rows hold
    nan loss and inf gradient norms, as a real diverged run writes them. With data.val_size=0 in
    ``overrides`` there is no evaluation, as in a real run. ``flags``: summary.json "flags" (None:
    no key, as in runs written before it). ``old_grad_keys``: grad_summary as runs wrote it before
    the early/late windows (first_epoch/last_epoch, logit_grad_norm_start/_end).
    """
    reach = dict(reach if reach is not None else {0.9: 100, 0.95: 300, 0.97: None})
    thresholds = sorted(reach)
    cfg = with_overrides(RunConfig(), {
        "seed": seed, "loss.name": loss, "out_dir": str(out_dir), "device": "cpu",
        "log.thresholds": thresholds, "log.grad_stats": grad_stats, "log.log_every": 10,
        "log.eval_every": 50, **(overrides or {}),
    })
    batch = cfg.train.batch_size
    run_id = name or f"20261123-100000-{loss}-{secrets.token_hex(2)}"
    folder = Path(out_dir) / run_id
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")

    meta = {
        # a folder with old_grad_keys is of format 0, which had no key
        **({} if old_grad_keys else {"format": FORMAT}),
        "kind": "run", "run_id": run_id, "status": status, "group": group, "fused_with": None,
        "command": f"ce-lab train --loss {loss}", "argv": ["train", "--loss", loss],
        "versions": {"python": "3.11", "torch": "2.x", "ce_lab": "0.1.0"}, "device": "cpu",
        "host": "test", "started": started, "ended": started, "git_commit": None,
        "label_noise": dict(label_noise) if label_noise is not None else None,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    squashes = loss in ("mse", "bce")
    header = ["step", "epoch", "examples", "wall_s", "lr", "loss", "acc"]
    if grad_stats:
        header += [f"grad_norm/{p}" for p in PARAMS] + ["grad_norm/total", "logit_grad_norm"]
        header += [f"update_ratio/{p}" for p in PARAMS]
        if squashes:
            header += ["saturated_frac", "saturated_wrong_frac", "saturated_right_frac"]
    rows = []
    for step in range(10, steps + 1, 10):
        bad = diverged_at is not None and step >= diverged_at
        frac = step / steps
        g = grad_early + (grad_late - grad_early) * frac
        row = {"step": step, "epoch": 1 + step // 1000, "examples": step * batch,
               "wall_s": step * 0.01, "lr": cfg.optim.lr,
               "loss": math.nan if bad else 2.3 * math.exp(-3 * frac),
               "acc": math.nan if bad else 0.5 + 0.45 * frac}
        for p in PARAMS:
            row[f"grad_norm/{p}"] = math.inf if bad else g
            row[f"update_ratio/{p}"] = math.nan if bad else 1e-3
        row["grad_norm/total"] = math.inf if bad else 2 * g
        row["logit_grad_norm"] = math.nan if bad else logit_start + (logit_end - logit_start) * frac
        row["saturated_frac"] = 0.1
        row["saturated_wrong_frac"] = 0.02
        row["saturated_right_frac"] = 0.08
        rows.append(",".join(_cell(row[h]) if isinstance(row[h], float) else str(row[h])
                             for h in header))
    (folder / "metrics.csv").write_text(",".join(header) + "\n" + "\n".join(rows) + "\n",
                                        encoding="utf-8")

    has_val = cfg.data.val_size != 0  # null: the default split, which has images
    eval_rows = []
    evals: list[tuple[int, float]] = []  # (examples, val_acc)
    for step in range(50, steps + 1, 50) if has_val else ():
        hit = [t for t in thresholds if reach[t] is not None and step >= reach[t]]
        acc = (max(hit) + 0.001) if hit else 0.5 + 0.3 * step / steps
        if diverged_at is not None and step >= diverged_at:
            acc = 0.098
        evals.append((step * batch, acc))
        eval_rows.append(f"{step},{1 + step // 1000},{step * batch},{_cell(step * 0.01)},"
                         f"{_cell(0.3)},{_cell(acc)}")
    (folder / "eval.csv").write_text(
        "step,epoch,examples,wall_s,val_loss,val_acc\n" + "".join(r + "\n" for r in eval_rows),
        encoding="utf-8")

    grad_summary = None
    if grad_stats:
        first = {p: grad_early for p in PARAMS} | {"total": 2 * grad_early}
        last = {p: grad_late for p in PARAMS} | {"total": 2 * grad_late}
        k = -(-len(rows) // 10)  # the first and last tenth of the logged rows, as summary.py
        grad_summary = {"early": first, "late": last, "logit_grad_norm_early": logit_start,
                        "logit_grad_norm_late": logit_end, "early_steps": [10, 10 * k],
                        "late_steps": [10 * (len(rows) - k + 1), 10 * len(rows)]}
        if old_grad_keys:
            grad_summary = {"first_epoch": first, "last_epoch": last,
                            "logit_grad_norm_start": logit_start, "logit_grad_norm_end": logit_end}
    summary = {
        "status": status, "loss": loss, "seed": seed, "steps": steps, "epochs_completed": 1,
        "examples": steps * batch, "wall_seconds": steps * 0.01, "seconds_per_epoch": steps * 0.01,
        "final": {"val_loss": 0.3 if has_val else None,
                  "val_acc": final_val_acc if has_val else None, "test_loss": 0.31,
                  "test_acc": test_acc},
        "best_val_acc": None if not has_val else (
            best_val_acc if best_val_acc is not None else final_val_acc),
        "best_val_step": steps if has_val else None,
        "val_acc_auc": val_acc_auc([x for x, _ in evals], [a for _, a in evals]),
        "thresholds": thresholds,
        "convergence": {
            f"{t:.2f}": None if reach[t] is None or not has_val else {
                "step": reach[t], "examples": reach[t] * batch, "seconds": reach[t] * 0.01}
            for t in thresholds
        },
        "grad_summary": grad_summary,
        "diverged_at": diverged_at,
        "diverged_quantity": "loss" if diverged_at is not None else None,
        "group": group,
        **({} if flags is None else {"flags": list(flags)}),
    }
    (folder / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2),
                                         encoding="utf-8")
    return folder
