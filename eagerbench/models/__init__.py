"""Your own model as a workload, in a few lines: a model, a loss, an optimizer and a batch.

- ``torch_workload``: an ``nn.Module`` (torchvision, timm, Hugging Face, your own), in every
  PyTorch mode;
- ``keras_workload``: a ``keras.Model``, the same model on JAX, TensorFlow and PyTorch, eager
  and compiled by Keras's own switches;
- ``nnx_workload``: a Flax NNX module, op by op and under ``jax.jit``.

Each offers a training step and an inference step (the ``step`` parameter); see their docs and
``docs/cli.md``. ``import_torchvision`` imports torchvision beside a CPU build of torch.
"""

from eagerbench.models.keras_models import keras_workload
from eagerbench.models.nnx_models import nnx_workload
from eagerbench.models.torch_models import torch_workload
from eagerbench.models.vision_ops import import_torchvision

__all__ = ["torch_workload", "keras_workload", "nnx_workload", "import_torchvision"]
