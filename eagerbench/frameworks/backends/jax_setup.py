"""Environment JAX reads once, at import: set by the JAX modes before ``jax_backend`` imports it."""

from __future__ import annotations

import os


def prepare(device: str) -> None:
    if device == "cuda":
        # Let other modes (and other JAX processes) share the GPU.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    else:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
