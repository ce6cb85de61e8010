"""The thread policy (ce_lab/threads.py): its decisions on given inputs, the wait policy set before
torch loads, the load it samples, and --threads / threads= reaching torch from the CLI and API."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import ce_lab
from ce_lab import threads
from tests.mnist_fixture import TINY_VAL_SIZE

NO_ENV: dict[str, str] = {}


def default(cpus: int, share: int | None = None, env=NO_ENV) -> int:
    decision = threads.decide(requested=None, env=env, cpus=cpus, share=share)
    assert decision.source == "default"
    return decision.threads


def test_an_explicit_request_wins_over_the_environment_and_the_share():
    d = threads.decide(requested=3, env={"OMP_NUM_THREADS": "8"}, cpus=2, share=1)
    assert (d.threads, d.source) == (3, "--threads")


def test_omp_num_threads_wins_over_the_default_and_is_read_as_torch_reads_it():
    for value, expected in (("4", 4), ("6,2", 6), (" 5 ", 5)):
        d = threads.decide(requested=None, env={"OMP_NUM_THREADS": value}, cpus=2)
        assert (d.threads, d.source) == (expected, "OMP_NUM_THREADS")
    for unusable in ("0", "-2", "abc", "2.5", ""):  # torch ignores these too: the default decides
        assert default(2, env={"OMP_NUM_THREADS": unusable}) == 2


def test_the_default_is_every_usable_cpu_where_the_load_is_not_known():
    assert default(1) == 1
    assert default(2) == 2
    assert default(16) == 16


def test_the_default_leaves_out_the_cpus_other_processes_keep_busy():
    follow = lambda cpus, others, share=None: threads.decide(  # noqa: E731
        requested=None, env=NO_ENV, cpus=cpus, share=share, others=others).threads
    assert follow(2, 0.0) == 2
    assert follow(2, 0.45) == 2  # under SLACK (half a CPU) takes no thread away: a 50 ms
    assert follow(2, 0.55) == 1  # check's counters are a few ticks, so a blip is 0.1-0.2
    assert follow(2, 0.7) == 1  # a CPU-bound process beside two spinning threads gets ~2/3
    assert follow(2, 2.0) == 1  # never fewer than one
    assert follow(16, 3.5) == 13
    assert follow(8, 0.0, share=2) == 2  # a batch job's share still caps it
    assert follow(8, 7.0, share=2) == 1
    # A fixed count does not follow the load.
    assert threads.decide(requested=2, env=NO_ENV, cpus=2, others=2.0).threads == 2
    assert threads.decide(requested=None, env={"OMP_NUM_THREADS": "2"}, cpus=2, others=2.0).threads == 2


def test_a_batch_job_takes_at_most_its_share_unless_threads_says_otherwise():
    assert default(8, share=2) == 2
    assert default(2, share=1) == 1
    assert default(2, share=4) == 2  # a share beyond the CPUs gives no more than the CPUs
    d = threads.decide(requested=None, env={"OMP_NUM_THREADS": "8"}, cpus=8, share=4)
    assert (d.threads, d.source) == (4, "OMP_NUM_THREADS")
    d = threads.decide(requested=None, env={"OMP_NUM_THREADS": "2"}, cpus=8, share=4)
    assert (d.threads, d.source) == (2, "OMP_NUM_THREADS")
    assert threads.decide(requested=6, env=NO_ENV, cpus=8, share=4).threads == 6


def test_a_fixed_count_waits_passively_and_the_default_spins_unless_the_environment_says(
        monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    assert threads.wait_policy({}) is None  # follows the load: libgomp's own (spin a while)
    assert threads.wait_policy({"OMP_NUM_THREADS": "2"}) == "PASSIVE"
    assert threads.wait_policy({}, 2) == "PASSIVE"
    assert threads.wait_policy({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}) is None
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.child_env() == {}  # what batch gives its workers by default
    assert threads.child_env(3) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3",
                                    "MKL_NUM_THREADS": "3"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert threads.child_env(3) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


@pytest.mark.parametrize("given, count, expected", [
    (None, None, "unset True"), (None, "2", "PASSIVE True"), ("ACTIVE", "2", "ACTIVE True"),
    (None, "--threads", "PASSIVE True")])
def test_prepare_sets_the_wait_policy_before_torch_loads(given, count, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if given:
        env["OMP_WAIT_POLICY"] = given
    if count not in (None, "--threads"):
        env["OMP_NUM_THREADS"] = count
    call = "threads.configure(2)" if count == "--threads" else "threads.configure()"
    code = (f"import os, sys; from ce_lab import threads; {call}; ok = threads.prepare(); "
            "import torch; print(os.environ.get('OMP_WAIT_POLICY', 'unset'), ok)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == expected


def test_prepare_says_when_torch_came_first():
    import torch  # noqa: F401  (this test process has loaded it already)

    assert threads.prepare() is False


def test_threads_below_one_are_refused():
    with pytest.raises(ce_lab.ParamError, match=r"^threads must be a positive integer, got 0$"):
        ce_lab.train(threads=0)
    with pytest.raises(ce_lab.ParamError, match=r"^threads must be a positive integer, got '2'$"):
        ce_lab.compare(["ce"], threads="2")


# --- --threads reaches torch -------------------------------------------------------------------

@pytest.fixture
def small(tiny_mnist):
    return {"data.root": str(tiny_mnist), "data.verify_md5": False, "data.val_size": TINY_VAL_SIZE,
            "model.hidden": [16], "device": "cpu", "log.progress": "none"}


def test_the_api_trains_with_the_threads_asked_and_then_forgets_the_request(small, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ce_lab.train(max_steps=3, overrides=small, threads=2)
    assert torch.get_num_threads() == 2
    assert (threads._requested, threads._share) == (None, None)
    ce_lab.compare(["ce", "mse"], max_steps=3, overrides=small, plots=False)
    assert torch.get_num_threads() == 1  # OMP_NUM_THREADS, with no threads= given
    ce_lab.compare(["ce", "mse"], max_steps=3, overrides=small, plots=False, threads=3)
    assert torch.get_num_threads() == 3


# --- the default follows the load while a stack trains ------------------------------------------

@pytest.fixture
def default_policy(monkeypatch):
    """The default policy on a 2-CPU machine, whatever this one is; torch's count restored."""
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_share", None)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_stack_starts_with_one_thread_and_follows_the_load_as_it_trains(default_policy,
                                                                        monkeypatch):
    import torch

    from ce_lab import cpu_load

    # Counters as the kernel would give them, 10 ticks per CPU apart: other processes busy for
    # 0, then 0, then 2 x 10 = 20 (two CPUs' worth), then 8 (0.8 of one) ticks, then none again.
    others = iter([0, 0, 20, 8, 0])
    state = {"busy": 0, "total": 0}

    def counters(cpus=None):
        state["busy"] += next(others)
        state["total"] += 20
        return cpu_load.Snapshot(state["busy"], state["total"], 0, 2)

    monkeypatch.setattr(cpu_load, "snapshot", counters)
    t = threads.apply()
    # One thread until a check has seen the load (it takes no CPU from anyone meanwhile).
    assert (t.decision.threads, t.follows_load, torch.get_num_threads()) == (1, True, 1)
    assert t.due - time.monotonic() <= threads.FIRST_CHECK_S
    t.tick()  # not due yet: no counters read
    assert t.decision.threads == 1
    seen = []
    for _ in range(4):
        t.due = 0.0
        t.tick()
        seen.append(torch.get_num_threads())
    assert seen == [2, 1, 1, 2]
    assert t.gap == 0.5  # 0.05, then doubling after every check, to at most 0.5


def test_a_check_too_soon_to_tell_lets_the_window_grow(default_policy, monkeypatch):
    from ce_lab import cpu_load

    totals = iter([0, 2, 6])  # 1 tick per CPU after the start (too few), then 3
    monkeypatch.setattr(cpu_load, "snapshot",
                        lambda cpus=None: cpu_load.Snapshot(0, next(totals), 0, 2))
    t = threads.apply()
    t.due = 0.0
    t.tick()
    assert (t.decision.threads, t.last.total) == (1, 0)  # nothing decided; the window kept
    t.due = 0.0
    t.tick()
    assert (t.decision.threads, t.last.total) == (2, 6)


def test_a_fixed_count_reads_no_counters(monkeypatch):
    from ce_lab import cpu_load

    def refuse(cpus=None):
        raise AssertionError("read the counters for a fixed count")

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(cpu_load, "snapshot", refuse)
    t = threads.apply()
    t.due = 0.0
    t.tick()
    assert (t.decision.threads, t.decision.source, t.follows_load) == (1, "OMP_NUM_THREADS", False)


# --- and so no number may depend on the thread count ---------------------------------------------

def test_squared_gradient_norms_have_the_same_bits_with_any_thread_count():
    """A BLAS dot over the 784x256 gradient (what a lone run used) moved its last bits with the
    thread count; the row-by-row reduction does not."""
    import torch

    from ce_lab.nn.layers import StackedLinear

    before = torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    try:
        for members, shared in ((1, True), (3, True), (1, False), (3, False)):
            layer = StackedLinear(members, 784, 256, shared_input=shared)
            v = layer.prepare()
            v.grad_weight.copy_(torch.randn(v.grad_weight.shape, generator=gen))
            v.grad_bias.copy_(torch.randn(v.grad_bias.shape, generator=gen))
            got = []
            for n in (1, 2, 3, 4):
                torch.set_num_threads(n)
                got.append(torch.stack(layer.squared_grad_norms()).reshape(-1))
            assert all(torch.equal(got[0], g) for g in got[1:]), (members, shared, got)
            exact = v.grad_weight.double().square().reshape(-1, members, 256).sum((0, 2)) if shared \
                else v.grad_weight.double().square().sum((1, 2))
            torch.testing.assert_close(got[0][0].double(), exact[0], rtol=1e-5, atol=0)
    finally:
        torch.set_num_threads(before)


def test_a_run_logs_the_same_numbers_with_one_thread_and_with_two(small, tmp_path):
    """Every column of metrics.csv and eval.csv but the clock, lone and fused, with fc1's gradient
    (784 x 64) large enough for torch to split a whole-tensor reduction across threads.

    What ce-lab builds (the norms, the evaluation) is thread-independent by construction; the
    products are the BLAS's: where its kernels give the training steps the same bits with 1 and 2
    threads (the ``loss`` column, as on the development machine's oneMKL), every logged number
    must be equal; where they do not, within float32 rounding (docs/fusion.md)."""
    import pandas as pd

    logged = {}
    for n in (1, 2):
        over = {**small, "model.hidden": [64], "out_dir": str(tmp_path / f"t{n}")}
        runs = [ce_lab.train(max_steps=30, overrides=over, threads=n)]
        runs += list(ce_lab.compare(["ce", "mse"], max_steps=30, overrides=over, plots=False,
                                    threads=n).runs)
        logged[n] = [(pd.read_csv(r.dir / name).drop(columns="wall_s"))
                     for r in runs for name in ("metrics.csv", "eval.csv")]
    metrics_1, metrics_2 = logged[1][::2], logged[2][::2]
    exact = all(a["loss"].equals(b["loss"]) for a, b in zip(metrics_1, metrics_2))
    for one, two in zip(logged[1], logged[2]):
        if exact:
            pd.testing.assert_frame_equal(one, two, check_exact=True)
        else:
            pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-3, atol=1e-5)
