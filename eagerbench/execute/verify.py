"""``eagerbench verify``: the same l-BFGS, in float64, must give the same numbers in every mode.

The modes of one framework run one after another in a worker process of their own (a process
per mode paid TensorFlow's 7 s import three times), each from the same data and initial
weights; PyTorch eager is the reference, and ``torch.optim.LBFGS`` itself is the reference's
reference. Each framework's
gradient is also checked against central finite differences (UFLDL's gradient check).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional

import numpy as np

from eagerbench.execute.local import run_batch
from eagerbench.records.model import CellResult, CellSpec

REFERENCE = "torch"
OPTIM = "torch.optim.LBFGS"
GRADCHECK_TOL = 1e-6     # UFLDL expects ~1e-9 in double precision; 1e-6 leaves room for h


@dataclass(frozen=True)
class VerifyRun:
    """What one mode's verify job found: its losses, final weights and gradient check."""

    status: str
    reason: str = ""
    pid: Optional[int] = None
    losses: tuple[float, ...] = ()
    x: Optional[np.ndarray] = None
    gradcheck: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def of(cls, result: CellResult, x: Optional[np.ndarray]) -> "VerifyRun":
        return cls(result.status, result.reason, result.extra.get("pid"),
                   tuple(result.extra.get("losses") or ()), x,
                   result.extra.get("gradcheck", float("nan")))


def run(modes: list[str], params: dict, iters: int, threads: int, seed: int, data,
        timeout: float, on_progress=lambda label, msg: None) -> dict:
    """Run every mode (and torch.optim.LBFGS); return per-run losses, weights and grad checks."""
    from eagerbench.frameworks.modes import get_mode

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        by_framework: dict[str, list[CellSpec]] = {}
        for mode in [OPTIM] + list(modes):
            cell = CellSpec("lbfgs", params, mode, dtype="float64", threads=threads, seed=seed,
                        iters=iters, warmup=0, data=data, job="verify",
                        save=str(Path(tmp) / f"{mode}.npy"))
            framework = "torch" if mode == OPTIM else get_mode(mode).framework
            by_framework.setdefault(framework, []).append(cell)
        for cells in by_framework.values():
            running = {"at": 0}   # the worker runs its cells in order

            def progress(msg, cells=cells, running=running):
                on_progress(cells[running["at"]].mode, msg)

            for cell, (res,) in run_batch(cells, timeout, progress):
                runs[cell.mode] = VerifyRun.of(res, np.load(str(cell.save)) if res.ok else None)
                running["at"] = min(running["at"] + 1, len(cells) - 1)
    return {mode: runs[mode] for mode in [OPTIM] + list(modes)}


@dataclass(frozen=True)
class VerifyRow:
    """One mode's verdict: its largest relative differences against the run it is checked
    against, its gradient check, and whether it passes."""

    mode: str
    against: str
    status: str
    reason: str
    pid: Optional[int]
    loss_rel_diff: float = float("nan")
    weights_rel_diff: float = float("nan")
    iterations: Optional[int] = None
    gradcheck: float = float("nan")
    passed: bool = False

    def to_json(self) -> dict:
        """verify.json's row: NaN as null, the verdict under ``pass``."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["pass"] = row.pop("passed")
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _differences(run: VerifyRun, base: VerifyRun) -> tuple[float, float, int]:
    """The largest relative difference of the losses (over the iterations both ran) and of the
    final weights, and how many iterations were compared."""
    assert run.x is not None and base.x is not None
    a, b = np.asarray(run.losses), np.asarray(base.losses)
    n = min(len(a), len(b))
    loss = float(np.max(np.abs(a[:n] - b[:n]) / np.abs(b[:n])))
    weights = float(np.max(np.abs(run.x - base.x)) / np.max(np.abs(base.x)))
    return loss, weights, n


def compare(runs: dict[str, VerifyRun], rtol: float) -> list[VerifyRow]:
    """One row per mode: largest relative differences against PyTorch eager, and the grad check
    (PyTorch eager's row is checked against torch.optim.LBFGS)."""
    rows = []
    for mode, run in runs.items():
        if mode == OPTIM:
            continue
        against = REFERENCE if mode != REFERENCE else OPTIM
        base = runs.get(against) or VerifyRun("missing")
        row = VerifyRow(mode, against, run.status, run.reason, run.pid, gradcheck=run.gradcheck)
        if run.ok and base.ok:
            loss, weights, n = _differences(run, base)
            passed = loss <= rtol and weights <= rtol and run.gradcheck <= GRADCHECK_TOL
            row = replace(row, loss_rel_diff=loss, weights_rel_diff=weights, iterations=n,
                          passed=passed)
        rows.append(row)
    return rows


def failed_modes(rows: list[VerifyRow]) -> list[str]:
    return [row.mode for row in rows if not row.passed]


def save(rows: list[VerifyRow], settings: dict, out_dir: Path, wall_s: float) -> None:
    """verify.json beside a run's tables; the report shows it."""
    (out_dir / "verify.json").write_text(json.dumps(
        {"settings": {**settings, "reference": REFERENCE, "optim": OPTIM,
                      "gradcheck_tol": GRADCHECK_TOL}, "wall_s": wall_s,
         "rows": [row.to_json() for row in rows]}, indent=2) + "\n")
