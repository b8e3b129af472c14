"""An MLP step written in plain TensorFlow (variables, a GradientTape, an optimizer), in
tf-eager, tf-graph (tf.function) and tf-xla.

    eagerbench run -w examples/tf_mlp.py -p hidden=256,1024
"""

import tensorflow as tf

from eagerbench import native


def setup(params, env):
    """Weights as variables (updated in place by the step), one batch, an optimizer."""
    sizes = [32, params["hidden"], params["hidden"], 1]
    layers = [(tf.Variable(env.rng.standard_normal((a, b)) * (2.0 / a) ** 0.5, dtype=env.dtype),
               tf.Variable(tf.zeros((b,), env.dtype))) for a, b in zip(sizes, sizes[1:])]
    x = tf.constant(env.rng.standard_normal((params["batch"], 32)), env.dtype)
    y = tf.reduce_sum(x[:, :4], axis=1, keepdims=True)
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build([v for layer in layers for v in layer])
    return {"x": x, "y": y, "loss": tf.zeros((), env.dtype), "layers": layers,
            "optimizer": optimizer}, {}


def step(st, mem):
    variables = [v for layer in st["layers"] for v in layer]
    with tf.GradientTape() as tape:
        h = st["x"]
        for i, (w, b) in enumerate(st["layers"]):
            h = h @ w + b
            h = tf.nn.relu(h) if i < len(st["layers"]) - 1 else h
        loss = tf.reduce_mean((h - st["y"]) ** 2)
    st["optimizer"].apply_gradients(zip(tape.gradient(loss, variables), variables))
    return {**st, "loss": loss}, mem


WORKLOAD = native.workload("tf-mlp", "tensorflow", setup, step,
                           params={"hidden": (256,), "batch": (64,)})
