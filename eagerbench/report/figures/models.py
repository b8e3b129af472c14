"""The model suite's plot: each compiled mode's eager tax per model cell, with its interval,
one panel per step kind, on a log axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eagerbench.report.figures.headline import DPI
from eagerbench.report.models import ModelTax

FILE = "models.png"


def figure(taxes: list[ModelTax], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not taxes:
        return None
    steps = list(dict.fromkeys(t.step for t in taxes))
    modes = list(dict.fromkeys(t.compiled.mode for t in taxes))
    colors = {mode: plt.get_cmap("tab10")(i % 10) for i, mode in enumerate(modes)}
    height = max(3.0, 0.24 * max(sum(t.step == s for t in taxes) for s in steps) + 1.2)
    fig, axes = plt.subplots(1, len(steps), figsize=(6.4 * len(steps), height), squeeze=False)
    for ax, step in zip(axes[0], steps):
        mine = sorted((t for t in taxes if t.step == step),
                      key=lambda t: (t.model, t.library, t.batch, modes.index(t.compiled.mode)))
        y = np.arange(len(mine))
        for i, t in enumerate(mine):
            r = t.tax
            low, high = r.value - r.lo, r.hi - r.value
            ax.errorbar([r.value], [i], xerr=[[low], [high]] if np.isfinite(low) else None,
                        fmt="o", ms=4, color=colors[t.compiled.mode], capsize=2)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(y, [f"{t.model} {t.library} b={t.batch} [{t.compiled.mode}]"
                          for t in mine], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("eager tax: eager time / compiled time (right of 1: compiling pays)")
        ax.set_title(f"{step} step", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / FILE, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out / FILE
