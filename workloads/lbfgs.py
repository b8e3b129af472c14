"""``lbfgs``: the article's headline benchmark, the tied-weight autoencoder trained on MNIST with
l-BFGS (no line search, lr 1). One timed iteration is one l-BFGS iteration: the two-loop
recursion, the step, and the loss + gradient re-evaluation."""

from __future__ import annotations

from eagerbench.workload import Param, Task, Work, Workload
from workloads import autoencoder, lbfgs_optimizer


def _build(B, params: dict, ctx: dict) -> Task:
    history = params["history"]
    X = B.asarray(ctx["data"](params["batch"]))
    value_and_grad = B.value_and_grad(autoencoder.make_loss(B, X))
    st, mem = lbfgs_optimizer.initial_state(B, value_and_grad,
                                            autoencoder.init_weights(ctx["seed"]), history)
    whole_step = not B.compiled or B.graph_control_flow
    if not whole_step:
        # The two-loop recursion's trip count and the curvature test are data-dependent Python
        # control flow here: compile the loss and gradient (where the FLOPs are), as a user of
        # this framework would, and run the optimizer's bookkeeping eagerly.
        value_and_grad = B.compile_function(value_and_grad, "loss_and_grad")
    first, later = lbfgs_optimizer.make_steps(B, value_and_grad, history)
    if whole_step:
        first, later = B.compile_step(first, "first"), B.compile_step(later, "iteration")
    calls = [0]

    def step(st, mem):
        # The first iteration differs (no memory yet, t from |g|): it is its own function, so a
        # graph mode traces both during warm-up and neither while timing.
        calls[0] += 1
        return first(st, mem) if calls[0] == 1 else later(st, mem)

    def observe(st, mem):
        return {"loss": B.to_float(st["loss"])}

    def check(st, mem):
        return {"loss": B.to_float(st["loss"]),
                "x_sum": float(B.to_numpy(st["x"]).astype("float64").sum())}

    return Task(step=step, st=st, mem=mem, observe=observe,
                stopped=lambda st: lbfgs_optimizer.stop_reason(B, st), check=check,
                info={"compiled": ("whole l-BFGS iteration" if whole_step
                                   else "loss and gradient only")} if B.compiled else {})


def _work(params: dict, dtype: str, warmup: int = 0, iters: int = 1) -> Work:
    # One loss + gradient evaluation, plus the two-loop recursion: each stored pair is visited by
    # a dot and an axpy in both loops (8 flops per element). The memory fills one pair per
    # iteration, so count the mean number of pairs held over the timed iterations.
    n, m = autoencoder.N_PARAMS, params["history"]
    pairs = sum(min(m, warmup + i) for i in range(max(iters, 1))) / max(iters, 1)
    return Work(flops=autoencoder.flops_per_evaluation(params["batch"]) + 8.0 * pairs * n)


WORKLOAD = Workload(
    name="lbfgs",
    summary="tied-weight 784-196 autoencoder on MNIST, l-BFGS with no line search (the article's)",
    params=(Param("history", (5, 100), "l-BFGS memory size m"),
            Param("batch", (60000, 10000), "training images used (first `batch` of MNIST)")),
    build=_build,
    work=_work,
    # Sized to keep the default suite (every mode) near 10 minutes on 2 cores; --iters 100
    # reproduces the article's runs.
    iters=lambda p: 5 if p["batch"] > 20000 else 20,
    warmup=lambda p: 2,
    uses_data=True,
    min_warmup=2,
)
