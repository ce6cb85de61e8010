"""Shell habits: completion (Typer's protocol, as bash and zsh call it) of loss names, config
keys after --set and run folders; ``ce-lab train --json``."""

from __future__ import annotations

import json

import pytest

from ce_lab.cli.app import app
from ce_lab.losses import loss_names
from tests.run_factory import make_run


def complete(cli, line: str) -> list[str]:
    """What bash completes for ``line`` (the word being typed is the last one, maybe empty)."""
    words = line.split(" ")
    result = cli.invoke(app, [], prog_name="ce-lab", env={
        "_CE_LAB_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_show_completion_prints_the_script_for_the_shell(cli):
    result = cli.invoke(app, ["--show-completion", "bash"], prog_name="ce-lab")
    assert result.exit_code == 0, result.output
    assert "_CE_LAB_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _ce_lab_completion ce-lab" in result.stdout
    assert "--install-completion" in cli.invoke(app, ["--help"]).stdout


def test_loss_names_complete(cli):
    assert complete(cli, "ce-lab train --loss h") == [n for n in loss_names() if n.startswith("h")]
    assert complete(cli, "ce-lab compare --losses ce,hinge-") == ["ce,hinge-sq"]
    assert "mse" in complete(cli, "ce-lab runs --loss ")


def test_config_keys_complete_after_set(cli):
    assert complete(cli, "ce-lab train --set optim.l") == ["optim.lr="]
    keys = complete(cli, "ce-lab compare --set log.")
    assert "log.thresholds=" in keys and "log.tensorboard=" in keys
    assert complete(cli, "ce-lab train --set loss.name=ms") == [
        f"loss.name={n}" for n in loss_names() if n.startswith("ms")]


def test_run_folders_complete_after_resume_and_runs_show(cli, tmp_path):
    a = make_run(tmp_path / "runs", "ce", name="20261123-100000-ce-aaaa")
    b = make_run(tmp_path / "runs", "mse", name="20261123-100000-mse-bbbb")
    (tmp_path / "runs" / "compare-x").mkdir()  # not a run
    (tmp_path / "runs" / "notes").mkdir()  # no meta.json: not a run
    assert complete(cli, "ce-lab train --resume ") == [f"runs/{a.name}", f"runs/{b.name}"]
    assert complete(cli, "ce-lab train --resume runs/2026") == [f"runs/{a.name}", f"runs/{b.name}"]
    assert complete(cli, "ce-lab runs show 20261123-100000-m") == [b.name]
    other = tmp_path / "elsewhere"
    c = make_run(other, "hinge", name="20261124-100000-hinge-cccc")
    assert complete(cli, f"ce-lab runs --out-dir {other} show 2026") == [c.name]


@pytest.fixture
def train_args(tiny_sets):
    return lambda *extra: ["train", "--json", *sum((["--set", s] for s in tiny_sets(*extra)), [])]


def test_train_json_is_one_object_on_stdout_with_the_summary(cli, train_args):
    result = cli.invoke(app, [*train_args("train.epochs=1"), "--progress", "plain"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout holds exactly one JSON object
    assert result.stdout.count("\n") == 1
    on_disk = json.loads(open(f"{data['run_dir']}/summary.json").read())
    assert data == on_disk | {"run_dir": data["run_dir"]}
    assert data["status"] == "completed" and data["steps"] == 16
    assert "training ce" in result.stderr  # progress went to stderr


def test_train_json_keeps_the_exit_codes(cli, train_args):
    diverged = cli.invoke(app, [*train_args("log.log_every=1"), "--loss", "nll-manual",
                                "--lr", "200"])
    assert diverged.exit_code == 3, diverged.output
    data = json.loads(diverged.stdout)
    assert data["status"] == "diverged" and data["diverged_at"] is not None
    bad = cli.invoke(app, [*train_args(), "--set", "optim.lrr=1"])
    assert bad.exit_code == 2 and bad.stdout == "" and "optim.lrr" in bad.stderr


def test_the_cli_runs_without_packages_outside_the_core_dependencies():
    # click comes with ray, not with typer (which vendors its own): a module importing it worked
    # wherever an extra was installed and failed on a bare `pip install -e .`.
    import subprocess
    import sys

    blocked = ("click", "ray", "pandas", "tensorboard", "pytest", "hypothesis")
    code = ("import sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None  # import raises ImportError\n"
            "sys.argv = ['ce-lab', 'losses']\n"
            "from ce_lab.cli import main\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mse-logits" in out.stdout
