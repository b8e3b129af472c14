"""A small Flax NNX convnet with optax's AdamW, op by op (jax) and under jax.jit (jax-jit).

    eagerbench run -w examples/flax_cnn.py -p batch=1,32
"""

from flax import nnx

from eagerbench.models import nnx_workload


class CNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(3, 32, (3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), strides=2, rngs=rngs)
        self.head = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.conv1(x)))
        return self.head(nnx.relu(self.conv2(x)).mean(axis=(1, 2)))


def batch(p, env):
    return (env.rng.standard_normal((p["batch"], 32, 32, 3)).astype("float32"),
            env.rng.integers(0, 10, p["batch"]))


def adamw():
    import optax

    return optax.adamw(1e-3)


WORKLOAD = nnx_workload("flax-cnn", lambda p, rngs: CNN(rngs), batch, optimizer=adamw,
                        params={"batch": (16,)})
