"""The why decomposition as a figure: per cell and mode, the share of its time each part
explains, stacked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eagerbench.report.explain import PARTS, WhyRow


def figure(why: list[WhyRow], workload: str, path: Path) -> Path:
    """Stacked bars per cell and mode: the share of its time each part explains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = [r for r in why if r.workload == workload]
    labels = [f"{r.params} [{r.mode}]" for r in group]
    y = np.arange(len(group))
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.2 * len(group) + 1.2)))
    left = np.zeros(len(group))
    colours = {"dispatch": "tab:orange", "pool": "tab:purple", "kernels": "tab:blue",
               "allocation": "tab:green", "remainder": "0.7"}
    for part in PARTS:
        share = np.clip(np.array([r.share(part) for r in group], dtype=float), 0, None)
        share = np.nan_to_num(share)
        ax.barh(y, share * 100, left=left, color=colours[part], label=part, height=0.8)
        left += share * 100
    ax.axvline(100, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of the time per call (past the line at 100%: the estimates explain more "
                  "than all)")
    ax.set_title(f"{workload}: where each cell's time per call goes", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.savefig(path, dpi=110, bbox_inches="tight")   # the long labels are never clipped
    plt.close(fig)
    return Path(path)
