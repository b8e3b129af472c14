"""The model suite (``eagerbench run --grid models``, ``make models``): what people train today,
in the libraries they use, each a training step and an inference step at two batch sizes (one
where dispatch matters on a CPU, one where compute does).

- ``resnet18``, ``mobilenet``, ``vit``, ``gpt``, ``bert``: the PyTorch model from its library
  (torchvision, timm, Hugging Face) in PyTorch's modes, and its Flax NNX counterpart in JAX's;
- ``keras-<model>``: the Keras 3 counterpart on JAX, TensorFlow and PyTorch, eager and compiled
  by Keras's own switches (TensorFlow's models are these).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from eagerbench.models import keras_workload, nnx_workload, torch_workload
from eagerbench.models.common import INFER, TRAIN, per_framework
from workloads.zoo import config, flax_nets, keras_nets, torch_nets

STEPS = (TRAIN, INFER)
PARAMS = {"batch": (1, 16)}
SUITE = "models"


def images(p: dict, env, channels_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    shape = (p["batch"], *config.IMAGE)
    x = env.rng.standard_normal(shape).astype(np.float32)
    return (x.transpose(0, 3, 1, 2).copy() if channels_first else x,
            env.rng.integers(0, config.CLASSES, p["batch"]))


def tokens(c: dict, per_token: bool):
    def batch(p: dict, env) -> tuple[Any, Any]:
        ids = env.rng.integers(0, c["vocab"], (p["batch"], c["seq"]))
        targets = (env.rng.integers(0, c["vocab"], (p["batch"], c["seq"])) if per_token
                   else env.rng.integers(0, c["labels"], p["batch"]))
        return ids, targets
    return batch


def _torch_images(p: dict, env):
    import torch

    x, y = images(p, env, channels_first=True)
    return torch.from_numpy(x), torch.from_numpy(y)


def _torch_tokens(c: dict, per_token: bool):
    def batch(p: dict, env):
        import torch

        ids, targets = tokens(c, per_token)(p, env)
        return {"input_ids": torch.from_numpy(ids)}, torch.from_numpy(targets)
    return batch


# The learning rate changes no step's cost, only how far one update moves the model. At SGD's
# usual 0.01 one update took a batch-norm CNN on a batch of one from a loss of 3.65 to 0.46,
# where a gradient differing by rounding (XLA's batch norm against TensorFlow's) moved the
# next loss by 0.6%: the modes' agreement would measure the step's size, not their arithmetic.
# At 1e-4 the same modes agree to 1e-5. The transformers take AdamW's usual 1e-3.
SGD_LR, ADAMW_LR = 1e-4, 1e-3


def _optimizer(names: tuple[str, str, str], lr: float, **settings):
    """One optimizer at the same settings in every library (their defaults differ): ``names``
    in torch.optim, keras.optimizers and optax; a maker per library."""
    def maker(library: str):
        def make(parameters=None):
            if library == "torch":
                import torch

                return getattr(torch.optim, names[0])(parameters, lr=lr, **settings)
            if library == "keras":
                import keras

                return getattr(keras.optimizers, names[1])(lr, **settings)
            import optax

            return getattr(optax, names[2])(lr, **settings)
        return make
    return maker


_adamw = _optimizer(("AdamW", "AdamW", "adamw"), ADAMW_LR, weight_decay=0.01)
_sgd = _optimizer(("SGD", "SGD", "sgd"), SGD_LR, momentum=0.9)   # the CNNs'


MODELS = {   # name: (torch model, flax model or None, keras model, batch kind, optimizer)
    "resnet18": (torch_nets.resnet18, flax_nets.resnet18, keras_nets.resnet18, "images", _sgd),
    "mobilenet": (torch_nets.mobilenet, None, keras_nets.mobilenet, "images", _sgd),
    "vit": (torch_nets.vit, flax_nets.vit, keras_nets.vit, "images", _adamw),
    "gpt": (torch_nets.gpt, flax_nets.gpt, keras_nets.gpt, "gpt", _adamw),
    "bert": (torch_nets.bert, flax_nets.bert, keras_nets.bert, "bert", _adamw),
}
SUMMARIES = {
    "resnet18": "torchvision's ResNet-18 (PyTorch) and its Flax NNX counterpart (JAX), 64x64",
    "mobilenet": "torchvision's MobileNetV3-Small (PyTorch), 64x64 images",
    "vit": f"timm's ViT-Tiny, {config.VIT['depth']} blocks, 8x8 patches (PyTorch), and its "
           f"Flax counterpart",
    "gpt": f"Hugging Face's GPT-2, {config.GPT['depth']} layers of {config.GPT['width']} "
           f"(PyTorch), and its Flax counterpart",
    "bert": f"Hugging Face's BERT classifier, {config.BERT['depth']} layers of "
            f"{config.BERT['width']} (PyTorch), and its Flax counterpart",
}


def _batches(kind: str):
    """(torch's batch, NumPy's batch for Keras and Flax)."""
    if kind == "images":
        return _torch_images, images
    c = config.GPT if kind == "gpt" else config.BERT
    return _torch_tokens(c, kind == "gpt"), tokens(c, kind == "gpt")


def _native(name: str):
    torch_model, flax_model, _, kind, optimizer = MODELS[name]
    torch_batch, numpy_batch = _batches(kind)
    versions = {"torch": torch_workload(name, torch_model, torch_batch, steps=STEPS,
                                        params=PARAMS, optimizer=optimizer("torch"))}
    if flax_model is not None:
        versions["jax"] = nnx_workload(name, flax_model, numpy_batch, steps=STEPS,
                                       params=PARAMS, optimizer=optimizer("flax"))
    return per_framework(name, SUMMARIES[name], versions)


def _keras(name: str):
    _, _, keras_model, kind, optimizer = MODELS[name]
    return keras_workload(f"keras-{name}", keras_model, _batches(kind)[1], steps=STEPS,
                          params=PARAMS, optimizer=optimizer("keras"),
                          summary=f"the Keras 3 counterpart of {name}, on JAX, TensorFlow and "
                                  f"PyTorch")


WORKLOADS = tuple(replace(w, suite=SUITE) for w in
                  [_native(name) for name in MODELS] + [_keras(name) for name in MODELS])
