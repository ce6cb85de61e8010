"""ce_lab.plan: entries -> stacks (the fusion rule) -> tasks, and the split for idle workers.
No training: plans are made from configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ce_lab.config import RunConfig, with_overrides
from ce_lab.plan import Entry, Split, make_plan, plan_runs
from ce_lab.training.fusion import fusable, plan_stacks


def configs(losses=("ce", "mse", "hinge", "nll-manual"), seeds=(0,), **overrides):
    base = with_overrides(RunConfig(), overrides) if overrides else RunConfig()
    return [with_overrides(base, {"loss.name": loss, "seed": s}) for s in seeds for loss in losses]


def sizes(plan):
    return [len(t.stack.entries) for t in plan.tasks]


def test_one_seed_over_losses_is_one_stack_whatever_else_the_members_vary():
    cfgs = configs(losses=("ce", "mse"))
    cfgs += [with_overrides(c, {"optim.lr": 0.5, "schedule.name": "cosine"}) for c in cfgs]
    plan = plan_runs(cfgs)
    assert [t.stack.indices for t in plan.tasks] == [[0, 1, 2, 3]]
    assert plan.tasks[0].task_id == "task-000-0-1-2-3" and plan.tasks[0].stack.kind == "train"
    assert plan.rule_stacks == 1 and plan.stack_of() == {i: (0, 4) for i in range(4)}


def test_stacks_are_the_fusion_rules_and_longest_first():
    cfgs = configs(losses=("ce", "mse"), seeds=(0, 1)) + [
        with_overrides(RunConfig(), {"model.hidden": [8]})]  # shares a stack with nothing
    plan = plan_runs(cfgs, max_members=3)
    assert plan.rule_stacks == 3
    assert [t.stack.indices for t in plan.tasks] == [[0, 1], [2, 3], [4]]
    assert sorted(map(sorted, (t.stack.indices for t in plan.tasks))) == sorted(
        plan_stacks(cfgs, 3))  # the same rule train_paired applies
    big = configs(seeds=(0,)) * 3  # 12 members that may share a stack
    assert sizes(plan_runs(big, max_members=5)) == [5, 5, 2]


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8, None])
@pytest.mark.parametrize("split", list(Split))
def test_every_entry_is_in_exactly_one_fusable_stack(workers, split):
    cfgs = configs(seeds=(0, 1, 2)) + configs(seeds=(0,), **{"model.hidden": [8]})
    plan = plan_runs(cfgs, workers=workers, max_members=3, split=split)
    assert sorted(i for t in plan.tasks for i in t.stack.indices) == list(range(len(cfgs)))
    assert all(fusable(t.stack.configs) and len(t.stack.entries) <= 3 for t in plan.tasks)
    assert [t.number for t in plan.tasks] == list(range(len(plan.tasks)))


def test_when_idle_splits_only_while_workers_would_sit_idle():
    cfgs = configs()  # one stack of 4
    assert sizes(plan_runs(cfgs, workers=1)) == [4]
    assert sizes(plan_runs(cfgs, workers=2)) == [2, 2]
    assert sizes(plan_runs(cfgs, workers=3)) == [2, 1, 1]
    assert sizes(plan_runs(cfgs, workers=8)) == [1, 1, 1, 1]  # a stack of 1 cannot be split
    three = configs(seeds=(0, 1, 2))  # three stacks of 4 on two workers: a last round of one
    assert sizes(plan_runs(three, workers=2)) == [4, 4, 2, 2]
    assert sizes(plan_runs(three, workers=3)) == [4, 4, 4]  # no worker idles: kept whole


def test_never_and_an_unknown_number_of_workers_keep_stacks_whole():
    cfgs = configs()
    assert sizes(plan_runs(cfgs, workers=4, split=Split.never)) == [4]
    assert sizes(plan_runs(cfgs, workers=4, split="never")) == [4]
    assert sizes(plan_runs(cfgs, workers=None)) == [4]  # Ray without --jobs


def test_resumes_are_alone_first_and_count_as_work_for_a_worker(tmp_path):
    cfgs = configs()
    entries = [Entry(7, cfgs[0], resume=tmp_path / "run-a")] + [
        Entry(i, c) for i, c in enumerate(cfgs[1:], start=1)]
    plan = make_plan(entries, workers=2)
    assert [(t.stack.kind, t.stack.indices) for t in plan.tasks] == [
        ("resume", [7]), ("train", [1, 2, 3])]  # two tasks for two workers: nothing split
    assert plan.tasks[0].stack.entries[0].resume == Path(tmp_path / "run-a")
    assert plan.describe() == ("plan: 2 tasks for 2 workers: 1 resumed run; 1 stack by the "
                               "fusion rule (at most 32 members), none split (split-stacks "
                               "when-idle: no worker would sit idle)")


def test_no_fusion_trains_every_entry_alone():
    plan = plan_runs(configs(), workers=2, fuse=False)
    assert sizes(plan) == [1, 1, 1, 1] and plan.rule_stacks == 4
    assert plan.describe() == "plan: 4 tasks for 2 workers: 4 entries, each alone (no fusion)"


def test_describe_states_the_split_decision():
    cfgs = configs(seeds=(0, 1, 2))
    assert plan_runs(cfgs, workers=2).describe() == (
        "plan: 4 tasks for 2 workers: 3 stacks by the fusion rule (at most 32 members), split "
        "into 4 for workers that would sit idle (split-stacks when-idle)")
    assert plan_runs(cfgs, workers=2, split="never").describe() == (
        "plan: 3 tasks for 2 workers: 3 stacks by the fusion rule (at most 32 members), kept "
        "whole (split-stacks never)")
    assert plan_runs(cfgs, workers=None).describe() == (
        "plan: 3 tasks for as many workers as the cluster fits: 3 stacks by the fusion rule (at "
        "most 32 members), kept whole (split-stacks when-idle needs a number of workers)")
    singles = configs(losses=("ce",), seeds=(0, 1, 2))
    assert plan_runs(singles, workers=2).describe().endswith(
        "none split (split-stacks when-idle: no stack has 2 members)")
    assert plan_runs([], workers=2).describe() == "plan: nothing to train"


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="workers"):
        plan_runs(configs(), workers=0)
    with pytest.raises(ValueError, match="max_members"):
        plan_runs(configs(), max_members=0)
    with pytest.raises(ValueError, match="max_members"):
        plan_runs(configs(), max_members=0, fuse=False)
    with pytest.raises(ValueError):
        plan_runs(configs(), split="sometimes")
