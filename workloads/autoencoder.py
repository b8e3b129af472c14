"""The article's tied-weight autoencoder (784 -> 196 -> 784, sigmoid, MSE), on any backend."""

from __future__ import annotations

import numpy as np

VISIBLE, HIDDEN = 784, 196
N_PARAMS = VISIBLE * HIDDEN   # 153,664: optimised as one flat vector


def init_weights(seed: int) -> np.ndarray:
    """UFLDL's uniform init, drawn once with NumPy so every framework starts from the same x0."""
    r = np.sqrt(6.0) / np.sqrt(VISIBLE + HIDDEN + 1)
    return np.random.default_rng(seed).uniform(-r, r, size=N_PARAMS)


def make_loss(B, X):
    """``x -> mean((sigmoid(sigmoid(X @ W) @ W.T) - X)**2)`` with ``W = x.reshape(784, 196)``."""

    def loss(x):
        W = B.reshape(x, (VISIBLE, HIDDEN))
        h = B.sigmoid(B.matmul(X, W))
        Y = B.sigmoid(B.matmul(h, B.transpose(W)))
        err = Y - X
        return B.mean(err * err)

    return loss


def flops_per_evaluation(batch: int) -> float:
    """Two forward matmuls and three backward ones (dh, dW from each use of W), 2*b*784*196 each;
    element-wise work is negligible beside them."""
    return 5 * 2.0 * batch * VISIBLE * HIDDEN


def gradient_check(B, X: np.ndarray, x0: np.ndarray, coords: int = 24, h: float = 1e-5,
                   seed: int = 0) -> float:
    """UFLDL's gradient check on this backend: ``|g_fd - g| / |g_fd + g|`` over ``coords``
    random coordinates, with central differences of step ``h`` (use float64)."""
    loss = B.compile_function(make_loss(B, B.asarray(X)), "loss")
    value_and_grad = B.compile_function(B.value_and_grad(make_loss(B, B.asarray(X))), "vg")
    _, g = value_and_grad(B.asarray(x0))
    g = B.to_numpy(g)
    picked = np.random.default_rng(seed).choice(len(x0), size=coords, replace=False)
    fd = np.empty(coords)
    for j, i in enumerate(picked):
        e = np.zeros_like(x0)
        e[i] = h
        up, down = B.to_float(loss(B.asarray(x0 + e))), B.to_float(loss(B.asarray(x0 - e)))
        fd[j] = (up - down) / (2 * h)
    return float(np.linalg.norm(fd - g[picked]) / np.linalg.norm(fd + g[picked]))
