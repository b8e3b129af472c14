"""A PyTorch model (any ``nn.Module``) as a workload: a training step (forward, loss, backward,
optimizer step) or an inference step, measured in every PyTorch mode.

The mode compiles the whole step function, as PyTorch's own dynamo benchmarks do: under
``torch.compile`` the backward pass is a graph break, and the report counts it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from eagerbench.models.common import TRAIN, Losses, model_check, model_params, model_workload, norms
from eagerbench.models.vision_ops import before_torch_libraries
from eagerbench.native import Env
from eagerbench.workload import Task, Unsupported, Work, Workload


def _call(module, inputs):
    """The model on a batch: a tensor, positional arguments (a tuple) or keywords (a dict)."""
    if isinstance(inputs, dict):
        return module(**inputs)
    if isinstance(inputs, (tuple, list)):
        return module(*inputs)
    return module(inputs)


def logits(output):
    """The tensor a model returned: Hugging Face's ``.logits``, a tuple's first, or itself."""
    found = getattr(output, "logits", None)
    if found is not None:
        return found
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def cross_entropy(output, targets):
    """Cross-entropy of a classifier's or a language model's logits against integer targets."""
    import torch.nn.functional as F

    scores = logits(output)
    return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1))


def random_layers(module) -> list[str]:
    """The dropout layers a training step draws masks in (p > 0): the modes then compute
    different steps, and their results are not compared."""
    import torch.nn as nn

    return [f"{name} (p={m.p:g})" for name, m in module.named_modules()
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


def _to(value, device, dtype):
    """A batch (a tensor, or a tuple or dict of them) on the cell's device, floats in its
    dtype."""
    import torch

    if isinstance(value, dict):
        return {k: _to(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device, dtype) for v in value)
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype if value.is_floating_point() else None)
    return value


def _steps(module, optimizer, loss):
    """The training and the inference step over ``st = {"inputs", "targets"}``."""
    import torch

    def train(st: dict, mem: dict) -> tuple[dict, dict]:
        optimizer.zero_grad(set_to_none=True)
        value = loss(_call(module, st["inputs"]), st["targets"])
        value.backward()
        optimizer.step()
        return {**st, "loss": value.detach()}, mem

    def infer(st: dict, mem: dict) -> tuple[dict, dict]:
        with torch.no_grad():
            out = logits(_call(module, st["inputs"]))
        return {**st, "out": out}, mem

    return train, infer


def torch_workload(name: str, model: Callable[[dict], Any],
                   batch: Callable[[dict, Env], tuple[Any, Any]], *,
                   loss: Callable[[Any, Any], Any] = cross_entropy,
                   optimizer: Optional[Callable[[Any], Any]] = None,
                   steps: tuple[str, ...] = (TRAIN,), params: dict | tuple = (),
                   summary: str = "", iters: int = 10, warmup: int = 3,
                   work: Optional[Callable[[dict], Work]] = None) -> Workload:
    """A workload from a model, a batch, a loss and an optimizer.

    ``model(params)`` builds the ``nn.Module`` (random weights: nothing is downloaded);
    ``batch(params, env)`` returns ``(inputs, targets)``, inputs a tensor, a tuple or a dict of
    keyword arguments (moved to the cell's device; floats cast to its dtype); ``loss(output,
    targets)`` defaults to cross-entropy on the logits; ``optimizer(parameters)`` to SGD with
    momentum. ``steps`` are the step kinds it offers (``train``, ``infer``), a parameter.
    """
    def build(B, values: dict, ctx: dict) -> Task:
        import torch

        if B.framework != "torch":
            raise Unsupported(f"{name} is a PyTorch model")
        torch.manual_seed(ctx["seed"])
        before_torch_libraries()   # a model from transformers or timm imports torchvision
        env = Env("torch", B.native_device(), B.dtype, ctx["seed"],
                  np.random.default_rng(ctx["seed"]), B)
        module = model(dict(values)).to(device=env.device, dtype=env.dtype)
        inputs, targets = _to(batch(dict(values), env), env.device, env.dtype)
        make_optimizer = optimizer or (lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9))
        training = values["step"] == TRAIN
        module.train(training)
        train, infer = _steps(module, make_optimizer(module.parameters()) if training else None,
                              loss)
        random = random_layers(module) if training else []
        losses = Losses(B.to_float)
        return Task(step=B.compile_step(train if training else infer, name),
                    st={"inputs": inputs, "targets": targets}, mem={}, observe=losses.observe,
                    check=lambda st, mem: _check(B, module, st, losses),
                    comparable=not random,
                    info={"parameters": sum(p.numel() for p in module.parameters()),
                          **({"random": "dropout " + ", ".join(random[:3])} if random else {})})

    return model_workload(name, ("torch",), build, model_params(params, steps),
                          summary=summary or f"PyTorch model from {model.__module__}",
                          iters=iters, warmup=warmup, work=work)


def _check(B, module, st: dict, losses: Losses) -> dict:
    """The loss after one update or the output's norm, and the norm of every parameter and
    buffer together."""
    return model_check(losses.after_one_update(),
                       norms([("out", st["out"])], B.to_numpy) if "out" in st else None,
                       norms(((k, v) for k, v in module.state_dict().items()
                              if v.is_floating_point()), B.to_numpy))
