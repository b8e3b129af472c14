"""Where runs live on disk, and how a run never destroys another.

A run folder holds one run: ``raw.jsonl`` (the record, see ``results``) and what ``report``
derives from it. A new run into a folder that already holds one is written beside it, in
``<folder>/run-<time>.partial/``; only when it has finished does the previous run move to
``<folder>/previous/<its time>/`` and the new one take its place. An interrupted run leaves the
previous one untouched and its own records in the ``.partial`` folder, which ``--resume``
finishes. A lock file keeps two runs out of one folder at once.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
from pathlib import Path

from eagerbench.records.runfile import RAW, ResultsError

LOCK = ".eagerbench.lock"
PREVIOUS = "previous"
STAGING_SUFFIX = ".partial"
# What a run folder's run consists of (moved together when a newer run takes its place).
# What a run writes into its folder (and what moves with it): files, the per-host reports of a
# run over several host types, and a cluster's job files.
RUN_FILES = (RAW, RAW + ".torn", "env.json", "cells.csv", "iterations.csv", "why.csv",
             "README.md", "run.md", "workloads", "verify.json", "hosts", "slurm")


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class Lock:
    """An exclusive lock on a run folder for as long as a run writes to it. The kernel drops
    it when the holder dies, even by SIGKILL, so a killed run never leaves a stale lock."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        try:
            self._file = open(self.path, "a+")
        except OSError as exc:
            raise ResultsError(f"{self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "?"
            self._file.close()
            raise ResultsError(f"{folder}: another eagerbench run (pid {holder}) is writing "
                               f"here; wait for it to finish or choose another --out") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        try:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
        except (OSError, ValueError):
            pass


def holds_run(folder: Path) -> bool:
    return (Path(folder) / RAW).is_file()


def is_staging(folder: Path) -> bool:
    """A run written beside a previous one (promoted into its parent when it finishes)."""
    folder = Path(folder)
    return folder.name.endswith(STAGING_SUFFIX) and folder.name.startswith("run-")


def begin(target: Path) -> tuple[Path, Lock]:
    """Where a new run into ``target`` writes, and the lock on ``target`` it holds meanwhile:
    ``target`` itself when it holds no run, else a fresh staging folder inside it."""
    target = Path(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{target}: {exc.strerror}") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise ResultsError(f"{target}: not writable")
    lock = Lock(target)
    if not holds_run(target):
        return target, lock
    staging = target / f"run-{_stamp()}{STAGING_SUFFIX}"
    n = 1
    while staging.exists():
        n += 1
        staging = target / f"run-{_stamp()}-{n}{STAGING_SUFFIX}"
    try:
        staging.mkdir()
    except OSError as exc:
        lock.release()
        raise ResultsError(f"{staging}: {exc.strerror}") from None
    return staging, lock


def _run_files(folder: Path) -> list[Path]:
    return [folder / n for n in RUN_FILES if (folder / n).exists()] + sorted(folder.glob("*.png"))


def promote(staging: Path, target: Path) -> Path | None:
    """Put a finished staging run in ``target``'s place; the run that was there moves to
    ``target/previous/<time>/`` (returned). Renames only, previous run first: a crash midway
    leaves every file in one of the two folders."""
    kept = None
    if holds_run(target):
        kept = target / PREVIOUS / _stamp()
        n = 1
        while kept.exists():
            n += 1
            kept = target / PREVIOUS / f"{_stamp()}-{n}"
        kept.mkdir(parents=True)
        for path in _run_files(target):
            os.replace(path, kept / path.name)
    for path in _run_files(staging):
        os.replace(path, target / path.name)
    (staging / LOCK).unlink(missing_ok=True)   # its holder is finishing; the folder goes
    try:
        staging.rmdir()
    except OSError:
        pass   # something the user put there stays
    return kept


def set_aside_torn_tail(folder: Path) -> str | None:
    """A run killed while writing a line leaves it torn (no newline): before resuming, move the
    fragment to ``raw.jsonl.torn`` (kept, never deleted) so that the file reads again. Returns
    the fragment's new home, or None when the file ends cleanly."""
    path = Path(folder) / RAW
    with open(path, "rb") as f:
        data = f.read()
    if not data or data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n") + 1
    torn = path.with_name(RAW + ".torn")
    with open(torn, "ab") as f:
        f.write(data[cut:] + b"\n")
    with open(path, "r+b") as f:
        f.truncate(cut)
    return str(torn)


def cache_root() -> str:
    """eagerbench's own cache folder (prepared states, stand-in data): ``$EAGERBENCH_CACHE``
    or ``~/.cache/eagerbench``."""
    return os.environ.get("EAGERBENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "eagerbench")
