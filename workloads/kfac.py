"""``kfac``: the article's KFAC-style whitened matmul, against gradient descent and Adam.

An untied 784-196-784 sigmoid autoencoder (MSE) on the first ``batch`` MNIST images, trained from
the same start by three optimizers (interleaved in one process):

- ``gd``: plain gradient descent;
- ``kfac``: the same gradient descent, with every matmul replaced by ``kfac_matmul``, whose custom
  gradient for the weights is ``m1 @ true_grad @ m2``: the true gradient whitened on both sides
  with ``m1 = S_A^-1`` and ``m2 = S_G^-1``, ``S_X = X^T X / n + lambda I``, estimated from the
  layer's input activations ``A`` and its per-example backprops ``G`` (this is KFAC for such
  networks);
- ``adam``: Adam on the plain gradient.
"""

from __future__ import annotations

import numpy as np

from eagerbench.presentation import Pivot, Series
from eagerbench.workload import Param, Task, Work, Workload
from workloads import autoencoder

OPTIMIZERS = ("gd", "kfac", "adam")
LAMBDA = 3e-3                  # the damping of the whitening matrices (the article's ~3e-3)
# Learning rates picked by a sweep on the stand-in data (batch 2000, 40 iterations, float64):
# each is the largest of a 3x grid that stays stable over 80 iterations.
LR = {"gd": 300.0, "kfac": 3.0, "adam": 0.01}
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def init_weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """UFLDL's uniform init for both layers, drawn once with NumPy."""
    v, h = autoencoder.VISIBLE, autoencoder.HIDDEN
    r = np.sqrt(6.0) / np.sqrt(v + h + 1)
    rng = np.random.default_rng(seed)
    return rng.uniform(-r, r, size=(v, h)), rng.uniform(-r, r, size=(h, v))


def make_kfac_matmul(B, batch: int, lam: float = LAMBDA):
    """``kfac_matmul(A, W) = A @ W`` whose weight gradient is ``S_A^-1 (A^T dZ) S_G^-1``.

    ``dZ`` is the backprop of a loss averaged over the ``batch`` examples, so the per-example
    backprops are ``G = batch * dZ``. The gradient for ``A`` is the true one, ``dZ @ W^T``.
    ``m1 @ g @ m2`` is computed as two linear solves instead of two inverses.
    """
    eyes = {}

    def eye(k):
        if k not in eyes:
            eyes[k] = B.eye(k)
        return eyes[k]

    def backward(xs, y, dz):
        A, W = xs
        true_w = B.matmul(B.transpose(A), dz)
        true_a = B.matmul(dz, B.transpose(W))
        s_a = B.matmul(B.transpose(A), A) * (1.0 / batch) + lam * eye(W.shape[0])
        g = dz * float(batch)
        s_g = B.matmul(B.transpose(g), g) * (1.0 / batch) + lam * eye(W.shape[1])
        left = B.solve(s_a, true_w)                                 # m1 @ true_grad
        return true_a, B.transpose(B.solve(s_g, B.transpose(left)))  # ... @ m2 (S_G symmetric)

    return B.custom_gradient(lambda A, W: B.matmul(A, W), backward)


def _build(B, params: dict, ctx: dict) -> Task:
    opt, batch = params["optimizer"], params["batch"]
    X = B.asarray(ctx["data"](batch))
    matmul = make_kfac_matmul(B, batch) if opt == "kfac" else B.matmul

    def loss(w):
        h = B.sigmoid(matmul(X, w[0]))
        err = B.sigmoid(matmul(h, w[1])) - X
        return B.mean(err * err)

    value_and_grad = B.value_and_grad(loss)
    lr = LR[opt]

    def descend(st, mem):
        value, (g1, g2) = value_and_grad([st["W1"], st["W2"]])
        return {"W1": st["W1"] - lr * g1, "W2": st["W2"] - lr * g2, "loss": value}, mem

    def adam(st, mem):
        value, grads = value_and_grad([st["W1"], st["W2"]])
        b1t, b2t = st["b1t"] * BETA1, st["b2t"] * BETA2   # tensors: a step count would retrace
        out = {"loss": value, "b1t": b1t, "b2t": b2t}
        for i, g in ((1, grads[0]), (2, grads[1])):
            m = BETA1 * st[f"m{i}"] + (1.0 - BETA1) * g
            v = BETA2 * st[f"v{i}"] + (1.0 - BETA2) * (g * g)
            step = (m / (1.0 - b1t)) / (B.sqrt(v / (1.0 - b2t)) + ADAM_EPS)
            out.update({f"W{i}": st[f"W{i}"] - lr * step, f"m{i}": m, f"v{i}": v})
        return out, mem

    w1, w2 = init_weights(ctx["seed"])
    st = {"W1": B.asarray(w1), "W2": B.asarray(w2), "loss": B.scalar(0.0)}
    if opt == "adam":
        st.update(m1=B.asarray(np.zeros_like(w1)), v1=B.asarray(np.zeros_like(w1)),
                  m2=B.asarray(np.zeros_like(w2)), v2=B.asarray(np.zeros_like(w2)),
                  b1t=B.scalar(1.0), b2t=B.scalar(1.0))
    step = B.compile_step(adam if opt == "adam" else descend, f"train_{opt}")
    return Task(step=step, st=st, mem={},
                observe=lambda st, mem: {"loss": B.to_float(st["loss"])},
                check=lambda st, mem: {"loss": B.to_float(st["loss"]),
                                       "w_norm": float(np.linalg.norm(B.to_numpy(st["W1"])))},
                info={"lr": lr, **({"lambda": LAMBDA} if opt == "kfac" else {})})


WORKLOAD = Workload(
    name="kfac",
    summary="784-196-784 autoencoder: KFAC whitened-matmul gradient descent vs GD vs Adam",
    params=(Param("optimizer", OPTIMIZERS, "gd, kfac or adam (interleaved)", kind="choice",
                  choices=OPTIMIZERS),
            Param("batch", (1000,), "training images (first `batch` of MNIST, full batch)")),
    build=_build,
    work=lambda params, dtype, observed: Work(),   # whitening adds O(n d^2): time only
    iters=lambda p: 20,
    warmup=lambda p: 2,
    # torch.compile specialises again on the second call (its inputs are then its own outputs).
    min_warmup=2,
    uses_data=True,
    interleave="optimizer",
    views=(Series(y="loss", colour="optimizer", warmup=True, log_y=True,
                  ylabel="training loss (MSE)", title="kfac: loss per iteration (every mode)",
                  file="kfac.png"),
           Series(y="loss", x="wall_s", colour="optimizer", warmup=True, log_x=True,
                  log_y=True, ylabel="training loss (MSE)",
                  title="kfac: loss against time spent", file="kfac_time.png"),
           Pivot(index="optimizer", title="ms per iteration",
                 text="Median ms per training iteration of each optimizer, by mode."),
           Pivot(index="optimizer", value="final_loss_and_time",
                 title="loss after the last iteration and total wall time",
                 text="Loss after every iteration ran (warm-up included), and the seconds they "
                      "took in all, first call included.")),
)
