"""``jax-jit``: the same JAX code with each step compiled by ``jax.jit`` (buffers donated)."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends import jax_setup

    jax_setup.prepare(device)   # before jax is imported
    from eagerbench.frameworks.backends.jax_backend import JaxBackend

    return JaxBackend(device, dtype, compiled=True, threads=threads)


MODE = Mode(name="jax-jit", framework="jax", install_hint="pip install 'jax[cpu]==0.10.2'",
            summary="JAX, steps compiled with jax.jit", compiled=True, baseline="jax", make=_make)
