"""scripts/slurm/train.sbatch on a one-node SLURM cluster started on this machine.

The session fixture installs Debian's ``slurm-wlm`` when ``slurmctld`` is missing, starts
``slurmctld`` and ``slurmd`` on free ports with a configuration of their own (a temporary
folder; ``SLURM_CONF`` points the client commands at it) and stops them at the end. The
tests skip, never fail, where that is impossible (not root, no apt, no network, a SLURM
build without ``auth/none``). The jobs are 2-process DDP fits on CPU (gloo) of the digits
demo with tiny networks.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "scripts" / "slurm" / "train.sbatch"
DEMO = "configs/noise_dim/digits_demo.yaml"
BATCH, TASKS = 64, 2  # the demo's global batch (BATCH / TASKS per process); processes per job
RUN = Path("noise_dim") / "digits_demo"  # the demo's experiment folder under the logger's save_dir
STEPS = 80  # optimiser steps of the requeued runs: a checkpoint at 10, the signal soon after
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}

SLURM_CONF = """\
ClusterName=pytest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
# How long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# Scheduling passes every second, not every 60 s: a requeued job starts as soon as it may.
SchedulerParameters=sched_interval=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ReturnToService=2
KillWait=2
InactiveLimit=0
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=pytest Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def job(self, job_id: str) -> dict[str, str]:
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def logs(self) -> str:
        return "".join(f"\n--- {name} (tail)\n" + _tail(self.folder / name) for name in ("slurmctld.log", "slurmd.log"))


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(missing)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_slurm() -> None:
    """apt-get install slurm-wlm (skips the tests when that fails), starting no services."""
    if shutil.which("apt-get") is None:
        pytest.skip("slurmctld is not installed and there is no apt-get to install slurm-wlm")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    options = ["-q", "-o", "Acquire::http::Timeout=10", "-o", "Acquire::Retries=0", "-o", "DPkg::Lock::Timeout=60"]
    install = ["apt-get", *options, "install", "-y", "--no-install-recommends", "slurm-wlm"]
    policy = Path("/usr/sbin/policy-rc.d")  # keeps the packages' scripts from starting daemons
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:  # stale package lists: update once and retry
            subprocess.run(["apt-get", *options, "update"], env=env, capture_output=True, timeout=60)
            proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("apt-get install slurm-wlm timed out (no network?)")
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    if proc.returncode != 0 or shutil.which("slurmctld") is None:
        pytest.skip(f"apt-get install slurm-wlm failed: {(proc.stdout + proc.stderr)[-500:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _kill_stragglers(marker: bytes) -> None:
    """SIGKILL any process left over from this cluster's jobs (their environment names its slurm.conf)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Cluster:
    """A one-node SLURM cluster on localhost: slurmctld + slurmd as root, ``auth/none``."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root on Linux")
    if shutil.which("slurmctld") is None or shutil.which("slurmd") is None:
        _install_slurm()
    plugins = ("/usr/lib/*/slurm*/auth_none.so", "/usr/lib*/slurm*/auth_none.so", "/usr/local/lib*/slurm*/auth_none.so")
    if not any(glob.glob(pattern) for pattern in plugins):
        pytest.skip("this SLURM build has no auth/none plugin (the test cluster runs without munge)")

    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host, ctld_port=_free_port(), d_port=_free_port(), dir=folder, cpus=os.cpu_count() or TASKS
        )
    )
    # Nothing from an enclosing SLURM job (were the tests run in one) may reach sbatch.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["SLURM_CONF"] = str(conf)
    cluster = Cluster(folder, env)

    daemons: list[subprocess.Popen] = []
    try:
        for cmd in (["slurmctld", "-D", "-c"], ["slurmd", "-D", "-N", host]):
            with open(folder / f"{cmd[0]}.out", "wb") as out:
                daemons.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True))
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline and any(d.poll() is None for d in daemons):
            state = cluster.run("sinfo", "-h", "-o", "%t", timeout=10, check=False).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        if state != "idle":
            pytest.skip(f"the test SLURM cluster did not come up (sinfo: {state!r}):{cluster.logs()}")
        yield cluster
    finally:
        try:
            cluster.run("scancel", "--user", "root", timeout=10, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and cluster.run("squeue", "-h", timeout=10, check=False).stdout.strip():
                time.sleep(0.5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for daemon in reversed(daemons):
            _stop(daemon)
        _kill_stragglers(f"SLURM_CONF={conf}".encode())


def _submit(slurm: Cluster, tmp_path: Path, *train_args: str, pythonpath: str = str(ROOT)) -> str:
    env = {
        **slurm.env,
        "PYTHON": sys.executable,
        "ACCELERATOR": "cpu",
        "SLURM_RUNS": str(tmp_path / "roots"),
        "PYTHONPATH": pythonpath,
    }
    cmd = [
        "sbatch", "--parsable", "--export=ALL,OMP_NUM_THREADS=1",
        f"--ntasks-per-node={TASKS}", "--cpus-per-task=1", "--gres=none", "--time=10",
        f"--output={tmp_path}/%x-%j.out",
        str(SBATCH),
        "-c", DEMO,
        "--trainer.strategy=ddp",
        "--model.init_args.g_width=8",
        "--model.init_args.d_width=8",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'tb'}",
        *train_args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _log(tmp_path: Path, job_id: str) -> str:
    return _tail(tmp_path / f"noise-gan-{job_id}.out", 10**6)


def _wait(slurm: Cluster, tmp_path: Path, job_id: str, until, what: str, timeout: float) -> dict[str, str]:
    """Poll the job until ``until(info)``; fail with the job's log and the daemons' logs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = slurm.job(job_id)
        if until(info):
            return info
        if info.get("JobState") in TERMINAL:
            break
        time.sleep(0.5)
    slurm.run("scancel", job_id, check=False)
    pytest.fail(f"job {job_id}: {what} did not happen ({info}):\n{_log(tmp_path, job_id)[-6000:]}{slurm.logs()}")


def _wait_done(slurm: Cluster, tmp_path: Path, job_id: str, timeout: float = 120) -> dict[str, str]:
    info = _wait(slurm, tmp_path, job_id, lambda i: i.get("JobState") in TERMINAL, "completion", timeout)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{_log(tmp_path, job_id)[-6000:]}"
    return info


def _wait_for_file(slurm: Cluster, tmp_path: Path, job_id: str, path: Path, timeout: float = 90) -> None:
    _wait(slurm, tmp_path, job_id, lambda i: path.is_file(), f"{path} appearing", timeout)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_two_task_ddp_fit(slurm, tmp_path):
    """One node, 2 tasks: srun starts both ranks, Lightning takes them from SLURM, the run is named after the job."""
    job = _submit(slurm, tmp_path, "--trainer.max_steps=8")
    _wait_done(slurm, tmp_path, job)
    log = _log(tmp_path, job)
    assert f"job {job} start 0 on " in log and "1 node(s) x 2 task(s)" in log
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert "SLURM auto-requeueing enabled" in log
    run = tmp_path / "tb" / RUN / f"slurm_{job}"
    assert sorted(os.listdir(run.parent)) == [f"slurm_{job}"]
    saved = _load(run / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 8
    assert saved["images_seen"] == 4 * BATCH  # 4 iterations of the global batch
    assert f"Checkpoint:  {run / 'checkpoints' / 'last.ckpt'}" in log
    assert (tmp_path / "roots" / job).is_dir()  # default_root_dir, where hpc checkpoints would go


def _requeue_run(slurm, tmp_path, max_steps, *extra):
    """Submit a fit with a checkpoint every 10 optimiser steps; return its id once the first one is on disk."""
    job = _submit(
        slurm, tmp_path, f"--trainer.max_steps={max_steps}", "--checkpoint.every_n_train_steps=10", *extra
    )
    run = tmp_path / "tb" / RUN / f"slurm_{job}"
    _wait_for_file(slurm, tmp_path, job, run / "checkpoints" / "last.ckpt")  # both ranks are in the training loop
    return job, run


def _assert_resumed(slurm, tmp_path, job, run, ckpt: Path) -> tuple[str, dict]:
    info = _wait(slurm, tmp_path, job, lambda i: i.get("Restarts") == "1", "the requeue", 60)
    info = _wait_done(slurm, tmp_path, job)
    assert info["Restarts"] == "1"
    log = _log(tmp_path, job)
    assert f"job {job} start 0 on " in log and f"job {job} start 1 on " in log
    assert f"Restored all states from the checkpoint at {ckpt}" in log
    # One TensorBoard run: the restart appended to the folder of the first start.
    assert sorted(os.listdir(run.parent)) == [f"slurm_{job}"]
    assert len(list(run.glob("events.out.tfevents.*"))) >= 2
    return log, _load(run / "checkpoints" / "last.ckpt")


def test_requeue_at_batch_end_resumes_exactly(slurm, tmp_path):
    """`scancel --signal=USR1` (what --signal=SIGUSR1@90 sends before the time limit) reaches every
    rank; the hpc checkpoint lands in the run root at an iteration boundary, the job is requeued,
    and the restart (same id) restores it into the same TensorBoard run and ends exactly at
    max_steps. (callbacks.RequeueAtBatchEnd, on in every train.py run: see its docstring for why
    not Lightning's handler alone.)"""
    job, run = _requeue_run(slurm, tmp_path, STEPS)
    slurm.run("scancel", "--signal=USR1", job)
    hpc = tmp_path / "roots" / job / "hpc_ckpt_1.ckpt"
    log, last = _assert_resumed(slurm, tmp_path, job, run, hpc)
    assert "Handling auto-requeue signal: 10" in log and f"Requeued SLURM job: {job}" in log
    saved = _load(hpc)
    assert saved["global_step"] == 2 * saved["d_steps"]  # a whole number of iterations
    assert saved["images_seen"] == saved["d_steps"] * BATCH
    assert last["global_step"] == STEPS
    assert last["images_seen"] == STEPS // 2 * BATCH


def test_requeue_without_sigusr1_resumes_from_last_ckpt(slurm, tmp_path):
    """Requeued with no warning (node failure, preemption, `scontrol requeue`), there is no hpc
    checkpoint: the restart resumes from the run's own last.ckpt."""
    job, run = _requeue_run(slurm, tmp_path, STEPS)
    slurm.run("scontrol", "requeue", job)
    log, last = _assert_resumed(slurm, tmp_path, job, run, run / "checkpoints" / "last.ckpt")
    assert not list((tmp_path / "roots" / job).glob("hpc_ckpt_*"))
    assert last["global_step"] == STEPS
    assert last["images_seen"] == STEPS // 2 * BATCH
