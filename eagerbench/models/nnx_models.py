"""A Flax NNX model as a workload, in ``jax`` (op by op) and ``jax-jit``.

Each mode runs the step its users write for it: op by op, the model and its ``nnx.Optimizer``
are updated in place, as in eager code; under ``jax-jit`` the step is Flax's functional form
(``nnx.split`` once, ``nnx.merge`` and ``nnx.split`` inside the traced step), jitted with the
model's and optimizer's state donated, so that it is updated in place and not copied.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from eagerbench.models.common import TRAIN, Losses, model_check, model_params, model_workload, norms
from eagerbench.native import Env, path_names
from eagerbench.workload import Task, Unsupported, Work, Workload


def cross_entropy(logits, targets):
    """Mean cross-entropy of logits (a classifier's, or a language model's per token) against
    integer targets."""
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).mean()


def _flat(tree) -> list[tuple[str, Any]]:
    import jax

    return path_names(jax.tree_util.tree_flatten_with_path(tree)[0])


def _eager_steps(model, optimizer, loss):
    from flax import nnx

    def train(st: dict, mem: dict) -> tuple[dict, dict]:
        value, grads = nnx.value_and_grad(lambda m: loss(m(st["inputs"]), st["targets"]))(model)
        optimizer.update(model, grads)
        return {**st, "loss": value}, mem

    def infer(st: dict, mem: dict) -> tuple[dict, dict]:
        return {**st, "out": model(st["inputs"])}, mem

    return train, infer


def _functional_steps(graphdef, loss):
    """The steps over the split state (``mem["state"]``): what ``jax.jit`` traces."""
    from flax import nnx

    def train(st: dict, mem: dict) -> tuple[dict, dict]:
        model, optimizer = nnx.merge(graphdef, mem["state"])
        value, grads = nnx.value_and_grad(lambda m: loss(m(st["inputs"]), st["targets"]))(model)
        optimizer.update(model, grads)
        return {**st, "loss": value}, {"state": nnx.split((model, optimizer))[1]}

    def infer(st: dict, mem: dict) -> tuple[dict, dict]:
        model = nnx.merge(graphdef, st["state"])
        return {**st, "out": model(st["inputs"])}, mem

    return train, infer


def _count_functionally(B, objects, step, loss, training: bool) -> None:
    """Give the why phase a program it can trace for the in-place eager ``step``: JAX counts
    a step's ops by running it and then tracing it, and a step that updates modules in place
    cannot be traced (Flax refuses: "different trace level"). The program is the same step in
    Flax's functional form: run, it splits the modules, steps and puts the new state back;
    traced, it starts from the state that run split (its values do not change the ops)."""
    import jax
    from flax import nnx

    graphdef = nnx.split(objects)[0]
    functional_train, functional_infer = _functional_steps(graphdef, loss)
    split: dict = {}

    def program(st: dict, mem: dict) -> tuple[dict, dict]:
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(st))
        if not traced:
            split["state"] = nnx.split(objects)[1]
        # rebuilt here: a state's variables made outside a trace cannot be merged inside it
        state = jax.tree_util.tree_map(lambda x: x, split["state"])
        if not training:
            new_st, _ = functional_infer({**st, "state": state}, mem)
            return {k: v for k, v in new_st.items() if k != "state"}, mem
        new_st, new_mem = functional_train(st, {"state": state})
        if not traced:
            nnx.update(objects, new_mem["state"])
        return new_st, mem

    B.keep_eager(program, step)


def nnx_workload(name: str, model: Callable[[dict, Any], Any],
                 batch: Callable[[dict, Env], tuple[Any, Any]], *,
                 loss: Callable[[Any, Any], Any] = cross_entropy,
                 optimizer: Optional[Callable[[], Any]] = None,
                 steps: tuple[str, ...] = (TRAIN,), params: dict | tuple = (),
                 summary: str = "", iters: int = 10, warmup: int = 3,
                 work: Optional[Callable[[dict], Work]] = None) -> Workload:
    """A workload from a Flax NNX model: ``model(params, rngs)`` builds the ``nnx.Module``,
    ``batch(params, env)`` returns NumPy ``(inputs, targets)``, ``loss(output, targets)``
    defaults to cross-entropy, ``optimizer()`` returns an optax transformation (default: SGD
    with momentum)."""
    def build(B, values: dict, ctx: dict) -> Task:
        import jax
        import optax
        from flax import nnx

        if B.framework != "jax":
            raise Unsupported(f"{name} is a Flax model")
        env = Env("jax", B.native_device(), B.dtype, ctx["seed"],
                  np.random.default_rng(ctx["seed"]), B)
        net = model(dict(values), nnx.Rngs(ctx["seed"]))
        inputs, targets = (B.asarray(np.asarray(a)) if np.asarray(a).dtype.kind == "f"
                           else jax.device_put(np.asarray(a), B.native_device())
                           for a in batch(dict(values), env))
        training = values["step"] == TRAIN
        net.train() if training else net.eval()
        tx = optimizer() if optimizer else optax.sgd(0.01, momentum=0.9)
        opt = nnx.Optimizer(net, tx, wrt=nnx.Param) if training else None
        st: dict = {"inputs": inputs, "targets": targets}
        if B.compiled:
            graphdef, state = nnx.split((net, opt) if training else net)
            train, infer = _functional_steps(graphdef, loss)
            mem = {"state": state} if training else {}
            if not training:
                st["state"] = state

            def model_now(st: dict, mem: dict):
                return nnx.merge(graphdef, mem["state"] if training else st["state"])
        else:
            train, infer = _eager_steps(net, opt, loss)
            mem = {}
            _count_functionally(B, (net, opt) if training else net, train if training else infer,
                                loss, training)

            def model_now(st: dict, mem: dict):
                return (net, opt) if training else net
        losses = Losses(B.to_float)
        return Task(step=B.compile_step(train if training else infer, name), st=st, mem=mem,
                    observe=losses.observe,
                    check=lambda st, mem: _check(B, model_now(st, mem), st, losses),
                    info={"parameters": sum(int(np.prod(p.shape)) for _, p in
                                            _flat(nnx.state(net, nnx.Param)))})

    return model_workload(name, ("jax",), build, model_params(params, steps),
                          summary=summary or f"Flax NNX model from {model.__module__}",
                          iters=iters, warmup=warmup, work=work)


def _check(B, objects, st: dict, losses: Losses) -> dict:
    """The loss after one update or the output's norm, and the norm of the model's whole
    state."""
    from flax import nnx

    net = objects[0] if isinstance(objects, tuple) else objects
    return model_check(losses.after_one_update(),
                       norms([("out", st["out"])], B.to_numpy) if "out" in st else None,
                       norms(_flat(nnx.state(net)), B.to_numpy))
