"""Fault injection: every way a run can end badly, each counting the records before and after.
No scenario may destroy a record, orphan a worker, or end in a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eagerbench.records import runfile, store
from eagerbench.records.runfile import RAW, ResultsError
from tests.conftest import eagerbench_cli as _eagerbench
from tests.conftest import one_line_error as _one_line_error

SMALL = ["-w", "matmul", "--modes", "torch", "--repeat", "1", "--iters", "2", "--warmup", "1",
         "--min-time", "0", "--threads", "1", "--no-limits", "--no-why", "-q"]


def _count(folder: Path) -> int:
    return len(runfile.read(folder).records)


def _records_on_disk(path: Path) -> int:
    """Complete record lines in a raw.jsonl, read without the loader."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith('{"cell"'))


def _wait_for_records(path: Path, n: int, proc, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while _records_on_disk(path) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no record landed"
        time.sleep(0.2)


def _workers_of(pid: int) -> list[int]:
    """Live processes started by the runner ``pid`` (they carry its pid in their environment)."""
    found = []
    marker = f"EAGERBENCH_RUNNER_PID={pid}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_an_interrupted_run_keeps_the_previous_run_and_resume_finishes_it(tmp_path):
    """A finished run in D; a second run into D interrupted after its first cell: D's run is
    untouched, the partial run sits beside it, a third run into D meanwhile is refused by the
    lock, and --resume finishes the partial run, which then takes D's place while the first run
    moves to D/previous/."""
    out = tmp_path / "D"
    first = _eagerbench("run", *SMALL, "--size", "16", "--out", out)
    assert first.returncode == 0, first.stderr
    before = (out / RAW).read_bytes()
    assert _count(out) == 1

    # 4 s of timed samples per cell (no fixed --iters, which would override --min-time and let
    # all six cells land within a second or two of the first): the run is still going when the
    # interrupt comes, even beside make test's other worker
    at = SMALL.index("--iters")
    slow = SMALL[:at] + SMALL[at + 2:]
    second = _eagerbench("run", *slow, "--size", "16,24,32", "--repeat", "2", "--out", out,
                         "--min-time", "4", background=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("run-*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (staging,) = out.glob("run-*.partial")   # made while the lock on D is held
    assert second.poll() is None, second.communicate()[1]   # still running, holding the lock
    refused = _eagerbench("run", *SMALL, "--size", "8", "--out", out)
    assert refused.returncode == 2
    _one_line_error(refused, str(out), "another eagerbench run")
    _wait_for_records(staging / RAW, 1, second)
    second.send_signal(signal.SIGINT)   # at once: five cells of 4 s each are still to come
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 130, stderr
    assert f"--resume {staging}" in stderr
    assert not _workers_of(second.pid)
    partial = _count(staging)
    assert 1 <= partial < 6
    assert (out / RAW).read_bytes() == before                       # previous: 1 record, intact

    resumed = _eagerbench("run", "--resume", staging, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - partial} to go" in resumed.stderr
    assert not staging.exists()
    assert _count(out) == 6                                          # the new run, complete
    (kept,) = (out / "previous").iterdir()
    assert (kept / RAW).read_bytes() == before                      # the old one, kept
    assert (out / "README.md").exists() and (kept / "README.md").exists()


def test_a_runner_killed_with_sigkill_leaves_no_worker_and_every_finished_cell(tmp_path):
    out = tmp_path / "run"
    proc = _eagerbench("run", *SMALL, "--size", "16,24,32,48", "--out", out, "--min-time", "2",
                       background=True)
    _wait_for_records(out / RAW, 1, proc)
    workers = _workers_of(proc.pid)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _workers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not _workers_of(proc.pid)
    finished = _count(out)
    assert finished >= 1 and not runfile.read(out).finished
    resumed = _eagerbench("run", "--resume", out, "-q")              # the lock died with it
    assert resumed.returncode == 0, resumed.stderr
    assert _count(out) == 4 and runfile.read(out).finished


def test_resume_skips_finished_cells_and_reruns_failed_ones_only_when_asked(tmp_path):
    out = tmp_path / "run"
    killed = _eagerbench("run", *SMALL, "--size", "16,24,32", "--out", out,
                         env={"EAGERBENCH_KILL_AT": "1"})
    assert killed.returncode == 3, killed.stderr
    assert [r.result.status for r in runfile.read(out).records] == ["ok", "failed", "ok"]
    again = _eagerbench("run", "--resume", out, "-q")
    assert again.returncode == 3 and "0 to go" in again.stderr      # the failure stands
    assert _count(out) == 3
    rerun = _eagerbench("run", "--resume", out, "--rerun-failed", "-q")
    assert rerun.returncode == 0, rerun.stderr
    run = runfile.read(out)
    assert len(run.records) == 4                                     # the failed record stays
    assert [r.result.status for r in run.latest()] == ["ok", "ok", "ok"]


def test_resume_sets_a_torn_last_line_aside_and_finishes(tmp_path):
    out = tmp_path / "run"
    proc = _eagerbench("run", *SMALL, "--size", "16,24", "--out", out, env={
        "EAGERBENCH_KILL_AT": "1"})
    assert proc.returncode == 3
    with open(out / RAW, "a") as f:
        f.write('{"cell": {"workload": "matmul", "par')          # killed mid-write
    with pytest.raises(ResultsError, match="truncated"):
        runfile.read(out)
    resumed = _eagerbench("run", "--resume", out, "--rerun-failed", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / (RAW + ".torn")).read_text().startswith('{"cell": {"workload": "matmul"')
    assert _count(out) == 3


class _FillsUp:
    """A file that takes ``room`` more writes, then fails as a full disk does."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, text):
        if self.room == 0:
            raise OSError(28, "No space left on device")
        self.room -= 1
        return self.file.write(text)

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_a_full_disk_is_one_line_exit_2_and_keeps_what_was_written(tmp_path, monkeypatch):
    """The disk fills after the header and the first record."""
    from click.testing import CliRunner

    from eagerbench import cli

    real_init = runfile.RunWriter.__init__

    def init(self, path, header=None):
        real_init(self, path, None)
        self._file = _FillsUp(self._file, 2)
        if header is not None:
            self._line(header.to_json())

    monkeypatch.setattr(runfile.RunWriter, "__init__", init)
    out = tmp_path / "run"
    got = CliRunner().invoke(cli.cli, ["run", *SMALL, "--size", "16,24,32", "--out", str(out)])
    assert got.exit_code == 2, got.output
    assert f"{out / RAW}: cannot write (No space left on device)" in got.output
    assert _count(out) == 1
    assert not _workers_of(os.getpid())


def test_an_abandoned_batch_leaves_no_worker_not_even_a_zombie():
    """Closing a batch mid-way (what a failed write or an interrupt does to it) kills its
    worker and reaps it before close() returns. Killed but not waited for, the worker lived
    on as a zombie, or was still dying when the runner reported the fault (a flaky CI)."""
    from eagerbench.execute import local
    from eagerbench.execute.runner import Cell

    cells = [Cell("matmul", {"size": 16}, "torch", threads=1, iters=2, warmup=1),
             Cell("matmul", {"size": 1024}, "torch", threads=1, iters=100000, warmup=2)]
    batch = local.run_batch(cells, timeout=300)
    _, (first,) = next(batch)
    assert first.status == "ok"
    worker = first.process["pid"]
    assert Path(f"/proc/{worker}").exists()        # still measuring the long cell
    batch.close()
    assert not Path(f"/proc/{worker}").exists()


def test_a_real_write_failure_names_the_file(tmp_path):
    """The writer itself turns an OSError into one line naming the file (/dev/full: ENOSPC)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    os.symlink("/dev/full", tmp_path / RAW)
    with pytest.raises(ResultsError, match=r"raw.jsonl: cannot write \(No space left on device\)"):
        runfile.RunWriter(tmp_path / RAW, runfile.RunHeader.new({}))


def test_an_unwritable_output_folder_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    proc = _eagerbench("run", *SMALL, "--size", "16", "--out", blocker / "run")
    assert proc.returncode == 2
    _one_line_error(proc, str(blocker / "run"))
    assert blocker.read_text() == "not a folder\n"


def test_a_bad_run_folder_to_resume_is_one_line_and_changes_nothing(tmp_path):
    (tmp_path / RAW).write_text('{"header": {"schema": 7}}\n')
    before = (tmp_path / RAW).read_bytes()
    proc = _eagerbench("run", "--resume", tmp_path)
    assert proc.returncode == 2
    _one_line_error(proc, str(tmp_path / RAW), "schema 7")
    assert (tmp_path / RAW).read_bytes() == before
    grid = _eagerbench("run", "--resume", tmp_path, "--size", "16")
    assert grid.returncode == 2 and "drop --size" in grid.stderr
    # named as the user typed them (not --workloads, --extra-params, --gc-mode)
    named = _eagerbench("run", "--resume", tmp_path, "-w", "matmul", "-p", "x=1", "--gc", "off",
                        "--grid", "full")
    assert named.returncode == 2, named.stderr
    assert "drop --workload, --param, --grid, --gc" in named.stderr, named.stderr


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from eagerbench.records.store import Lock; held = Lock(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE,
        text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ResultsError, match=f"pid {holder.pid}"):
        store.Lock(tmp_path)
    holder.kill()
    holder.wait()
    store.Lock(tmp_path).release()
