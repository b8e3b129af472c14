"""The yardstick for the project's l-BFGS: ``torch.optim.LBFGS`` itself on the same problem."""

from __future__ import annotations

import numpy as np

from workloads import lbfgs_optimizer


def run(X: np.ndarray, x0: np.ndarray, history: int, iters: int) -> tuple[list[float], np.ndarray]:
    """Losses after each of ``iters`` iterations and the final weights, in float64, from
    ``torch.optim.LBFGS(lr=1, line_search_fn=None)`` with the project's tolerances."""
    import torch

    X = torch.from_numpy(np.asarray(X, dtype=np.float64))
    w = torch.from_numpy(np.array(x0, dtype=np.float64)).requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=iters + 1, history_size=history,
                            tolerance_grad=lbfgs_optimizer.TOLERANCE_GRAD,
                            tolerance_change=lbfgs_optimizer.TOLERANCE_CHANGE,
                            line_search_fn=None)
    losses: list[float] = []
    weights: list[np.ndarray] = []

    def closure():
        opt.zero_grad()
        W = w.reshape(784, 196)
        Y = torch.sigmoid(torch.sigmoid(X @ W) @ W.T)
        loss = ((Y - X) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        weights.append(w.detach().numpy().copy())
        return loss

    opt.step(closure)
    # closure() ran at the start and after each of the first ``iters`` iterations (the last
    # iteration, number iters + 1, only moves w and is not ours).
    return losses[1:iters + 1], weights[iters]
