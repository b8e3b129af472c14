"""``jax``: JAX op by op (every jnp call dispatched and executed on its own)."""

from eagerbench.frameworks.modes.base import Mode


def _make(device: str, dtype: str, threads: int):
    from eagerbench.frameworks.backends import jax_setup

    jax_setup.prepare(device)   # before jax is imported
    from eagerbench.frameworks.backends.jax_backend import JaxBackend

    return JaxBackend(device, dtype, compiled=False, threads=threads)


MODE = Mode(name="jax", framework="jax", install_hint="pip install 'jax[cpu]==0.10.2'",
            summary="JAX op by op (no jit)", compiled=False, baseline="jax", make=_make)
