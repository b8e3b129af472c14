"""``eagerbench verify``: the same l-BFGS, in float64, must give the same numbers in every mode.

Each mode runs in its own worker process from the same data and initial weights; PyTorch eager is
the reference, and ``torch.optim.LBFGS`` itself is the reference's reference. Each framework's
gradient is also checked against central finite differences (UFLDL's gradient check).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from eagerbench.runner import Cell, run_cell

REFERENCE = "torch"
OPTIM = "torch.optim.LBFGS"
GRADCHECK_TOL = 1e-6     # UFLDL expects ~1e-9 in double precision; 1e-6 leaves room for h


def run(modes: list[str], params: dict, iters: int, threads: int, seed: int, data,
        timeout: float, on_progress=lambda label, msg: None) -> dict:
    """Run every mode (and torch.optim.LBFGS); return per-run losses, weights and grad checks."""
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in [OPTIM] + list(modes):
            save = str(Path(tmp) / f"{mode}.npy")
            cell = Cell("lbfgs", params, mode, dtype="float64", threads=threads, seed=seed,
                        iters=iters, warmup=0, data=data, job="verify", save=save)
            res = run_cell(cell, timeout, lambda msg, m=mode: on_progress(m, msg))
            if res["status"] == "ok":
                res["x"] = np.load(save)
            runs[mode] = res
    return runs


def compare(runs: dict, rtol: float) -> pd.DataFrame:
    """One row per mode: largest relative differences against PyTorch eager, and the grad check."""
    rows = []
    for mode, res in runs.items():
        against = REFERENCE if mode != REFERENCE else OPTIM
        base = runs.get(against, {})
        row = {"mode": mode, "against": against, "status": res["status"],
               "reason": res.get("reason", "")}
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
        table.to_markdown(index=False, floatfmt=".3g"), ""])
