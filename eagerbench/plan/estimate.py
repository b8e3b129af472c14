"""How long the cells of a run will take, for the progress bar's estimate from its first second.

Each cell's last landing interval on this machine (the wall time from the previous cell's
landing to its own: process start and compiles included) is kept in the cache folder; a cell
never measured here is guessed from the cells that were (or from a fixed guess on a first run).
The bar then scales the estimates by how fast the run actually goes, so a wrong guess corrects
itself as cells land.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eagerbench.records.model import CellSpec
from eagerbench.records.store import cache_root

FILE = "cell_seconds.json"
FIRST_GUESS_S = {False: 4.0, True: 15.0}    # a later process's cell, a first process's (compiles)


def key(cell: CellSpec) -> str:
    """A cell's identity for its landing time: what it runs, where, and how long it is asked to
    time (a test's 2-iteration cell must not set a real run's estimate), in which environment."""
    return json.dumps([cell.workload, cell.params, cell.mode, cell.device, cell.threads,
                       cell.repeat == 0, cell.why, cell.iters, cell.warmup, cell.min_time_s,
                       cell.options.get("env")], sort_keys=True, default=str)


def _path() -> Path:
    return Path(cache_root()) / FILE


def landing_times() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(_path().read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def expected(cells: list[CellSpec], known: dict[str, float]) -> list[float]:
    """Each cell's expected seconds: its own from an earlier run here, else the mean of the
    known cells of this plan (first processes apart), else a fixed first guess."""
    own = [known.get(key(c)) for c in cells]
    by_first: dict[bool, list[float]] = {}
    for cell, seconds in zip(cells, own):
        if seconds is not None:
            by_first.setdefault(cell.repeat == 0, []).append(seconds)
    guess = {first: sum(v) / len(v) for first, v in by_first.items()}
    return [seconds if seconds is not None else
            guess.get(c.repeat == 0, FIRST_GUESS_S[c.repeat == 0])
            for c, seconds in zip(cells, own)]


def remember(landed: dict[str, float]) -> None:
    """Keep the landing intervals of this run's cells (merged with the earlier ones)."""
    if not landed:
        return
    try:
        path = _path()
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**landing_times(), **landed}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged))
        os.replace(tmp, path)
    except OSError:
        pass    # an estimate is a courtesy: a read-only cache never fails a run


class Remaining:
    """Seconds left: the expected seconds of the cells not landed, scaled by how long the landed
    ones took against their expectation, less the time since the last one landed."""

    def __init__(self, expected_s: list[float]):
        self.total = sum(expected_s)
        self.done_expected = 0.0
        self.pace = 1.0
        self.at = 0.0           # elapsed seconds at the last landing

    def landed(self, expected_s: float, elapsed_s: float) -> None:
        self.done_expected += expected_s
        self.at = elapsed_s
        if self.done_expected > 0:
            self.pace = elapsed_s / self.done_expected

    def left(self, elapsed_s: float) -> float:
        return max((self.total - self.done_expected) * self.pace - (elapsed_s - self.at), 0.0)
