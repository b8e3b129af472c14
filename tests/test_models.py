"""The model suite and the model helpers: every model builds from its library's constructor at
its smallest batch and steps, the helpers run a model in each mode of its framework with the
modes agreeing, and a random step is declared, not called a disagreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import build, run_steps

# Flax's models train under jax-jit (the functional split and merge, compiled) and BERT also
# eagerly (NNX's stateful step): an eager ResNet step takes 9 s here, a compiled one 3 s.
NATIVE = [("resnet18", "torch"), ("mobilenet", "torch"), ("vit", "torch"), ("gpt", "torch"),
          ("bert", "torch"), ("resnet18", "jax-jit"), ("vit", "jax-jit"), ("gpt", "jax-jit"),
          ("bert", "jax-jit"), ("bert", "jax")]
KERAS = ["keras-resnet18", "keras-mobilenet", "keras-vit", "keras-gpt", "keras-bert"]


@pytest.mark.parametrize("workload, mode", NATIVE, ids=[f"{w}-{m}" for w, m in NATIVE])
def test_each_model_builds_from_its_library_and_trains_a_step(workload, mode):
    """Its constructor with random weights (nothing downloaded), one batch of one, two
    training steps and an inference step; no dropout (the modes could not agree)."""
    B, task = build(mode, workload, {"step": "train", "batch": 1}, dtype="float32")
    seen, check, _ = run_steps(B, task, 2)
    assert all(np.isfinite(s["loss"]) for s in seen)
    assert check["state_norm"] > 0 and task.comparable and "random" not in task.info
    assert task.info["parameters"] > 10_000
    B, task = build(mode, workload, {"step": "infer", "batch": 1}, dtype="float32")
    _, check, _ = run_steps(B, task, 1)
    assert np.isfinite(check["out_norm"])


def _keras_in(backend: str, stepped: list[str]) -> dict:
    """Every Keras model built on ``backend``, those ``stepped`` trained a step, in a process
    of its own (Keras takes its backend when first imported)."""
    code = f"""
import json
import numpy as np
from eagerbench.frameworks.modes import get_mode
from workloads import get_workload
found = {{}}
B = get_mode({ {"jax": "jax", "tensorflow": "tf-eager", "torch": "torch"}[backend]!r}).make(
    "cpu", "float32", 1)
for name in {KERAS!r}:
    task = get_workload(name).build(B, {{"step": "train", "batch": 1}}, {{"seed": 1}})
    st, mem = task.step(task.st, task.mem) if name in {stepped!r} else (task.st, task.mem)
    import keras   # imported by the first build, on the backend it chose
    found[name] = [keras.backend.backend(), float(st.get("loss", 1.0)),
                   task.info["parameters"], task.check(st, mem)["state_norm"]]
print(json.dumps(found))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Keras's eager CNN steps on JAX take 13 s (ResNet-18) and 47 s (MobileNet) here: on JAX the
# transformers train and the CNNs build; the suite's run trains them all.
KERAS_TRAINED = {"jax": ["keras-vit", "keras-gpt", "keras-bert"], "tensorflow": KERAS,
                 "torch": KERAS}


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_each_keras_model_builds_on_each_backend_and_trains(backend):
    found = _keras_in(backend, KERAS_TRAINED[backend])
    assert set(found) == set(KERAS)
    for name, (used, loss, parameters, norm) in found.items():
        assert used == backend and np.isfinite(loss) and norm > 0, name
        assert parameters > 10_000, name


def test_the_keras_settings_follow_the_mode():
    """Each mode maps to Keras's own switch: eager runs eagerly, tf-graph a tf.function,
    tf-xla, jax-jit and torch-compile jit_compile=True."""
    from eagerbench.frameworks.modes import get_mode
    from eagerbench.models.keras_models import compile_settings

    expected = {"tf-eager": (True, False), "tf-graph": (False, False), "tf-xla": (False, True),
                "jax": (True, False), "jax-jit": (False, True), "torch": (True, False),
                "torch-compile": (False, True)}
    for mode, (eagerly, xla) in expected.items():
        settings = compile_settings(get_mode(mode).make("cpu", "float32", 1))
        assert (settings["run_eagerly"], settings["jit_compile"]) == (eagerly, xla), mode


def test_a_torch_model_with_dropout_is_a_random_step_not_compared():
    """GPT-2 with its default dropout: the modes draw different masks, so the task says so
    (``random``) and is not compared, instead of a DISAGREES with no cause given."""
    import torch

    from eagerbench.frameworks.modes import get_mode
    from eagerbench.models import torch_workload

    def model(p):
        return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.1),
                                   torch.nn.Linear(8, 2))

    def batch(p, env):
        return torch.randn(4, 8), torch.randint(0, 2, (4,))

    workload = torch_workload("dropped", model, batch)
    B = get_mode("torch").make("cpu", "float32", 1)
    task = workload.build(B, {"step": "train"}, {"seed": 1})
    assert not task.comparable and "dropout" in task.info["random"] and "p=0.1" in \
        task.info["random"]
    plain = torch_workload("plain", lambda p: torch.nn.Linear(8, 2), batch)
    assert plain.build(B, {"step": "train"}, {"seed": 1}).comparable


def test_torchvision_imports_beside_a_cpu_torch_and_refuses_detection_ops():
    """PyPI's torchvision is built against a CUDA torch: beside the CPU build its C++ ops do
    not load, and its import failed. The two schemas it needs are declared; its models run
    on the CPU torch, and a detection op fails with torchvision's own message."""
    import torch

    from eagerbench.models import import_torchvision
    from eagerbench.models.vision_ops import ops_declared, ops_load

    torchvision = import_torchvision()
    assert ops_declared() == (not ops_load())
    out = torchvision.models.resnet18(num_classes=3)(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3)
    if ops_declared():
        with pytest.raises(RuntimeError, match="Couldn't load custom C"):
            torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_the_default_check_sees_a_keras_model_and_an_nnx_module_kept_in_st():
    """native.workload's default check took only tensors: a Keras model (or any tf.Module)
    and a Flax module kept in ``st`` went unchecked. Their variables' norms are compared now."""
    import keras
    from flax import nnx

    from eagerbench.frameworks.modes import get_mode
    from eagerbench.native import _floats

    layer = keras.layers.Dense(3)
    layer.build((None, 2))
    B = get_mode("tf-eager").make("cpu", "float32", 1)
    found = _floats(B, {"model": layer, "loss": B.asarray(np.ones(()))})
    assert {k for k in found if k.startswith("model.")} >= {"model.dense/kernel_norm",
                                                            "model.dense/bias_norm"}
    class Net(nnx.Module):   # a user's module: defined outside flax
        def __init__(self):
            self.layer = nnx.Linear(2, 3, rngs=nnx.Rngs(0))

    J = get_mode("jax").make("cpu", "float32", 1)
    found = _floats(J, {"net": Net()})
    assert set(found) == {"net.layer/bias_norm", "net.layer/kernel_norm"}
    assert found["net.layer/kernel_norm"] > 0


def test_a_models_check_reads_the_loss_after_its_first_update_not_the_last():
    """Later losses compound the modes' rounding through the training itself (a batch-norm
    ResNet on a batch of one: 1e-5 apart after one update, 1% after three)."""
    B, task = build("torch", "bert", {"step": "train", "batch": 1}, dtype="float32")
    seen, check, _ = run_steps(B, task, 4)
    losses = [s["loss"] for s in seen]
    assert check["loss_after_one_update"] == losses[1] != losses[-1]
    assert "loss" not in check
