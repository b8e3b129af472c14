"""keras.applications' MobileNetV3-Small, one model on JAX, TensorFlow and PyTorch, each eager
and compiled by Keras's own switches.

    eagerbench run -w examples/keras_mobilenet.py
    eagerbench run -w examples/keras_mobilenet.py --modes jax,jax-jit -p step=infer
"""

from eagerbench.models import keras_workload


def model(p):
    import keras

    return keras.applications.MobileNetV3Small(
        input_shape=(64, 64, 3), weights=None, classes=10, dropout_rate=0.0,
        include_preprocessing=False, classifier_activation=None)


def batch(p, env):
    return (env.rng.standard_normal((p["batch"], 64, 64, 3)).astype("float32"),
            env.rng.integers(0, 10, p["batch"]))


WORKLOAD = keras_workload("keras-mobilenet-example", model, batch, steps=("train", "infer"),
                          params={"batch": (8,)})
