"""``elementwise``: the article's in-place ``b += a``, repeated ``ops`` times per step.

At small sizes the time is all dispatch (the eager tax in its purest form); at large sizes it is
memory bandwidth, and every mode should converge.
"""

from __future__ import annotations

import os

from eagerbench.presentation import Sweep
from eagerbench.workload import Param, Task, Work, Workload

ITEM_BYTES = {"float32": 4, "float64": 8}


def large_size() -> int:
    """The large end of the default sweep: 1 GiB float32 vectors (the article's), fewer elements
    where two such vectors and their copies would not fit in a quarter of this machine's memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 8 << 30
    size = 1 << 28
    while size * 4 * 4 > memory // 4 and size > 1 << 20:
        size //= 2
    return size


def _resolve(params: dict) -> dict:
    if params.get("ops") is None:
        # Enough ops per step to swamp the timer at small sizes, one op per step at the large end.
        params = {**params, "ops": max(1, min(100, 10**7 // params["size"]))}
    return params


def _build(B, params: dict, ctx: dict) -> Task:
    n, ops = params["size"], params["ops"]
    # Made by the framework: copying the 1 GiB vectors from NumPy took seconds each.
    a = B.full(n, 1.0 / 1024)  # exact: sums stay exact
    b = B.buffer_full(n, 0.0)

    def chain(st, mem):
        b = mem["b"]
        for _ in range(ops):
            b = B.add_inplace(b, st["a"])
        return st, {"b": b}

    def check(st, mem):
        # A dense read: a sparse one (TF's ResourceGather) would switch the variable to
        # copy-on-read mode, and every later add would copy it whole (7.6x slower at 2^28).
        return {"b0": float(B.to_numpy(mem["b"])[0])}

    return Task(step=B.compile_step(chain), st={"a": a}, mem={"b": b}, check=check)


def _work(params: dict, dtype: str, observed: dict) -> Work:
    # Each add reads a and b and writes b.
    item = ITEM_BYTES[dtype]
    return Work(flops=float(params["size"] * params["ops"]),
                bytes=3.0 * item * params["size"] * params["ops"], ops=params["ops"],
                footprint=2.0 * item * params["size"], arithmetic="elementwise")


def _iters(params: dict) -> int:
    return 50 if params["size"] * params["ops"] <= 10**7 else 6


WORKLOAD = Workload(
    name="elementwise",
    summary="b += a on vectors of `size` elements, `ops` times per step; reports us per op",
    # From a few elements (all dispatch) to 1 GiB (all memory traffic), 100x apart.
    params=(Param("size", (10, 10**3, 10**5, 10**7, large_size()), "vector length"),
            Param("ops", (None,), "in-place adds per step (default: 100, fewer for large sizes)")),
    build=_build,
    work=_work,
    iters=_iters,
    resolve=_resolve,
    quick={"size": 10},
    views=(Sweep(x="size", y="us_per_op", lines="ops", crossover=True,
                 ylabel="microseconds per op",
                 title="elementwise: us per op; *: size where dispatch stops dominating",
                 file="elementwise_us_per_op.png"),),
)
