"""``tf-eager``: TensorFlow eager execution, op by op."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends.tf_backend import TFBackend

    return TFBackend(device, dtype, compiled=False, threads=threads)


MODE = Mode(name="tf-eager", framework="tensorflow", install_hint="pip install tensorflow-cpu",
            summary="TensorFlow eager, op by op", compiled=False, baseline="tf-eager", make=_make)
