"""jax's compiled modes trace and compile in the warm-up, never while timing (one file per
framework, so that make test's workers share the frameworks)."""

from __future__ import annotations

import pytest

from tests.compiled_grid import COMPILED, GRID, assert_compiled_only_in_warm_up

MODES = [m for m in COMPILED if m.startswith("jax")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("workload", [w for w, _ in GRID])
def test_no_retrace_or_recompile_while_timing(mode, workload):
    assert_compiled_only_in_warm_up(mode, workload)
