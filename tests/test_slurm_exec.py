"""The SLURM executor's options as sbatch receives them (through submitit's own sbatch writer), and
their checks. The executor itself runs in tests/cli/test_batch_slurm.py (submitit's local
executor) and tests/cli/test_batch_slurm_cluster.py (a real SLURM)."""

from __future__ import annotations

import pytest

from ce_lab.errors import ParamError
from ce_lab.lab.slurm_params import slurm_options

submitit_slurm = pytest.importorskip("submitit.slurm.slurm")


def sbatch_lines(options, jobs=None, array=None) -> list[str]:
    text = submitit_slurm._make_sbatch_string(command="CMD", folder="/shared/b/slurm",
                                              map_count=array, **options.parameters(jobs))
    return [line.removeprefix("#SBATCH ") for line in text.splitlines()
            if line.startswith("#SBATCH") and "log." not in line]


def test_defaults_leave_time_partition_and_memory_to_the_cluster():
    # submitit's own default would be --time=5: five minutes, then the job is killed.
    assert sbatch_lines(slurm_options()) == [
        "--cpus-per-task=1", "--job-name=ce-lab", "--nodes=1", "--open-mode=append",
        "--signal=USR2@90", "--wckey=submitit"]


def test_every_option_reaches_sbatch_as_typed():
    options = slurm_options("gpu", "1-12:00:00", 4, 1, "8G", ["account=proj", "qos=short"])
    assert sbatch_lines(options, jobs=2, array=5) == [
        "--account=proj", "--array=0-4%2", "--cpus-per-task=4", "--gpus-per-task=1",
        "--job-name=ce-lab", "--mem=8G", "--nodes=1", "--open-mode=append", "--partition=gpu",
        "--qos=short", "--signal=USR2@90", "--time=1-12:00:00", "--wckey=submitit"]
    assert slurm_options(time=90, extra={"--constraint": "a100"}).extra == {"constraint": "a100"}
    assert slurm_options(time=90).time == "90"  # minutes, as sbatch takes a bare number


@pytest.mark.parametrize("kwargs, message", [
    ({"cpus_per_task": 0}, "slurm_cpus_per_task must be a positive integer, got 0"),
    ({"gpus_per_task": -1}, "slurm_gpus_per_task must be a whole number >= 0, got -1"),
    ({"gpus_per_task": 0.5}, "slurm_gpus_per_task must be a whole number >= 0, got 0.5"),
    ({"partition": ""}, "slurm_partition must be one word as sbatch takes it, got ''"),
    ({"mem": "8 G"}, "slurm_mem must be one word as sbatch takes it, got '8 G'"),
    ({"extra": "account=proj"}, "slurm_extra must be a mapping of sbatch options, got"),
    ({"extra": {"": "x"}}, "slurm_extra: '' is no sbatch option name"),
])
def test_bad_options_name_the_parameter(kwargs, message):
    with pytest.raises(ParamError) as e:
        slurm_options(**kwargs)
    assert str(e.value).startswith(message)
