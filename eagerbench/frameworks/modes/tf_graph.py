"""``tf-graph``: the same TensorFlow code, each step traced once into a ``tf.function`` graph."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends.tf_backend import TFBackend

    return TFBackend(device, dtype, compiled=True, threads=threads)


MODE = Mode(name="tf-graph", framework="tensorflow", install_hint="pip install tensorflow-cpu",
            summary="TensorFlow, steps run as tf.function graphs", compiled=True,
            baseline="tf-eager", make=_make)
