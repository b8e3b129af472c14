"""``tf-xla``: the TensorFlow code as ``tf.function(jit_compile=True)``, compiled by XLA."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends.tf_backend import TFBackend

    return TFBackend(device, dtype, compiled=True, threads=threads, jit_compile=True)


MODE = Mode(name="tf-xla", framework="tensorflow", install_hint="pip install tensorflow-cpu",
            summary="TensorFlow, steps as tf.function(jit_compile=True)", compiled=True,
            baseline="tf-eager", make=_make, since="2.5")   # jit_compile=True
