"""The model suite's page from stored records alone: every compiled cell's tax with its
interval, the geometric means per mode and step kind, Keras across its backends, the plot, and
a random step said, not hidden."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eagerbench.report import build as report
from eagerbench.report import models, summary
from tests.recorded_runs import record_of, write_run

TAX = {"torch-compile": 2.0, "tf-graph": 4.0, "tf-xla": 8.0, "jax-jit": 5.0}
EAGER = {"torch-compile": "torch", "tf-graph": "tf-eager", "tf-xla": "tf-eager",
         "jax-jit": "jax"}


def _suite(rng) -> list:
    """gpt (torch) and keras-gpt (TensorFlow, JAX), training and inference at batch 1, three
    processes each; every compiled mode's tax as ``TAX``."""
    records, pid = [], 0
    cells = [("gpt", ("torch-compile",)), ("keras-gpt", ("tf-graph", "tf-xla", "jax-jit"))]
    for repeat in range(3):
        for workload, compiled in cells:
            for step in ("train", "infer"):
                pid += 1
                params = {"step": step, "batch": 1}
                for eager in dict.fromkeys(EAGER[m] for m in compiled):
                    records.append(record_of(workload, params, eager, list(
                        10.0 * np.exp(rng.normal(0, 0.01, 10))), pid, repeat,
                        # eager JAX compiles each primitive at its first use
                        warmup_ms=[1000.0, 10.0] if eager == "jax" else None))
                for mode in compiled:
                    records.append(record_of(workload, params, mode, list(
                        10.0 / TAX[mode] * np.exp(rng.normal(0, 0.01, 10))), pid, repeat,
                        warmup_ms=[400.0, 10.0 / TAX[mode]]))
    return records


def test_the_model_page_reads_every_tax_the_means_and_keras_across_backends(tmp_path):
    records = _suite(np.random.default_rng(5))
    found = summary.summarize(records)
    assert models.is_model_run(found.rows)
    taxes = models.model_taxes(found.rows, found.why)
    assert len(taxes) == 2 * 4
    for t in taxes:
        assert t.tax.lo < TAX[t.compiled.mode] < t.tax.hi
        assert t.tax.numerator == EAGER[t.compiled.mode]
        assert 0.3 < t.compile_s < 0.5   # its own compile, though JAX's eager warm-up cost more
        if t.compiled.mode == "jax-jit":
            assert t.break_even == 0       # beyond eager's warm-up it cost nothing
        else:
            assert 1 < t.break_even < 100
    means = {(g.library, g.mode, g.step): g.value for g in models.geomeans(taxes)}
    assert means[("Keras 3", "tf-xla", "train")] == pytest.approx(8.0, rel=0.05)
    assert means[("PyTorch", "torch-compile", "infer")] == pytest.approx(2.0, rel=0.05)
    lost = next(r for r in records if r.spec.mode == "jax" and r.spec.repeat == 0
                and r.spec.params["step"] == "train")
    records[records.index(lost)] = dataclasses.replace(lost, result=dataclasses.replace(
        lost.result, status="failed", reason="TracerArrayConversionError"))
    write_run(tmp_path, records)
    report.build(tmp_path)
    page = (tmp_path / "README.md").read_text()
    # a process that failed is said, though the cell was measured in the others
    assert "- keras-gpt step=train batch=1 [jax]: 1 of 3 processes failed" in page
    assert page.startswith("# The eager tax of real models")
    assert "**tf-xla** (Keras 3, train): 8" in page
    assert "## Keras 3 across its backends" in page
    assert "tf-eager / tf-xla" in page and "jax / jax-jit" in page
    assert (tmp_path / "models.png").stat().st_size > 1000


def test_a_default_run_is_not_a_model_run():
    from tests.recorded_runs import two_process_run

    rows = summary.summarize(two_process_run(np.random.default_rng(1))).rows
    assert not models.is_model_run(rows)
