"""``torch-compile``: the PyTorch code with each step compiled by ``torch.compile``.

``--compile-mode`` picks torch.compile's mode (default, reduce-overhead, max-autotune). Steps with
data-dependent Python control flow (l-BFGS) compile their loss and gradient only.
"""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int, compile_mode: str = "default"):
    from eagerbench.frameworks.backends.torch_backend import TorchBackend

    return TorchBackend(device, dtype, compiled=True, threads=threads, compile_mode=compile_mode)


MODE = Mode(name="torch-compile", framework="torch", install_hint="pip install torch==2.13.0",
            summary="PyTorch, steps compiled with torch.compile", compiled=True,
            baseline="torch", make=_make, options=("compile_mode",),
            since="2.1")   # 2.0 had torch.compile, but not for Python 3.11
