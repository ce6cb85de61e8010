"""A one-node SLURM cluster on localhost, in a temporary folder, for the real-SLURM tests.

``local_slurm(folder)`` writes a munge key and a ``slurm.conf`` (one node, ``localhost``, one
partition ``debug``), starts ``munged``, ``slurmctld`` and ``slurmd`` (each in the foreground, as
children of this process, so they are stopped by their pids and nothing else), waits until
``sinfo`` shows the node idle, and yields the environment for client commands
(``SLURM_CONF``). It needs root (slurmd runs jobs as their users) and the Debian packages
``slurm-wlm`` and ``munge``; ``missing()`` says what is lacking, in one line.

``python -m tests.slurm_cluster`` brings the cluster up, submits one job and stops it: a check of
the machine by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL = "install SLURM: apt-get install slurm-wlm munge"
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")
SBIN = ("/usr/sbin", "/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def missing() -> str | None:
    """Why the real-SLURM tests cannot run here (one line), or None."""
    lacking = [d for d in DAEMONS if _which(d) is None]
    if lacking:
        return f"{INSTALL} (missing: {', '.join(lacking)})"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the real-SLURM tests start slurmd, which needs root"
    return None


def _conf(folder: Path, socket: Path, cpus: int, memory_mb: int) -> str:
    user = "root"
    return "\n".join([
        "ClusterName=celab",
        "SlurmctldHost=localhost",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={socket}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",  # memory is not counted: jobs share the node's
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "SlurmctldPort=16817",
        "SlurmdPort=16818",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "KillWait=10",
        "MinJobAge=300",
        "InactiveLimit=0",
        "SchedulerParameters=sched_interval=1",
        f"NodeName=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _memory_mb() -> int:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return max(512, int(pages // 2**20 * 0.8))
    except (ValueError, OSError):
        return 2048


def _wait(what: str, check, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs
                      if p.is_file())
    raise RuntimeError(f"local SLURM: {what} not ready after {timeout:.0f} s\n{tails}")


def _cancel_all(env: dict[str, str]) -> None:
    """Cancel this cluster's jobs and wait (up to 30 s) until SLURM has let them go, so that no
    job step outlives the daemons."""
    subprocess.run([_which("scancel"), "--user=root"], env=env, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run([_which("squeue"), "--noheader"], env=env, capture_output=True,
                             text=True)
        if out.returncode != 0 or not out.stdout.strip():
            return
        time.sleep(0.5)


def _leftovers(conf: Path) -> list[int]:
    """Processes of this cluster still alive (a job step stuck once slurmd is gone): those whose
    environment names its slurm.conf, which this process's children all inherited."""
    mine = f"SLURM_CONF={conf}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mine in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the daemons this process started, last started first, by their pids."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def local_slurm(folder: Path | None = None, cpus: int | None = None) -> Iterator[dict[str, str]]:
    """A running one-node cluster; yields the environment its client commands need."""
    why = missing()
    if why:
        raise RuntimeError(why)
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="celab-slurm-")) if own else Path(folder)
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "munge", 0o700)
    socket = folder / "munge" / "munge.socket.2"
    key = folder / "munge" / "munge.key"
    subprocess.run([_which("mungekey"), "--create", "--force", f"--keyfile={key}"], check=True,
                   capture_output=True)
    cpus = cpus or min(2, os.cpu_count() or 1)
    conf = folder / "slurm.conf"
    conf.write_text(_conf(folder, socket, cpus, _memory_mb()), encoding="utf-8")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    logs = [folder / "munged.log", folder / "slurmctld.log", folder / "slurmd.log"]
    try:
        procs.append(subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--socket={socket}",
             f"--key-file={key}", f"--log-file={folder / 'munged.log'}",
             f"--pid-file={folder / 'munge' / 'munged.pid'}",
             f"--seed-file={folder / 'munge' / 'munged.seed'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env))
        _wait("munged", socket.exists, 20, logs)
        procs.append(subprocess.Popen([_which("slurmctld"), "-D", "-i", "-f", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen([_which("slurmd"), "-D", "-N", "localhost", "-f", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env))

        def idle() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"local SLURM: {proc.args[0]} exited ({proc.returncode})")
            out = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T"], env=env,
                                 capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() == "idle"

        _wait("the node", idle, 60, logs)
        yield {"SLURM_CONF": str(conf)}
    finally:
        if len(procs) == 3:
            _cancel_all(env)
        _stop(procs)
        for pid in _leftovers(conf):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if own:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    start = time.monotonic()
    with local_slurm() as slurm_env:
        up = time.monotonic() - start
        env = {**os.environ, **slurm_env}
        job = subprocess.run([_which("sbatch"), "--parsable", "--wait", "--output=/dev/null",
                              "--wrap", "hostname"],
                             env=env, capture_output=True, text=True)
        print(f"up in {up:.1f} s; sbatch --wait: rc {job.returncode} {job.stdout.strip()} "
              f"{job.stderr.strip()}")
    print(f"stopped after {time.monotonic() - start:.1f} s")
    sys.exit(job.returncode)
