"""An MLP trained with a hand-written momentum update in JAX, as a user would bring it.

    eagerbench run -w examples/jax_mlp.py
    eagerbench run -w examples/jax_mlp.py -p hidden=256,1024 --dtype float64

eagerbench runs the step op by op (jax) and under jax.jit with the momentum buffers donated
(jax-jit), checks that both agree after the warm-up, and reports the eager tax and the
break-even of the compile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from eagerbench import native
from eagerbench.workload import Work

LEARNING_RATE = 0.05
MOMENTUM = 0.9


def setup(params: dict, env: native.Env):
    """Weights, momentum buffers and one batch of a regression problem."""
    sizes = [params["inputs"]] + [params["hidden"]] * params["layers"] + [params["outputs"]]

    def array(shape, scale=1.0):
        return jnp.asarray(env.rng.standard_normal(shape) * scale, dtype=env.dtype)

    weights = [{"w": array((a, b), (2.0 / a) ** 0.5), "b": jnp.zeros((b,), env.dtype)}
               for a, b in zip(sizes[:-1], sizes[1:])]
    st = {"weights": weights, "x": array((params["batch"], params["inputs"])),
          "y": array((params["batch"], params["outputs"])), "loss": jnp.zeros((), env.dtype)}
    mem = {"velocity": jax.tree.map(jnp.zeros_like, weights)}
    return st, mem


def loss_fn(weights, x, y):
    for layer in weights[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    out = x @ weights[-1]["w"] + weights[-1]["b"]
    return jnp.mean((out - y) ** 2)


def step(st: dict, mem: dict):
    """Gradient, then momentum and weights updated by hand (no optax)."""
    loss, grads = jax.value_and_grad(loss_fn)(st["weights"], st["x"], st["y"])
    velocity = jax.tree.map(lambda v, g: MOMENTUM * v + g, mem["velocity"], grads)
    weights = jax.tree.map(lambda w, v: w - LEARNING_RATE * v, st["weights"], velocity)
    return {**st, "weights": weights, "loss": loss}, {"velocity": velocity}


def work(params: dict) -> Work:
    """Forward and backward of every matmul: 6 flops per weight per example."""
    sizes = [params["inputs"]] + [params["hidden"]] * params["layers"] + [params["outputs"]]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return Work(flops=6.0 * params["batch"] * weights)


WORKLOAD = native.workload(
    "jax-mlp", "jax", setup, step, work=work, iters=50, warmup=2,
    summary="an MLP's training step with a hand-written momentum update (JAX)",
    params={"batch": (128,), "inputs": (64,), "hidden": (256,), "layers": (3,),
            "outputs": (10,)})
