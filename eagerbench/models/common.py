"""What the model helpers share: the ``step`` parameter (a training or an inference step), the
values the agreement check compares, and the workload they make."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional

import numpy as np

from eagerbench.native import _params
from eagerbench.presentation import Series
from eagerbench.workload import Param, Task, Work, Workload

STEPS = ("train", "infer")
TRAIN, INFER = STEPS


def step_param(steps: Iterable[str]) -> Param:
    steps = tuple(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ValueError(f"steps {unknown or steps} are not among {', '.join(STEPS)}")
    return Param("step", steps, "train (forward, backward, optimizer update) or infer "
                 "(forward only)", kind="choice", choices=STEPS)


def model_params(params: dict | tuple, steps: Iterable[str]) -> tuple[Param, ...]:
    """The user's parameters (``native.workload``'s forms) and the step kind, first."""
    return (step_param(steps),) + _params(params or {})


def norms(named: Iterable[tuple[str, Any]], to_numpy: Callable[[Any], np.ndarray]) -> dict:
    """Each floating array's float64 norm, by name (a norm has no cancellation to blow a
    difference up)."""
    out = {}
    for name, value in named:
        array = np.asarray(to_numpy(value))
        if array.dtype.kind == "f":
            out[f"{name}_norm"] = float(np.linalg.norm(array.astype(np.float64)))
    return out


class Losses:
    """A training step's losses as the samples read them (after the clock stops), warm-up
    included: what the agreement check takes the loss after the first update from."""

    def __init__(self, to_float: Callable[[Any], float]):
        self.to_float, self.seen = to_float, list[float]()

    def observe(self, st: dict, mem: dict) -> dict:
        if "loss" not in st:
            return {}
        self.seen.append(self.to_float(st["loss"]))
        return {"loss": self.seen[-1]}

    def after_one_update(self) -> Optional[float]:
        """The second step's loss (the first step's update went into it)."""
        return self.seen[1] if len(self.seen) > 1 else None


def model_check(loss: Optional[float], out: Optional[dict], state: dict) -> dict:
    """What a model's modes must agree on after the same warm-up steps: the loss after the first
    update (it checks the forward, the backward and the update; later losses compound the
    modes' rounding differences through the training itself: a ResNet-18 with batch norm over
    a batch of one, whose modes agreed to 1e-5 after one update, differed by 1% after three),
    and the norm of the whole state, or the inference output's norm. Not each tensor's norm:
    under Adam a tensor whose gradient is zero in exact arithmetic (an attention key's bias)
    moves by rounding noise, normalised to a full step, and its norm differed by 7% between
    two modes whose losses agreed to 2e-6."""
    found = {} if loss is None else {"loss_after_one_update": loss}
    found.update(out or {})
    if state:
        found["state_norm"] = float(np.sqrt(sum(v * v for v in state.values())))
    return found


def loss_series(name: str) -> tuple:
    return (Series(y="loss", warmup=True, log_y=True, ylabel="loss",
                   title=f"{name}: training loss per step (every mode)", file=f"{name}_loss.png"),)


def observe_loss(to_float: Callable[[Any], float]) -> Callable[[dict, dict], dict]:
    """What each sample keeps: the training step's loss, read after the clock stopped."""
    return lambda st, mem: {"loss": to_float(st["loss"])} if "loss" in st else {}


def model_workload(name: str, frameworks: tuple[str, ...], build: Callable[[Any, dict, dict],
                   Task], params: tuple[Param, ...], *, summary: str, iters: int, warmup: int,
                   work: Optional[Callable[[dict], Work]] = None,
                   views: Optional[tuple] = None) -> Workload:
    """A ``Workload`` from a helper's ``build``."""
    return Workload(
        name=name, summary=summary, params=params, build=build,
        work=lambda values, dtype, observed: work(values) if work else Work(),
        iters=lambda values: iters, warmup=lambda values: warmup, frameworks=frameworks,
        views=views if views is not None else loss_series(name))


def per_framework(name: str, summary: str, by_framework: dict[str, Workload]) -> Workload:
    """One workload whose cells build, in each framework, that framework's version of a model
    (torchvision's ResNet-18 in PyTorch, its Flax counterpart in JAX). Their parameters must
    be the same."""
    first = next(iter(by_framework.values()))
    for other in by_framework.values():
        if [p.name for p in other.params] != [p.name for p in first.params]:
            raise ValueError(f"{name}: its frameworks' versions take different parameters")

    def build(B, values: dict, ctx: dict) -> Task:
        found = by_framework.get(B.framework)
        if found is None:
            from eagerbench.workload import Unsupported

            raise Unsupported(f"{name} has no {B.framework} version")
        return found.build(B, values, ctx)

    return dataclasses.replace(first, name=name, summary=summary, build=build,
                               frameworks=tuple(by_framework),
                               views=loss_series(name))
