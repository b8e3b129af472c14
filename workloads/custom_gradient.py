"""``custom-gradient``: the article's square whose backward pass adds noise, in a training loop.

A small tanh network is fitted to a teacher by gradient descent on ``mean(square(residual))``,
from the same start, with three squares (interleaved in one process):

- ``plain``: ``r * r``, differentiated by the framework as usual;
- ``custom``: the same square with an exact hand-written gradient ``2 r dy`` through the
  framework's custom-gradient facility (``torch.autograd.Function``, ``tf.custom_gradient``,
  ``jax.custom_vjp``): what that facility costs;
- ``noisy``: the article's square, gradient ``dy (2 r + noise * eps)`` with ``eps ~ N(0, 1)``:
  unbiased, but noisy, so training converges worse.
"""

from __future__ import annotations

import numpy as np

from eagerbench.presentation import Bars, Pivot, Series
from eagerbench.workload import Param, Task, Work, Workload

SQUARES = ("plain", "custom", "noisy")
FEATURES, HIDDEN = 32, 64
LR = 0.2


def problem(batch: int, seed: int):
    """(X, y, W1, W2): a teacher network's data and a student's start, the same everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, FEATURES))
    teacher = (rng.standard_normal((FEATURES, HIDDEN)) / np.sqrt(FEATURES),
               rng.standard_normal((HIDDEN, 1)) / np.sqrt(HIDDEN))
    y = np.tanh(X @ teacher[0]) @ teacher[1]
    W1 = rng.standard_normal((FEATURES, HIDDEN)) / np.sqrt(FEATURES)
    W2 = rng.standard_normal((HIDDEN, 1)) / np.sqrt(HIDDEN)
    return X, y, W1, W2


def make_squares(B, noise: float) -> dict:
    """The three squares on this backend: each ``(r, eps) -> r * r``."""
    exact = B.custom_gradient(lambda r, eps: r * r,
                              lambda xs, y, dy: (2.0 * xs[0] * dy, 0.0 * xs[1]))
    noisy = B.custom_gradient(lambda r, eps: r * r,
                              lambda xs, y, dy: (dy * (2.0 * xs[0] + noise * xs[1]), 0.0 * xs[1]))
    return {"plain": lambda r, eps: r * r, "custom": exact, "noisy": noisy}


def _build(B, params: dict, ctx: dict) -> Task:
    square = make_squares(B, params["noise"])[params["square"]]
    X, y, W1, W2 = problem(params["batch"], ctx["seed"])
    X, y = B.asarray(X), B.asarray(y)

    def loss(weights, eps):
        r = B.matmul(B.tanh(B.matmul(X, weights[0])), weights[1]) - y
        return B.mean(square(r, eps))

    def train(st, mem):
        eps, key = B.normal(st["key"], (params["batch"], 1))
        value, grads = B.value_and_grad(lambda w: loss(w, eps))([st["W1"], st["W2"]])
        return {"W1": st["W1"] - LR * grads[0], "W2": st["W2"] - LR * grads[1],
                "loss": value, "key": key}, mem

    W1, W2 = B.asarray(W1), B.asarray(W2)
    st = {"W1": W1, "W2": W2, "loss": B.scalar(0.0), "key": B.rng_key(ctx["seed"])}
    return Task(step=B.compile_step(train, f"train_{params['square']}"), st=st, mem={},
                observe=lambda st, mem: {"loss": B.to_float(st["loss"])},
                check=lambda st, mem: {"loss": B.to_float(st["loss"]), "w_norm": float(
                    np.linalg.norm(B.to_numpy(st["W1"]).astype(float)))},
                # The noisy square's noise comes from the framework's generator, which a
                # compiler may implement differently (Inductor's Philox, XLA's): its modes need
                # not draw the same numbers, so their values are not compared.
                comparable=params["square"] != "noisy")


WORKLOAD = Workload(
    name="custom-gradient",
    summary="a small net trained with the article's noisy-backprop square vs the plain square",
    params=(Param("square", SQUARES, "plain r*r, custom (exact custom gradient) or noisy "
                  "(interleaved)", kind="choice", choices=SQUARES),
            Param("noise", (1.0,), "standard deviation of the noise the noisy square adds to 2r",
                  minimum=0.0, kind="float"),
            Param("batch", (256,), "training examples (full-batch gradient descent)")),
    build=_build,
    work=lambda params, dtype, observed: Work(),   # time only
    iters=lambda p: 40,
    warmup=lambda p: 2,
    # torch.compile specialises again on the second call (its inputs are then its own outputs).
    min_warmup=2,
    interleave="square",
    views=(Series(y="loss", colour="square", warmup=True, log_y=True,
                  ylabel="training loss (MSE)",
                  title="custom gradient: plain vs noisy square (one line style per mode)",
                  file="custom_gradient.png"),
           Bars(y="median_ms", groups="square", ylabel="median ms per training step",
                title="custom gradient: time per step of each square",
                file="custom_gradient_time.png"),
           Pivot(index="square", title="ms per training step",
                 text="Median ms per gradient-descent step with each square (`custom` is the "
                      "exact gradient through the custom-gradient facility), by mode."),
           Pivot(index="square", value="final_loss", fmt=".4g",
                 title="loss after the last step",
                 text="The loss after each mode's last step. Faster modes take more steps "
                      "(every cell is timed for at least --min-time), so columns differ by "
                      "step count; modes compared after equal steps are in `cells.csv` "
                      "(`agreement_rel_diff`).")),
)
