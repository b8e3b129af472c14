"""One orchestration path: ``eagerbench run`` and ``eagerbench.measure`` plan, check and run
through the same functions, so the API refuses what the command line refuses."""

from __future__ import annotations

import pytest

import eagerbench
from eagerbench.plan import grid as planner
from tests.conftest import eagerbench_in_process

INVALID = [  # (CLI arguments, API keyword arguments, what both say)
    (["--min-time", "-1"], {"min_time_s": -1.0}, "--min-time must be"),
    (["--min-time", "nan"], {"min_time_s": float("nan")}, "--min-time must be"),
    (["--repeat", "0"], {"repeat": 0}, "--repeat must be at least 1"),
    (["--iters", "0"], {"iters": 0}, "--iters must be at least 1"),
    (["--modes", "pytorch"], {"modes": ["pytorch"]}, "unknown mode 'pytorch'"),
    (["--modes", "torch-cudagraph"], {"modes": ["torch-cudagraph"]},
     "runs only with --device cuda"),
]


@pytest.mark.parametrize("cli_args, api_kwargs, says", INVALID,
                         ids=[" ".join(a) for a, _, _ in INVALID])
def test_the_api_refuses_the_same_invalid_cell_as_the_cli(tmp_path, cli_args, api_kwargs, says):
    proc = eagerbench_in_process("run", "-w", "matmul", "--no-limits", "--out",
                                 tmp_path / "cli", *cli_args)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    with pytest.raises(planner.PlanError, match=says.replace("(", r"\(")) as refused:
        eagerbench.measure("matmul", limits=False, out=tmp_path / "api", **api_kwargs)
    assert f"eagerbench: error: {refused.value}" in proc.stderr
    assert not (tmp_path / "cli").exists() and not (tmp_path / "api").exists()


def test_no_why_reaches_every_cell_and_its_own_worker_process():
    from eagerbench.execute.local import batch_key

    kwargs = dict(iters=None, warmup=None, repeat=1, threads=1, device="cpu", dtype="float32",
                  seed=1, data=None, gc_mode="on")
    with_why, _ = planner.plan(["matmul"], ["torch"], {"size": [8]}, **kwargs)
    without, _ = planner.plan(["matmul"], ["torch"], {"size": [8]}, why=False, **kwargs)
    assert all(c.why for c in with_why) and not any(c.why for c in without)
    assert batch_key(with_why[0]) != batch_key(without[0])   # never one process for both
    assert with_why[0].identity() != without[0].identity()   # nor one record
