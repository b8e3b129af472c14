"""``torch``: PyTorch eager, the reference every slowdown is measured against."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends.torch_backend import TorchBackend

    return TorchBackend(device, dtype, compiled=False, threads=threads)


MODE = Mode(name="torch", framework="torch", install_hint="pip install torch==2.13.0",
            summary="PyTorch eager, op by op", compiled=False, baseline="torch", make=_make)
