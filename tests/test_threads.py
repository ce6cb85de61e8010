"""The thread policy (ce_lab/threads.py): its decisions on given inputs, the wait policy set before
torch loads, the load it samples, and --threads / threads= reaching torch from the CLI and API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ce_lab
from ce_lab import threads
from ce_lab.cli.app import app
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


def test_the_default_is_every_usable_cpu():
    assert default(1) == 1
    assert default(2) == 2
    assert default(16) == 16


def test_a_batch_job_takes_at_most_its_share_unless_threads_says_otherwise():
    assert default(8, share=2) == 2
    assert default(2, share=1) == 1
    assert default(2, share=4) == 2  # a share beyond the CPUs gives no more than the CPUs
    d = threads.decide(requested=None, env={"OMP_NUM_THREADS": "8"}, cpus=8, share=4)
    assert (d.threads, d.source) == (4, "OMP_NUM_THREADS")
    d = threads.decide(requested=None, env={"OMP_NUM_THREADS": "2"}, cpus=8, share=4)
    assert (d.threads, d.source) == (2, "OMP_NUM_THREADS")
    assert threads.decide(requested=6, env=NO_ENV, cpus=8, share=4).threads == 6


def test_idle_threads_wait_passively_unless_the_environment_says_otherwise(monkeypatch):
    assert threads.wait_policy({}) == "PASSIVE"
    assert threads.wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}) is None
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads.child_env() == {"OMP_WAIT_POLICY": "PASSIVE"}  # what batch gives its workers
    assert threads.child_env(3) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3",
                                    "MKL_NUM_THREADS": "3"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert threads.child_env() == {}


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE True"), ("ACTIVE", "ACTIVE True")])
def test_prepare_sets_the_wait_policy_before_torch_loads(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys; from ce_lab import threads; ok = threads.prepare(); import torch; "
            "print(os.environ['OMP_WAIT_POLICY'], ok)")
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


def test_the_cli_trains_with_the_threads_asked(cli, tiny_sets, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # A command's request lasts for its process; here that is the test's: put it back after.
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_share", None)
    args = ["--set", "train.max_steps=3", *sum((["--set", s] for s in tiny_sets()), [])]
    result = cli.invoke(app, ["train", "--threads", "2", *args])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2
    result = cli.invoke(app, ["compare", "--losses", "ce,mse", "--no-plots", "--threads", "3", *args])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 3
    result = cli.invoke(app, ["train", "--threads", "0", *args])
    assert result.exit_code == 2 and "--threads" in result.output


def test_threads_is_refused_where_compare_trains_nothing(cli, tmp_path):
    result = cli.invoke(app, ["compare", "--last", "2", "--threads", "2", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--threads only apply when compare trains" in " ".join(result.output.split())
