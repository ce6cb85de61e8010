"""How much of the CPUs this process may use other processes are keeping busy: the input of the
thread policy (``ce_lab.threads``) that makes the default follow the load.

Read from the kernel's counters, on Linux: ``/proc/stat`` (ticks each CPU spent busy and idle,
for every process) and ``/proc/self/stat`` (this process's own ticks, all its threads). Between two
snapshots, the busy ticks of the usable CPUs minus this process's own are the other processes'
work (time the hypervisor stole from the VM counts as theirs: it is CPU this process does not get).
Elsewhere (macOS, Windows), or where the files cannot be read, there is no reading and the policy
gives every usable CPU a thread, as before it followed the load.

This module imports nothing heavy; a snapshot costs two small file reads (about 50 microseconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

STAT, SELF_STAT = "/proc/stat", "/proc/self/stat"
# Columns of a cpuN line: user nice system idle iowait irq softirq steal [guest guest_nice].
# guest time is already counted in user; idle and iowait are the CPU doing nothing.
_BUSY, _IDLE = (0, 1, 2, 5, 6, 7), (3, 4)
MIN_TICKS_PER_CPU = 3  # below this (30 ms at 100 Hz) two snapshots say too little to use


@dataclass(frozen=True)
class Snapshot:
    busy: int  # ticks the usable CPUs spent working, for anyone
    total: int  # busy + idle ticks of the usable CPUs
    own: int  # this process's user + system ticks
    cpus: int  # how many CPUs the counters cover


def usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def parse(stat_text: str, self_stat_text: str, cpus: set[int]) -> Snapshot:
    """A snapshot from the two files' text, counting the CPUs in ``cpus`` only (the others may be
    busy with anything without taking a CPU from this process)."""
    busy = total = n = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(x) for x in rest.split()]
        work = sum(ticks[i] for i in _BUSY if i < len(ticks))
        busy += work
        total += work + sum(ticks[i] for i in _IDLE)
        n += 1
    if n == 0:
        raise ValueError("no usable CPU in /proc/stat")
    return Snapshot(busy, total, process_ticks(self_stat_text), n)


def process_ticks(pid_stat_text: str) -> int:
    """A process's user + system ticks from its ``/proc/PID/stat`` text (all its threads)."""
    # The process name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    fields = pid_stat_text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)


def snapshot(cpus: set[int] | None = None) -> Snapshot | None:
    """The counters now, or None where they cannot be read."""
    try:
        with open(STAT, encoding="ascii") as f, open(SELF_STAT, encoding="utf-8") as g:
            return parse(f.read(), g.read(), usable_cpus() if cpus is None else cpus)
    except (OSError, ValueError, IndexError):
        return None


def others_busy(before: Snapshot | None, after: Snapshot | None) -> float | None:
    """How many CPUs' worth of work other processes did between two snapshots (0.0 to the number
    of CPUs), or None where the snapshots are missing or too close together to tell."""
    if before is None or after is None or after.cpus != before.cpus:
        return None
    elapsed = (after.total - before.total) / after.cpus  # ticks per CPU
    if elapsed < MIN_TICKS_PER_CPU:
        return None
    theirs = (after.busy - before.busy) - (after.own - before.own)
    return min(float(after.cpus), max(0.0, theirs / elapsed))

