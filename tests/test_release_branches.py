"""Each branch a backend takes for an older framework release (``run --env``), pinned here on
today's release by making it look like the old one: the branch must give what the new API
gives. The real old releases run in ``test_releases_end_to_end.py`` (JAX 0.4.30) and in
``make releases``."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.frameworks.modes import get_mode


class OldArray:
    """A JAX array as 0.4.30 had it: ``_committed``, no ``committed``."""

    def __init__(self, committed: bool) -> None:
        self._committed = committed


def test_jax_reads_whether_an_array_is_committed_in_either_release():
    from eagerbench.frameworks.backends import jax_backend

    assert jax_backend.committed(OldArray(True)) is True
    assert jax_backend.committed(OldArray(False)) is False
    import jax

    placed = jax.device_put(np.zeros(2), jax.devices("cpu")[0])
    assert jax_backend.committed(placed) == placed.committed


def test_jax_lowers_an_argument_without_weak_type_before_it_existed(monkeypatch):
    import jax
    import jax.numpy as jnp

    from eagerbench.frameworks.backends import jax_backend

    monkeypatch.setattr(jax_backend, "SHAPE_TAKES_WEAK_TYPE", False)
    shape = jax_backend._argument_shape(jnp.ones(3))
    assert isinstance(shape, jax.ShapeDtypeStruct) and shape.shape == (3,)


def test_jax_full_puts_the_vector_on_the_device_where_full_takes_no_device(monkeypatch):
    from eagerbench.frameworks.backends import jax_backend

    backend = get_mode("jax-jit").make("cpu", "float32", 1)
    monkeypatch.setattr(jax_backend, "FULL_TAKES_DEVICE", False)
    old = backend.full(5, 0.25)
    monkeypatch.setattr(jax_backend, "FULL_TAKES_DEVICE", True)
    new = backend.full(5, 0.25)
    assert np.array_equal(np.asarray(old), np.asarray(new))
    assert old.devices() == new.devices() and old.dtype == new.dtype


def test_torch_sets_its_interop_pool_only_when_it_differs(monkeypatch):
    """torch 2.0 aborts the process on a second set_num_interop_threads."""
    import torch

    get_mode("torch").make("cpu", "float32", 1)
    calls = []
    monkeypatch.setattr(torch, "set_num_interop_threads", calls.append)
    monkeypatch.setattr(torch, "get_num_interop_threads", lambda: 1)
    get_mode("torch").make("cpu", "float32", 1)
    assert calls == []
    monkeypatch.setattr(torch, "get_num_interop_threads", lambda: 2)
    get_mode("torch").make("cpu", "float32", 1)
    assert calls == [1]


def test_torch_compile_backends_work_without_inductors_newer_switches(monkeypatch):
    """Before torch 2.7: no ``inductor_metrics_log``, no ``clear_caches``."""
    import torch._inductor.compile_fx as compile_fx
    import torch._inductor.utils as inductor_utils

    from eagerbench.frameworks.backends import torch_backend

    monkeypatch.delattr(compile_fx, "inductor_metrics_log")
    monkeypatch.delattr(inductor_utils, "clear_caches")
    torch_backend._count_graph_bytes()                    # nothing to switch on: no error
    backend = get_mode("torch-compile").make("cpu", "float32", 1)
    backend.reset()                                       # Dynamo reset, no kernel-cache call
    assert torch_backend._WATCHING["compiles"]          # its callbacks registered again


@pytest.mark.parametrize("mode, old, new", [("torch-compile", "2.0.1", "2.1.0"),
                                            ("tf-xla", "2.4.4", "2.5.0")])
def test_a_mode_is_refused_in_the_release_before_it(mode, old, new):
    assert get_mode(mode).unavailable(old).startswith("unavailable in ")
    assert get_mode(mode).unavailable(new) == ""
