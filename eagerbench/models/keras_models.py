"""A Keras 3 model as a workload, on whichever framework the mode runs: the same model on JAX,
TensorFlow and PyTorch, each eager or compiled by Keras's own switches.

Keras compiles its own steps, so the mode chooses ``model.compile``'s settings instead of
wrapping the step: an eager mode runs ``run_eagerly=True``; ``tf-graph`` a ``tf.function``
(``jit_compile=False``); ``tf-xla``, ``jax-jit`` and ``torch-compile`` ``jit_compile=True``
(XLA, ``jax.jit``, ``torch.compile``). The step is ``train_on_batch`` or
``predict_on_batch``, Keras's own per-batch calls; each returns its values to Python, so every
call's outputs are consumed. Keras's backend is fixed when ``keras`` is first imported: each
framework's cells run in a worker of their own, which sets ``KERAS_BACKEND`` first.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

import numpy as np

from eagerbench.models.common import TRAIN, Losses, model_check, model_params, model_workload, norms
from eagerbench.native import Env
from eagerbench.workload import Task, Unsupported, Work, Workload

BACKEND_OF = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}


def import_keras(framework: str):
    """``keras`` with ``framework`` as its backend (refused when this process already imported
    Keras on another)."""
    wanted = BACKEND_OF[framework]
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = wanted
    import keras

    if keras.backend.backend() != wanted:
        raise Unsupported(f"Keras runs on {keras.backend.backend()} in this process, not "
                          f"{wanted}")
    return keras


def compile_settings(B) -> dict:
    """``model.compile``'s switches for the cell's mode (see the module's docs)."""
    if getattr(B, "cudagraph", False):
        raise Unsupported("Keras has no CUDA-graph mode")
    if not B.compiled:
        return {"run_eagerly": True, "jit_compile": False}
    xla = B.framework != "tensorflow" or bool(getattr(B, "jit_compile", False))
    return {"run_eagerly": False, "jit_compile": xla}


def _counting(model, method: str) -> list[int]:
    """Count the Python runs of ``model.<method>``: in a compiled mode Keras runs it only
    while tracing, so the count is the traces of its compiled step (the worker's retrace and
    recompile guards read it)."""
    runs = [0]
    original = getattr(model, method)

    def counted(*args, **kwargs):
        runs[0] += 1
        return original(*args, **kwargs)

    setattr(model, method, counted)
    return runs


def keras_workload(name: str, model: Callable[[dict], Any],
                   batch: Callable[[dict, Env], tuple[Any, Any]], *,
                   loss: Any = None,
                   optimizer: Optional[Callable[[], Any]] = None,
                   steps: tuple[str, ...] = (TRAIN,), params: dict | tuple = (),
                   frameworks: tuple[str, ...] = ("jax", "tensorflow", "torch"),
                   summary: str = "", iters: int = 10, warmup: int = 3,
                   work: Optional[Callable[[dict], Work]] = None) -> Workload:
    """A workload from a Keras model: ``model(params)`` builds it (random weights),
    ``batch(params, env)`` returns NumPy ``(inputs, targets)``, made the backend's tensors once;
    ``loss`` is a Keras loss's name or a function ``(y_true, y_pred)`` (default: cross-entropy
    of logits against integer targets), ``optimizer()`` makes the optimizer (default: SGD with
    momentum)."""
    def build(B, values: dict, ctx: dict) -> Task:
        keras = import_keras(B.framework)
        settings = compile_settings(B)
        keras.utils.set_random_seed(ctx["seed"])
        env = Env(B.framework, B.native_device(), B.dtype, ctx["seed"],
                  np.random.default_rng(ctx["seed"]), B)
        net = model(dict(values))
        make_optimizer = optimizer or (lambda: keras.optimizers.SGD(0.01, momentum=0.9))
        net.compile(optimizer=make_optimizer(), **settings, loss=loss or
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        inputs, targets = (keras.ops.convert_to_tensor(np.asarray(a))
                           for a in batch(dict(values), env))
        training = values["step"] == TRAIN
        traces = _counting(net, "train_step" if training else "predict_step")
        if B.compiled:
            B.watch_traces(lambda: traces[0])

        def train(st: dict, mem: dict) -> tuple[dict, dict]:
            return {**st, "loss": net.train_on_batch(st["inputs"], st["targets"])}, mem

        def infer(st: dict, mem: dict) -> tuple[dict, dict]:
            return {**st, "out": net.predict_on_batch(st["inputs"])}, mem

        losses = Losses(float)
        return Task(step=train if training else infer,
                    st={"inputs": inputs, "targets": targets}, mem={}, observe=losses.observe,
                    check=lambda st, mem: _check(net, st, losses),
                    info={"parameters": int(net.count_params()), "keras": keras.__version__,
                          "compile": settings})

    return model_workload(name, tuple(frameworks), build, model_params(params, steps),
                          summary=summary or f"Keras model from {model.__module__}",
                          iters=iters, warmup=warmup, work=work)


def _check(net, st: dict, losses: Losses) -> dict:
    """The loss after one update or the output's norm, and the norm of every variable
    together."""
    import keras

    return model_check(losses.after_one_update(),
                       norms([("out", st["out"])], np.asarray) if "out" in st else None,
                       norms(((v.path, v) for v in net.variables),
                             lambda v: keras.ops.convert_to_numpy(v)))
