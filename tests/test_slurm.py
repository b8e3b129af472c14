"""The Slurm executor against a real single-node Slurm (``scripts/slurm_local.sh up``), and its
failure paths. Without a cluster the integration tests are skipped, saying why; the tests that
need none (no sbatch, a pre-empted job's cells) always run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from eagerbench.records import runfile
from tests.conftest import eagerbench_cli, one_line_error

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
SLURM_CONF = Path(os.environ.get("EAGERBENCH_SLURM_DIR", "/tmp/eagerbench-slurm")) / "slurm.conf"
# Two batches (one worker process per framework), two cells each.
GRID = ["-w", "matmul", "--size", "32,64", "--modes", "torch,jax", "--repeat", "1", "--iters",
        "3", "--warmup", "1", "--min-time", "0", "--threads", "1", "-q"]
# A torch cell that takes some seconds, then a jax one: time to cancel or fail the first job.
SLOW = ["-w", "matmul", "--size", "384", "--modes", "torch,jax", "--repeat", "1", "--iters",
        "600", "--warmup", "1", "--min-time", "0", "--threads", "1", "--no-limits",
        "--max-jobs", "1", "-q"]


def _cluster_answers() -> bool:
    if shutil.which("sbatch") is None or not SLURM_CONF.exists():
        return False
    env = {**os.environ, "SLURM_CONF": str(SLURM_CONF)}
    return subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True).returncode == 0


needs_slurm = pytest.mark.skipif(
    not _cluster_answers(),
    reason="no local Slurm answers: `scripts/slurm_local.sh up` (as root) starts one; .ci/run "
           "does")


@pytest.fixture
def slurm_env():
    return {"SLURM_CONF": str(SLURM_CONF)}


def _slurm(*args, env, background=False):
    return eagerbench_cli("run", "--executor", "slurm", *args, env=env, background=background)


def _squeue(*args) -> str:
    env = {**os.environ, "SLURM_CONF": str(SLURM_CONF)}
    return subprocess.run(["squeue", "--noheader", *args], capture_output=True, text=True,
                          env=env).stdout


def _array_of(folder: Path, limit_s: float = 120) -> str:
    """The job array a run submitted (submitit makes a folder per job id)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        jobs = folder / "slurm" / "jobs"
        ids = sorted(p.name for p in jobs.iterdir() if p.name[0].isdigit()) if jobs.is_dir() else []
        if ids:
            return ids[0].split("_")[0]
        time.sleep(0.2)
    raise AssertionError("no job submitted")


def _wait_running(job: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while "RUNNING" not in _squeue("--states=RUNNING", "-o", "%T", "-j", job):
        assert time.monotonic() < deadline, f"job {job} never ran: {_squeue('-j', job)}"
        time.sleep(0.2)


def _slow_run_with_its_first_job_running(out: Path, env: dict):
    """The SLOW grid started in the background, once its first job runs: (process, array)."""
    proc = _slurm(*SLOW, "--out", out, env=env, background=True)
    array = _array_of(out)
    _wait_running(f"{array}_0")
    return proc, array


def _node_back(limit_s: float = 60) -> None:
    env = {**os.environ, "SLURM_CONF": str(SLURM_CONF)}
    node = subprocess.run(["sinfo", "--noheader", "-o", "%N"], capture_output=True, text=True,
                          env=env).stdout.split()[0]
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"],
                   capture_output=True, env=env)
    deadline = time.monotonic() + limit_s
    while subprocess.run([str(SCRIPT), "status"], env=env).returncode != 0:
        assert time.monotonic() < deadline, "the node did not come back"
        time.sleep(0.5)


@needs_slurm
def test_a_grid_through_slurm_matches_the_local_run(tmp_path, slurm_env):
    """Every record came from a Slurm job on the node, one job per worker process, each cell's
    values agree with the local executor's, the node's limits were measured on it, and job
    states were read without sacct (no accounting here)."""
    proc = _slurm(*GRID, "--out", tmp_path / "slurm", env=slurm_env)
    assert proc.returncode == 0, proc.stderr
    assert "sacct" not in proc.stderr, proc.stderr
    local = eagerbench_cli("run", *GRID, "--no-limits", "--out", tmp_path / "local")
    assert local.returncode == 0, local.stderr

    on_slurm, here = runfile.read(tmp_path / "slurm"), runfile.read(tmp_path / "local")
    jobs = {r.result.process["slurm"]["job_id"] for r in on_slurm.records}
    assert len(on_slurm.records) == 4 and len(jobs) == 2   # torch and jax: one job each
    assert all(r.result.ok and r.result.process["host"]["cpu"] for r in on_slurm.records)
    assert on_slurm.header.env["executor"]["name"] == "slurm"
    assert on_slurm.header.env["executor"]["exclusive"] is True
    (host,) = on_slurm.hosts()
    assert host.limits["peak_gflops"]["float32"] > 0   # measured on the node, by a job
    assert {r.spec.identity() for r in on_slurm.records} == \
        {r.spec.identity() for r in here.records}
    by_identity = {r.spec.identity(): r for r in here.records}
    for rec in on_slurm.records:
        twin = by_identity[rec.spec.identity()].result.check
        assert rec.result.check.keys() == twin.keys()
        for key, value in rec.result.check.items():
            np.testing.assert_allclose(value, twin[key], rtol=1e-6)
    report = (tmp_path / "slurm" / "run.md").read_text()
    assert "measured through Slurm: 2 jobs" in report


@needs_slurm
def test_a_prepared_start_state_is_computed_by_a_slurm_job(tmp_path, slurm_env):
    """l-BFGS cells start from a state prepared once: on a cluster a job prepares it, into the
    shared cache, and the measuring jobs load it."""
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    proc = _slurm("-w", "lbfgs", "--history", "2", "--batch", "100", "--modes", "torch",
                  "--repeat", "1", "--iters", "2", "--warmup", "1", "--min-time", "0",
                  "--threads", "1", "--no-limits", "-q", "--out", out,
                  env={**slurm_env, "EAGERBENCH_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "preparing the lbfgs start state" in proc.stderr
    (rec,) = runfile.read(out).latest()
    assert rec.result.ok and rec.result.process["slurm"]["job_id"]
    assert rec.spec.prepared["cached"] is False
    assert Path(rec.spec.prepared["path"]).is_file()
    assert str(cache) in rec.spec.prepared["path"]
    jobs = [p for p in (out / "slurm" / "jobs").iterdir() if p.name[0].isdigit()]
    assert len(jobs) >= 2   # the preparing job, then the measuring one


@needs_slurm
def test_a_cancelled_job_fails_its_cells_keeps_the_rest_and_resume_finishes(tmp_path,
                                                                            slurm_env):
    out = tmp_path / "run"
    proc, array = _slow_run_with_its_first_job_running(out, slurm_env)
    subprocess.run(["scancel", f"{array}_0"], env={**os.environ, **slurm_env}, check=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    run = runfile.read(out)
    status = {r.spec.mode: r.result for r in run.latest()}
    assert status["jax"].ok
    assert status["torch"].status == "failed"
    assert f"Slurm job {array}_0 was cancelled (scancel)" in status["torch"].reason

    again = _slurm("--resume", out, "--rerun-failed", env=slurm_env)
    assert again.returncode == 0, again.stderr
    assert all(r.result.ok for r in runfile.read(out).latest())


@needs_slurm
def test_a_node_failure_is_the_reason_of_the_cells_its_job_had_left(tmp_path, slurm_env):
    out = tmp_path / "run"
    proc, array = _slow_run_with_its_first_job_running(out, slurm_env)
    env = {**os.environ, **slurm_env}
    node = _squeue("-o", "%N", "-j", f"{array}_0").split()[0]
    try:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down",
                        "reason=eagerbench-test"], env=env, check=True)
        _, stderr = proc.communicate(timeout=300)
    finally:
        _node_back()
    torch = next(r.result for r in runfile.read(out).latest() if r.spec.mode == "torch")
    assert torch.status == "failed"
    assert f"Slurm job {array}_0 ended because its node {node} failed" in torch.reason, stderr
    assert "SIGTERM" not in torch.reason


@needs_slurm
def test_ctrl_c_cancels_the_jobs_and_resume_finishes_on_slurm(tmp_path, slurm_env):
    out = tmp_path / "run"
    proc, array = _slow_run_with_its_first_job_running(out, slurm_env)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "cancelled 2 Slurm job(s)" in stderr and f"--resume {out}" in stderr
    deadline = time.monotonic() + 30
    while _squeue("-j", array, "--states=PENDING,RUNNING,COMPLETING").strip():
        assert time.monotonic() < deadline, _squeue("-j", array)
        time.sleep(0.5)
    again = _slurm("--resume", out, env=slurm_env)
    assert again.returncode == 0, again.stderr
    latest = runfile.read(out).latest()
    assert len(latest) == 2 and all(r.result.ok for r in latest)
    assert all(r.result.process["slurm"]["job_id"] for r in latest)


@needs_slurm
def test_a_bad_partition_is_one_line_before_anything_runs(tmp_path, slurm_env):
    proc = _slurm(*GRID, "--no-limits", "--partition", "nosuch", "--out", tmp_path / "run",
                  env=slurm_env)
    assert proc.returncode == 2
    one_line_error(proc, "--partition nosuch: no such Slurm partition", "debug")
    assert not (tmp_path / "run").exists()


@needs_slurm
def test_a_job_sbatch_refuses_is_recorded_per_cell(tmp_path, slurm_env):
    """A request the cluster cannot meet (a GPU on a node without one) fails every cell with
    sbatch's own reason, in one line each."""
    proc = _slurm(*GRID, "--no-limits", "--gres", "gpu:1", "--out", tmp_path / "run",
                  env=slurm_env)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    latest = runfile.read(tmp_path / "run").latest()
    assert len(latest) == 4
    for rec in latest:
        assert rec.result.status == "failed"
        assert rec.result.reason.startswith("sbatch refused the job: ")
        assert "gres" in rec.result.reason.lower() and "\n" not in rec.result.reason


def test_without_sbatch_the_slurm_executor_is_one_line(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    proc = eagerbench_cli("run", "--executor", "slurm", *GRID, "--out", tmp_path / "run",
                          env={"PATH": str(bare)})
    assert proc.returncode == 2
    one_line_error(proc, "sbatch is not on PATH")
    assert not (tmp_path / "run").exists()


def test_slurm_options_need_the_slurm_executor(tmp_path):
    proc = eagerbench_cli("run", *GRID, "--partition", "gpu", "--out", tmp_path / "run")
    assert proc.returncode == 2
    one_line_error(proc, "--partition is a Slurm option; it goes with --executor slurm")


class _Watcher:
    def __init__(self, state):
        self.state = state

    def get_state(self, job_id, mode="standard"):
        return self.state

    def get_info(self, job_id, mode="standard"):
        return {"State": self.state, "NodeList": "node7"}


class _Job:
    """A submitit job as the executor sees it, ended in a chosen Slurm state."""

    def __init__(self, folder: Path, state: str):
        self.job_id, self.watcher = "41_2", _Watcher(state)
        self.paths = type("Paths", (), {"result_pickle": folder / "none.pkl",
                                        "stderr": folder / "err"})()

    def exception(self):
        raise RuntimeError("no result file")


@pytest.mark.parametrize("state, reason", [
    ("PREEMPTED", "Slurm job 41_2 was pre-empted before it measured this cell"),
    ("NODE_FAIL", "Slurm job 41_2 ended because its node node7 failed"),
    ("TIMEOUT", "Slurm job 41_2 hit its time limit (60 min; raise --time-limit)"),
])
def test_a_job_that_ended_early_keeps_what_it_measured_and_fails_the_rest(tmp_path, state,
                                                                           reason):
    """The first cell landed; the second's worker died of the SIGTERM that ended the job, which
    is not its own failure; the third never started. Slurm's end is the reason for both."""
    import json

    from eagerbench.execute.slurm import SlurmExecutor, _Task
    from eagerbench.records.model import CellSpec

    cells = [CellSpec("matmul", {"size": n}, "torch") for n in (8, 16, 32)]
    stream = tmp_path / "0.jsonl"
    stream.write_text(json.dumps({"index": 0, "results": [{"status": "ok"}]}) + "\n"
                      + json.dumps({"index": 1, "results": [{
                          "status": "failed", "reason": "worker killed by SIGTERM"}]}) + "\n"
                      + '{"index": 2, "res')   # a line being written when the job died
    task = _Task(cells, stream, job=_Job(tmp_path, state))
    landed = list(SlurmExecutor()._drain(task))
    assert [cell.params["size"] for cell, _ in landed] == [8, 16, 32]
    assert landed[0][1][0].ok
    assert [results[0].reason for _, results in landed[1:]] == [reason, reason]
    assert task.ended and list(SlurmExecutor()._drain(task)) == []


def test_a_job_killed_before_squeue_shows_it_waits_for_its_end_as_the_reason(tmp_path,
                                                                             monkeypatch):
    """A node failure kills the job, which writes its result file within a second, while the
    polled state may still say PENDING: the cells' reason waits for squeue to show the end."""
    from eagerbench.execute import slurm
    from eagerbench.records.model import CellSpec

    job = _Job(tmp_path, "PENDING")
    job.paths.result_pickle.write_bytes(b"")
    stream = tmp_path / "0.jsonl"
    stream.write_text("")
    task = slurm._Task([CellSpec("matmul", {"size": 8}, "torch")], stream, job=job)
    assert list(slurm.SlurmExecutor()._drain(task)) == [] and not task.ended
    job.watcher.state = "NODE_FAIL"
    (landed,) = slurm.SlurmExecutor()._drain(task)
    assert landed[1][0].reason == "Slurm job 41_2 ended because its node node7 failed"

    stuck = slurm._Task(task.cells, stream, job=_Job(tmp_path, "RUNNING"))
    monkeypatch.setattr(slurm, "SETTLE_S", 0.05)
    assert list(slurm.SlurmExecutor()._drain(stuck)) == []   # the file is first seen now
    time.sleep(0.1)
    (landed,) = slurm.SlurmExecutor()._drain(stuck)   # squeue never showed an end: it ended
    assert landed[1][0].status == "failed" and stuck.ended
