"""``eagerbench verify``: the same l-BFGS, in float64, must give the same numbers in every mode.

The modes of one framework run one after another in a worker process of their own (a process
per mode paid TensorFlow's 7 s import three times), each from the same data and initial
weights; PyTorch eager is the reference, and ``torch.optim.LBFGS`` itself is the reference's
reference. Each framework's
gradient is also checked against central finite differences (UFLDL's gradient check).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.runner import Cell, run_batch

REFERENCE = "torch"
OPTIM = "torch.optim.LBFGS"
GRADCHECK_TOL = 1e-6     # UFLDL expects ~1e-9 in double precision; 1e-6 leaves room for h


def run(modes: list[str], params: dict, iters: int, threads: int, seed: int, data,
        timeout: float, on_progress=lambda label, msg: None) -> dict:
    """Run every mode (and torch.optim.LBFGS); return per-run losses, weights and grad checks."""
    from eagerbench.modes import get_mode

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        by_framework: dict[str, list[Cell]] = {}
        for mode in [OPTIM] + list(modes):
            cell = Cell("lbfgs", params, mode, dtype="float64", threads=threads, seed=seed,
                        iters=iters, warmup=0, data=data, job="verify",
                        save=str(Path(tmp) / f"{mode}.npy"))
            framework = "torch" if mode == OPTIM else get_mode(mode).framework
            by_framework.setdefault(framework, []).append(cell)
        for cells in by_framework.values():
            running = {"at": 0}   # the worker runs its cells in order

            def progress(msg, cells=cells, running=running):
                on_progress(cells[running["at"]].mode, msg)

            for cell, res in run_batch(cells, timeout, progress):
                if res["status"] == "ok":
                    res["x"] = np.load(cell.save)
                runs[cell.mode] = res
                running["at"] = min(running["at"] + 1, len(cells) - 1)
    return {mode: runs[mode] for mode in [OPTIM] + list(modes)}


def compare(runs: dict, rtol: float) -> pd.DataFrame:
    """One row per mode: largest relative differences against PyTorch eager, and the grad check."""
    rows = []
    for mode, res in runs.items():
        against = REFERENCE if mode != REFERENCE else OPTIM
        base = runs.get(against, {})
        row = {"mode": mode, "against": against, "status": res["status"],
               "reason": res.get("reason", ""), "pid": res.get("pid")}
        if res["status"] == "ok" and base.get("status") == "ok" and mode != OPTIM:
            a, b = np.asarray(res["losses"]), np.asarray(base["losses"])
            n = min(len(a), len(b))
            row["loss_rel_diff"] = float(np.max(np.abs(a[:n] - b[:n]) / np.abs(b[:n])))
            row["weights_rel_diff"] = float(np.max(np.abs(res["x"] - base["x"]))
                                            / np.max(np.abs(base["x"])))
            row["iterations"] = n
        row["gradcheck"] = res.get("gradcheck", np.nan)
        ok = res["status"] == "ok" and (mode == OPTIM or (
            row.get("loss_rel_diff", np.inf) <= rtol and row.get("weights_rel_diff", np.inf) <= rtol
            and row["gradcheck"] <= GRADCHECK_TOL))
        row["pass"] = bool(ok)
        rows.append(row)
    return pd.DataFrame([r for r in rows if r["mode"] != OPTIM])


def printable(table: pd.DataFrame) -> str:
    """The table as markdown, without the worker pids (kept in verify.json)."""
    return table.drop(columns=["pid"], errors="ignore").to_markdown(index=False, floatfmt=".3g")


def save(table: pd.DataFrame, settings: dict, out_dir: Path, wall_s: float) -> None:
    """verify.json beside a run's tables; the report shows it."""
    (out_dir / "verify.json").write_text(json.dumps(
        {"settings": settings, "wall_s": wall_s,
         "rows": table.replace({np.nan: None}).to_dict("records")}, indent=2) + "\n")


def wall_s(out_dir: Path) -> float | None:
    """How long the verify saved in a run folder took."""
    path = Path(out_dir) / "verify.json"
    return json.loads(path.read_text()).get("wall_s") if path.exists() else None


def markdown(out_dir: Path) -> str | None:
    """The verify section of a report, if the run folder holds verify.json."""
    path = Path(out_dir) / "verify.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    s = saved["settings"]
    table = pd.DataFrame(saved["rows"])
    return "\n".join([
        "## Verify: the same math in every mode", "",
        f"`eagerbench verify`: lbfgs in float64, history {s['history']}, batch {s['batch']}, "
        f"{s['iters']} iterations, seed {s['seed']}. Largest relative difference of the loss "
        f"(over all iterations) and of the final weights against `{REFERENCE}` (and `{REFERENCE}` "
        f"against `{OPTIM}` itself); `gradcheck` is `|g_fd - g| / |g_fd + g|` on a 20-image "
        f"instance. Pass: differences <= {s['rtol']:g}, gradcheck <= {GRADCHECK_TOL:g}.", "",
        printable(table), ""])
