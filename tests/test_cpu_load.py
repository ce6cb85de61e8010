"""The load reading the thread policy follows (ce_lab/cpu_load.py): the kernel's counters parsed,
this process's own work told apart from the others', and a real busy process seen."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ce_lab import cpu_load

STAT = """cpu  300 10 50 900 20 0 5 15 7 0
cpu0 100 5 20 400 10 0 2 3 7 0
cpu1 200 5 30 500 10 0 3 12 0 0
intr 1 2 3
ctxt 42
"""
# A process name with a space and a parenthesis: fields are counted after the last ')'.
SELF = "123 (odd (name) x) R 1 1 1 0 -1 4194304 98 0 0 0 40 17 0 0 20 0 1 0 1055879 3133440 409"


def test_busy_ticks_are_user_nice_system_irq_softirq_and_steal_of_the_usable_cpus():
    snap = cpu_load.parse(STAT, SELF, {0, 1})
    # cpu0: 100+5+20+0+2+3 = 130 busy, + 400 idle + 10 iowait; cpu1: 200+5+30+0+3+12 = 250.
    assert snap == cpu_load.Snapshot(busy=380, total=380 + 920, own=40 + 17, cpus=2)
    only_cpu1 = cpu_load.parse(STAT, SELF, {1})
    assert (only_cpu1.busy, only_cpu1.total, only_cpu1.cpus) == (250, 760, 1)
    with pytest.raises(ValueError):
        cpu_load.parse(STAT, SELF, {5})


def test_other_processes_work_is_the_busy_ticks_less_this_process_s_own():
    before = cpu_load.Snapshot(busy=1000, total=4000, own=100, cpus=2)
    # 100 ticks per CPU later: 150 busy ticks, 30 of them this process's -> 1.2 CPUs of others'.
    after = cpu_load.Snapshot(busy=1150, total=4200, own=130, cpus=2)
    assert cpu_load.others_busy(before, after) == pytest.approx(1.2)
    # Counters that disagree by a tick are clamped to the possible range, not made up.
    assert cpu_load.others_busy(before, cpu_load.Snapshot(1010, 4200, 120, 2)) == 0.0
    assert cpu_load.others_busy(before, cpu_load.Snapshot(1500, 4200, 100, 2)) == 2.0
    # Too close together (under 3 ticks per CPU), missing, or other CPUs: nothing to tell.
    assert cpu_load.others_busy(before, cpu_load.Snapshot(1004, 4004, 100, 2)) is None
    assert cpu_load.others_busy(None, after) is None
    assert cpu_load.others_busy(before, None) is None
    assert cpu_load.others_busy(before, cpu_load.Snapshot(1150, 4200, 130, 1)) is None


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time, from /proc/PID/stat."""
    return cpu_load.process_ticks(Path(f"/proc/{pid}/stat").read_text()) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path(cpu_load.STAT).exists(), reason="reads /proc/stat (Linux only)")
def test_a_real_busy_process_is_seen_and_this_process_s_own_work_is_not():
    """Counted in CPU time, not wall time, so that a loaded machine (which gives each process
    less of a CPU per second) changes nothing but how long the test takes."""
    cpu = min(cpu_load.usable_cpus())
    start = cpu_load.snapshot({cpu})
    goal = time.process_time() + 0.3
    while time.process_time() < goal:  # this process busy for 0.3 s of CPU, on any CPU
        pass
    own = cpu_load.snapshot({cpu})
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                           preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(hog.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        end = cpu_load.snapshot({cpu})
        hog_cpu = cpu_seconds(hog.pid)
    finally:
        hog.kill()
        hog.wait()
    assert start is not None and own is not None and end is not None
    assert end.own - start.own >= 20  # our 0.3 s of CPU: ~30 ticks at the kernel's 100 per second
    # On `cpu`, the busy process's ticks (at least 0.5 s of them) are others' work, and none of
    # ours: this process only slept there meanwhile.
    others_ticks = (end.busy - own.busy) - (end.own - own.own)
    assert others_ticks >= 0.8 * hog_cpu * 100 - 5
    assert cpu_load.others_busy(own, end) > 0
