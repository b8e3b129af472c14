"""Framework-native workloads: a step written once in PyTorch, JAX or TensorFlow, measured in
every mode of that framework.

The user writes two functions in their framework and hands them to ``workload``::

    def setup(params, env):            # env.device, env.dtype (the framework's), env.rng, env.seed
        ...                            # build the model, optimizer and a batch
        return st, mem                 # dicts of tensors (mem: buffers a step may update)

    def step(st, mem):                 # one training step: the unit that is timed
        ...
        return st, mem                 # every output consumed by the next call

    WORKLOAD = eagerbench.native.workload("my-step", "torch", setup, step,
                                          params={"batch": (32,), "dim": (256,)})

eagerbench compiles the step the way each mode does (``torch.compile``, CUDA-graph capture,
``tf.function`` with and without XLA, ``jax.jit`` donating ``mem``), and gives it everything an
article workload gets: isolation, warm-up and compile cost, retrace and recompile guards,
intervals, and a check that every mode's outputs after the warm-up agree with its eager twin's.
PyTorch and TensorFlow steps may keep their model and optimizer in the closure and update them
in place; a JAX step is functional (parameters in ``st`` or ``mem``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from eagerbench.presentation import Series
from eagerbench.workload import Param, Task, Unsupported, Work, Workload

FRAMEWORKS = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "tf": "tensorflow"}


@dataclass(frozen=True)
class Env:
    """What ``setup`` needs to build on the cell's device with the cell's dtype."""

    framework: str
    device: Any          # torch.device, a jax Device, or a TensorFlow device string
    dtype: Any           # the framework's float dtype (float32 unless --dtype float64)
    seed: int
    rng: np.random.Generator
    backend: Any         # eagerbench's backend (``to_numpy``, ``block``), rarely needed


def _params(params: dict | tuple) -> tuple[Param, ...]:
    """``{"batch": (32, 64), "dim": 256, "act": ("gelu", "relu")}`` as ``Param``s."""
    if isinstance(params, tuple):
        return params
    out = []
    for name, default in params.items():
        values = tuple(default) if isinstance(default, (tuple, list)) else (default,)
        if all(isinstance(v, str) for v in values):
            out.append(Param(name, values, f"{name} (one of the workload's values)",
                             kind="choice", choices=values))
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out.append(Param(name, values, name))
        else:
            out.append(Param(name, tuple(float(v) for v in values), name, minimum=0,
                             kind="float"))
    return tuple(out)


def path_names(leaves: list) -> list[tuple[str, Any]]:
    """JAX's (key path, leaf) pairs as ``"blocks/0/kernel"`` names (a variable's ``.value``
    attribute left out)."""
    def part(key: Any) -> str:
        return str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))

    return [("/".join(part(k) for k in path if getattr(k, "name", None) != "value"), leaf)
            for path, leaf in leaves]


def _norm_of(array: Any) -> Optional[float]:
    array = np.asarray(array)
    if array.dtype.kind != "f":   # a norm: no cancellation to blow a difference up
        return None
    return float(np.linalg.norm(array.astype(np.float64)))


def _model_floats(tree: Any, prefix: str) -> Optional[dict]:
    """A Keras model or layer, a ``tf.Module`` (their ``variables``) or a Flax NNX module (its
    state), as norms by variable; None for anything else."""
    nnx = sys.modules.get("flax.nnx")   # imported by whoever made the module, if anyone
    if nnx is not None and isinstance(tree, nnx.Module):
        import jax

        named = path_names(jax.tree_util.tree_flatten_with_path(nnx.state(tree))[0])
    elif hasattr(tree, "variables") and not hasattr(tree, "shape") and not isinstance(
            tree, dict):
        named = [(getattr(v, "path", None) or v.name, v.numpy() if hasattr(v, "numpy") else v)
                 for v in tree.variables]
    else:
        return None
    norms = {f"{prefix}{name}_norm": _norm_of(value) for name, value in named}
    return {k: v for k, v in norms.items() if v is not None}


def _floats(B, tree: Any, prefix: str = "") -> dict:
    """Every floating tensor of a (nested) dict or list as its float64 norm, for the agreement
    check; a module's or optimizer's tensors through its ``state_dict``, a Keras model's or a
    ``tf.Module``'s through its ``variables``, a Flax NNX module's through its state."""
    out: dict = {}
    modelled = _model_floats(tree, prefix)
    if modelled is not None:
        return modelled
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(_floats(B, value, f"{prefix}{key}."))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            out.update(_floats(B, value, f"{prefix}{i}."))
    elif callable(getattr(tree, "state_dict", None)):   # a torch module or optimizer
        out.update(_floats(B, tree.state_dict(), prefix))
    elif hasattr(tree, "shape") and hasattr(tree, "dtype"):
        try:
            array = np.asarray(B.to_numpy(tree))
        except Exception:  # noqa: BLE001 - not a tensor this backend can read
            return out
        if array.dtype.kind == "f":   # a norm: no cancellation to blow a difference up
            out[f"{prefix.rstrip('.')}_norm"] = float(np.linalg.norm(array.astype(np.float64)))
    return out


def workload(name: str, framework: str, setup: Callable, step: Callable, *,
             params: dict | tuple = (), summary: str = "", iters: int = 20, warmup: int = 2,
             work: Optional[Callable[[dict], Work]] = None,
             check: Optional[Callable[[dict, dict], dict]] = None,
             observe: Optional[Callable[[dict, dict], dict]] = None,
             shown: tuple[str, ...] = (), views: Optional[tuple] = None,
             random: str = "") -> Workload:
    """A ``Workload`` from a framework-native ``setup`` and ``step`` (see the module docs).

    ``work(params)`` may give the FLOPs (or bytes) of one step, for rates; ``check(st, mem)`` the
    values compared across modes (default: the float64 norm of every floating tensor in ``st``);
    ``observe(st, mem)`` what each sample records (default: ``loss`` when ``st`` has one);
    ``views`` the figures and tables of its report section (``eagerbench.presentation``;
    default: the loss curve of every mode). ``random`` says what makes the step random
    ("dropout"): its modes draw different numbers, so their results are not compared (the
    page says why) instead of reported as disagreeing.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework {framework!r} is not one of torch, jax, tensorflow")
    framework = FRAMEWORKS[framework]

    def build(B, values: dict, ctx: dict) -> Task:
        if B.framework != framework:
            raise Unsupported(f"{name} is a {framework} workload")
        env = Env(framework, B.native_device(), B.dtype, ctx["seed"],
                  np.random.default_rng(ctx["seed"]), B)
        st, mem = setup(dict(values), env)
        return Task(step=B.compile_step(step, name), st=st, mem=mem,
                    observe=observe or (lambda s, m: {"loss": B.to_float(s["loss"])}
                                        if "loss" in s else {}),
                    check=check or (lambda s, m: _floats(B, s)), comparable=not random,
                    info={"random": random} if random else {})

    return Workload(
        name=name, summary=summary or f"{framework} step from {step.__module__}",
        params=_params(params), build=build,
        work=lambda values, dtype, observed: work(values) if work else Work(),
        iters=lambda values: iters, warmup=lambda values: warmup,
        frameworks=(framework,), step_function=step, shown=shown,
        views=views if views is not None else (
            Series(y="loss", warmup=True, log_y=True, ylabel="loss",
                   title=f"{name}: loss per step (every mode)", file=f"{name}_loss.png"),))
