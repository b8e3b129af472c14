"""``lbfgs``: the article's headline benchmark, the tied-weight autoencoder trained on MNIST with
l-BFGS (no line search, lr 1). One timed iteration is one l-BFGS iteration: the two-loop
recursion, the step, and the loss + gradient re-evaluation.

Every cell starts from the same prepared state: the iterate after ``history`` iterations from
the standard start, computed once per run by one mode (``Workload.prepare``). Its memory is then
full, so every timed iteration holds the ``history`` pairs it is labelled with (the article's
medians were over mostly full memories), and the ``pairs`` column shows what it held.
"""

from __future__ import annotations

from eagerbench.presentation import Series, Sweep
from eagerbench.workload import Param, Task, Work, Workload
from workloads import autoencoder, lbfgs_optimizer


def _build(B, params: dict, ctx: dict) -> Task:
    history = params["history"]
    X = B.asarray(ctx["data"](params["batch"]))
    value_and_grad = B.value_and_grad(autoencoder.make_loss(B, X))
    start = ctx.get("prepared")
    if start:
        st, mem = lbfgs_optimizer.resume_state(B, start)
    else:
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
    # The first iteration differs (no memory yet, t from |g|): it is its own function, so a
    # graph mode traces both during warm-up and neither while timing. A prepared state is past it.
    calls = [1 if start else 0]

    def step(st, mem):
        calls[0] += 1
        return first(st, mem) if calls[0] == 1 else later(st, mem)

    def observe(st, mem):
        return {"loss": B.to_float(st["loss"]), "pairs": lbfgs_optimizer.pairs(B, st)}

    def check(st, mem):
        return {"loss": B.to_float(st["loss"]),
                "x_sum": float(B.to_numpy(st["x"]).astype("float64").sum())}

    return Task(step=step, st=st, mem=mem, observe=observe,
                stopped=lambda st: lbfgs_optimizer.stop_reason(B, st), check=check,
                info={"compiled": ("whole l-BFGS iteration" if whole_step
                                   else "loss and gradient only")} if B.compiled else {})


def _prepare(B, params: dict, ctx: dict) -> dict:
    """The state after ``history`` iterations from the standard start: the memory then holds
    ``history - 1`` pairs, and the next iteration (the first warm-up) fills it."""
    task = _build(B, params, {**ctx, "prepared": None})
    st, mem = task.st, task.mem
    for _ in range(params["history"]):
        st, mem = task.step(st, mem)
    return lbfgs_optimizer.export_state(B, st, mem)


def _work(params: dict, dtype: str, observed: dict) -> Work:
    # One loss + gradient evaluation, plus the two-loop recursion: each stored pair is visited by
    # a dot and an axpy in both loops (8 flops per element), over the pairs the memory held.
    pairs = observed.get("pairs", params["history"])
    return Work(flops=autoencoder.flops_per_evaluation(params["batch"])
                + 8.0 * pairs * autoencoder.N_PARAMS)


WORKLOAD = Workload(
    name="lbfgs",
    summary="tied-weight 784-196 autoencoder on MNIST, l-BFGS with no line search (the article's)",
    params=(Param("history", (5, 100), "l-BFGS memory size m"),
            Param("batch", (60000, 10000), "training images used (first `batch` of MNIST)")),
    build=_build,
    work=_work,
    # Per process; every cell runs in --repeat processes. --iters 100 gives the article's runs.
    iters=lambda p: 2 if p["batch"] > 20000 else 5,
    # One warm-up call traces and compiles the iteration (the prepared state is past the
    # first); a mode that compiles again on its second call gets that call before timing too
    # (calibration), and a compile while timing would be flagged.
    warmup=lambda p: 1,
    uses_data=True,
    min_warmup=1,
    prepare=_prepare,
    prepare_params=("history", "batch"),
    shown=("pairs",),
    # At batch 60k PyTorch eager allocates fresh 188 MB tensors every iteration: with huge pages
    # the page faults shrink, and so does its gap to TensorFlow eager.
    companions=(({"history": 5, "batch": 60000}, "torch", {"allocator": "thp"}),),
    quick={"history": 5, "batch": 10000},
    views=(Series(y="ms", panels=("history", "batch"), marks=True,
                  ylabel="ms per l-BFGS iteration", title="l-BFGS: ms per iteration",
                  file="lbfgs_iterations.png"),
           Series(y="loss", panels=("history", "batch"), warmup=True, log_y=True,
                  ylabel="training loss (MSE)", title="l-BFGS: loss (every mode)",
                  file="lbfgs_loss.png"),
           Sweep(x="batch", lines="history", log_x=False, log_y=False, quartiles=True,
                 ylabel="median ms per l-BFGS iteration",
                 title="l-BFGS iteration time against batch size", file="lbfgs_batch.png")),
)
