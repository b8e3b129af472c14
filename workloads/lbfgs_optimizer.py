"""l-BFGS exactly as ``torch.optim.LBFGS`` runs it with no line search, written once on the
backend interface so every mode runs the same algorithm (the article's port, made literal).

The curvature pairs live in ring buffers ``S`` (steps), ``Y`` (gradient changes) and ``rho``
(1 / y.s) of ``history`` rows, so a compiled step has fixed shapes: ``k`` pairs are stored,
the newest in slot ``head - 1``. Slot-for-slot the arithmetic, and its order, is torch's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TOLERANCE_GRAD = 1e-7      # torch.optim.LBFGS defaults
TOLERANCE_CHANGE = 1e-9
CURVATURE_EPS = 1e-10      # a pair is stored only when y.s exceeds this


def _two_loop(B, mem, g, k, head, H, m):
    """The search direction ``-H g`` from the ``k`` stored pairs (newest to oldest, then back)."""
    S, Y, rho = mem["S"], mem["Y"], mem["rho"]

    def backward(j, carry):
        q, al = carry
        slot = (head - 1 - j) % m
        a = B.dot(B.buffer_read(S, slot), q) * B.buffer_read(rho, slot)
        return B.axpy(-a, B.buffer_read(Y, slot), q), B.stack_write(al, slot, a)

    q, al = B.fori_loop(0, k, backward, (-g, B.stack_new(m)))
    r = q * H

    def forward(j, r):
        slot = (head - k + j) % m
        be = B.dot(B.buffer_read(Y, slot), r) * B.buffer_read(rho, slot)
        return B.axpy(B.stack_read(al, slot) - be, B.buffer_read(S, slot), r)

    return B.fori_loop(0, k, forward, r)


def make_steps(B, value_and_grad: Callable, history: int, lr: float = 1.0):
    """The first iteration and every later one, each ``(st, mem) -> (st, mem)``."""
    m = history

    def finish(st, mem, d, t, k, head, H):
        # Shared tail of an iteration: step along d, re-evaluate, and compute torch's stop tests
        # as tensors (read after the timer stops, so the step never syncs on them).
        g, loss = st["g"], st["loss"]
        gtd = B.dot(g, d)
        x = B.axpy(t, d, st["x"])
        new_loss, new_g = value_and_grad(x)
        return {
            "x": x, "loss": new_loss, "g": new_g, "g_prev": g, "d": d, "t": t,
            "k": k, "head": head, "H": H,
            "stop_grad": B.max(abs(new_g)) <= TOLERANCE_GRAD,
            "stop_gtd": gtd > -TOLERANCE_CHANGE,
            "stop_step": B.max(abs(d * t)) <= TOLERANCE_CHANGE,
            "stop_loss": abs(new_loss - loss) < TOLERANCE_CHANGE,
        }, mem

    def first(st, mem):
        g = st["g"]
        t = B.minimum(1.0, 1.0 / B.sum(abs(g))) * lr
        return finish(st, mem, -g, t, st["k"], st["head"], st["H"])

    def later(st, mem):
        g = st["g"]
        y = g - st["g_prev"]
        s = st["d"] * st["t"]
        ys = B.dot(y, s)

        def store(S, Y, rho, k, head, H):
            S = B.buffer_write(S, head, s)
            Y = B.buffer_write(Y, head, y)
            rho = B.buffer_write(rho, head, 1.0 / ys)
            return S, Y, rho, B.int_min(k + 1, m), (head + 1) % m, ys / B.dot(y, y)

        def keep(S, Y, rho, k, head, H):
            return S, Y, rho, k, head, H

        S, Y, rho, k, head, H = B.cond(ys > CURVATURE_EPS, store, keep, mem["S"], mem["Y"],
                                       mem["rho"], st["k"], st["head"], st["H"])
        mem = {"S": S, "Y": Y, "rho": rho}
        d = _two_loop(B, mem, g, k, head, H, m)
        return finish(st, mem, d, B.scalar(lr), k, head, H)

    return first, later


def initial_state(B, value_and_grad: Callable, x0: np.ndarray, history: int):
    """``st, mem`` before the first iteration: the loss and gradient at ``x0``, empty memory."""
    x = B.asarray(x0)
    loss, g = value_and_grad(x)
    zero = B.scalar(0.0)
    false = zero > 1.0
    st = {"x": x, "loss": loss, "g": g, "g_prev": g, "d": g, "t": zero,
          "k": B.index(0), "head": B.index(0), "H": B.scalar(1.0),
          "stop_grad": false, "stop_gtd": false, "stop_step": false, "stop_loss": false}
    n = len(x0)
    mem = {"S": B.buffer(np.zeros((history, n))), "Y": B.buffer(np.zeros((history, n))),
           "rho": B.buffer(np.zeros(history))}
    return st, mem


VECTORS = ("x", "loss", "g", "g_prev", "d", "t", "H")


def export_state(B, st: dict, mem: dict) -> dict:
    """The state between two iterations as NumPy arrays (``resume_state`` reads it back)."""
    def array(value):
        if isinstance(value, list):   # a history kept as a Python list of rows (op by op)
            return np.stack([B.to_numpy(row) for row in value])
        return np.asarray(value if isinstance(value, (int, float)) else B.to_numpy(value))

    out = {name: array(st[name]) for name in VECTORS + ("k", "head")}
    out.update({name: array(mem[name]) for name in ("S", "Y", "rho")})
    return out


def resume_state(B, saved: dict):
    """``st, mem`` of an exported state, on this backend: every mode continues from the same
    numbers, whichever framework computed them."""
    false = B.scalar(0.0) > 1.0
    st = {name: B.asarray(saved[name]) for name in VECTORS}
    st.update(k=B.index(int(saved["k"])), head=B.index(int(saved["head"])), stop_grad=false,
              stop_gtd=false, stop_step=false, stop_loss=false)
    mem = {name: B.buffer(saved[name]) for name in ("S", "Y", "rho")}
    return st, mem


def pairs(B, st: dict) -> int:
    """How many curvature pairs the memory holds."""
    k = st["k"]
    return int(k if isinstance(k, int) else B.to_numpy(k))


STOP_REASONS = {
    "stop_grad": "gradient below tolerance_grad",
    "stop_gtd": "directional derivative above -tolerance_change",
    "stop_step": "step below tolerance_change",
    "stop_loss": "loss change below tolerance_change",
}


def stop_reason(B, st) -> str | None:
    """torch's reason to stop after this iteration, if any."""
    for key, why in STOP_REASONS.items():
        if bool(B.to_numpy(st[key])):
            return why
    return None
