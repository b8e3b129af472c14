"""``torch-cudagraph``: PyTorch eager code captured once as a CUDA graph and replayed (GPU only).

Steps with host synchronisation or data-dependent Python control flow (l-BFGS) capture their
loss and gradient only; the optimizer runs eagerly around the replays.
"""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends.torch_backend import TorchBackend

    return TorchBackend(device, dtype, compiled=True, threads=threads, cudagraph=True)


MODE = Mode(name="torch-cudagraph", framework="torch", install_hint="pip install torch==2.13.0",
            summary="PyTorch, one step captured as a CUDA graph", compiled=True,
            baseline="torch", make=_make, devices=("cuda",), since="1.10")
