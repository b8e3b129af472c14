"""The verify section of a run's report, read from the ``verify.json`` that ``eagerbench
verify --out`` saved beside the run (``verify.save``); nothing here runs a worker."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def printable(rows: list[dict]) -> str:
    """verify.json's rows as a markdown table, without the worker pids (kept in verify.json)."""
    table = pd.DataFrame(rows)
    return table.drop(columns=["pid"], errors="ignore").to_markdown(index=False, floatfmt=".3g")


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
    reference = s.get("reference", "torch")
    return "\n".join([
        "## Verify: the same math in every mode", "",
        f"`eagerbench verify`: lbfgs in float64, history {s['history']}, batch {s['batch']}, "
        f"{s['iters']} iterations, seed {s['seed']}. Largest relative difference of the loss "
        f"(over all iterations) and of the final weights against `{reference}` (and `{reference}` "
        f"against `{s.get('optim', 'torch.optim.LBFGS')}` itself); `gradcheck` is "
        f"`|g_fd - g| / |g_fd + g|` on a 20-image instance. Pass: differences <= {s['rtol']:g}, "
        f"gradcheck <= {s.get('gradcheck_tol', 1e-6):g}.", "",
        printable(saved["rows"]), ""])
