"""torch's compiled modes trace and compile in the warm-up, never while timing (a file per
framework, so that make test's workers share the frameworks)."""

from tests.compiled_grid import no_recompile_test

test_no_retrace_or_recompile_while_timing = no_recompile_test("torch")
