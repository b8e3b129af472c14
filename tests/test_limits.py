"""The machine's limits and contention, as probes taken in slow spells would mislead them."""

from __future__ import annotations

import pandas as pd
import pytest

from eagerbench.records import limits as limits_record
from eagerbench.worker import machine as limits


def _probe(gflops: float, gbps: float) -> dict:
    return {"device": "cpu", "per_library": {"torch": {"matmul_gflops": {"float32": gflops,
                                                                          "float64": gflops / 2},
                                                        "bandwidth_gbps": gbps}},
            "peak_gflops": {"float32": gflops, "float64": gflops / 2}, "bandwidth_gbps": gbps}


def test_merged_limits_keep_the_best_of_two_probes():
    slow, fast = _probe(120.0, 26.0), _probe(200.0, 40.0)
    merged = limits_record.merge(slow, fast)
    assert merged["peak_gflops"] == {"float32": 200.0, "float64": 100.0}
    assert merged["bandwidth_gbps"] == 40.0 and merged["probes"] == 2
    assert merged["per_library"]["torch"]["matmul_gflops"]["float32"] == 200.0
    assert limits_record.merge(fast, slow)["bandwidth_gbps"] == 40.0


def test_limits_are_probed_in_the_run_dtype_only():
    """A float32 run probes float32 products alone (the float64 ones took TensorFlow 6 of its
    17 s), and the probes of two runs merge and print whatever dtypes they hold."""
    from eagerbench.report.pages import run as runpage

    probe = limits.probe("numpy", "cpu", n=64, elems=1 << 12, dtypes=("float32",))
    assert set(probe["matmul_gflops"]) == set(probe["matmul_ladder"]) == {"float32"}
    only32 = _probe(150.0, 30.0)
    for table in (only32["peak_gflops"], only32["per_library"]["torch"]["matmul_gflops"]):
        del table["float64"]
    merged = limits_record.merge(only32, _probe(120.0, 26.0))
    assert merged["peak_gflops"] == {"float32": 150.0, "float64": 60.0}
    text = runpage.machine({"limits": {**only32, "matmul_n": 2048}}, pd.DataFrame())
    line = next(x for x in text.splitlines() if "measured limits" in x)
    assert "float32 150 GFLOP/s (torch)" in line and "float64" not in line


def test_merged_limits_keep_the_best_matmul_rate_at_each_side():
    slow, fast = _probe(120.0, 26.0), _probe(200.0, 40.0)
    slow["matmul_ladder"] = {"float32": {"128": 30.0, "512": 90.0}}
    fast["matmul_ladder"] = {"float32": {"128": 20.0, "512": 110.0}}
    assert limits_record.merge(slow, fast)["matmul_ladder"] == {
        "float32": {"128": 30.0, "512": 110.0}}


def test_merged_limits_keep_each_librarys_best_ladder_and_chain_rate():
    """Each library's ladder (the rates its own cells are held to) and the fused-add rate are
    the better probe's, not the last one's: JAX's 128 x 128 product measured at 49 GFLOP/s in
    one probe, while its cells ran it at 69."""
    first, second = _probe(120.0, 26.0), _probe(120.0, 26.0)
    first["per_library"]["torch"].update(matmul_ladder={"float32": {"128": 69.0}},
                                         elementwise_gflops={"float32": 36.0})
    second["per_library"]["torch"].update(matmul_ladder={"float32": {"128": 49.0}},
                                          elementwise_gflops={"float32": 20.0})
    first["elementwise_gflops"], second["elementwise_gflops"] = {"float32": 36.0}, \
        {"float32": 20.0}
    merged = limits_record.merge(first, second)
    assert merged["per_library"]["torch"]["matmul_ladder"] == {"float32": {"128": 69.0}}
    assert merged["per_library"]["torch"]["elementwise_gflops"] == {"float32": 36.0}
    assert merged["elementwise_gflops"] == {"float32": 36.0}


def test_the_fused_add_rate_leaves_out_the_call_and_the_traffic(monkeypatch):
    """Chains of 20 and 80 adds of 2^17 floats, 1 and 2.5 ms per call: the 60 extra adds per
    element took 1.5 ms, whatever the call and the vectors' traffic cost."""
    timings = iter([20 * 1e-3, 20 * 2.5e-3])   # seconds of 20 calls, short chain first
    monkeypatch.setattr(limits, "_best", lambda run, sync: next(timings))
    assert limits._chain_gflops("float32") == pytest.approx(60 * (1 << 17) / 1.5e-3 / 1e9)


def test_a_probe_wholly_in_a_slow_spell_shows_against_another():
    """Against its own fastest tenth a probe taken wholly in a slow spell looks steady; against
    the fastest tenth of a probe taken later, every unit of it is slow."""
    slow = limits_record.Contention.from_json(
        {"fast_unit_us": 1850.0, "percentiles_us": [1850.0 + i for i in range(101)]})
    quick = limits_record.Contention.from_json(
        {"fast_unit_us": 1050.0, "percentiles_us": [1050.0 + i for i in range(101)]})
    assert slow.slow_against(slow.fast_unit_us) == 0.0
    assert slow.slow_against(quick.fast_unit_us) == 1.0
    assert quick.slow_against(quick.fast_unit_us) == 0.0


def test_the_contention_probe_reports_its_distribution():
    probe = limits.contention(0.2)
    assert probe["units"] > 10 and len(probe["percentiles_us"]) == 101
    assert probe["percentiles_us"] == sorted(probe["percentiles_us"])
    assert 0.0 <= probe["slow_share"] <= 1.0


def _beaten(records, limits: dict) -> bool:
    from eagerbench.report.summary import beat_limits

    return beat_limits(records, limits_record.MachineLimits.from_json(limits))


def test_a_cell_beating_the_limits_asks_for_a_second_probe():
    """`eagerbench run` measures the limits again after the cells when one claims more than
    them, instead of calling it INVALID on a probe taken in a slow spell."""
    from tests.recorded_runs import record_of as _record

    records = [_record("matmul", {"size": 1024}, "torch", [10.0] * 6, 1, 0)]  # 215 GFLOP/s
    assert _beaten(records, _probe(120.0, 26.0))
    assert not _beaten(records, _probe(300.0, 26.0))
    # Under the peak, but faster than the rate measured at its size: also a slow spell's probe
    slow_ladder = {**_probe(300.0, 26.0), "matmul_ladder": {"float32": {"1024": 150.0}}}
    assert _beaten(records, slow_ladder)


def test_spread_by_block_shrinks_noise_shorter_than_a_block_and_keeps_longer_spells():
    """Units alternating 0.9 and 1.1 ms scatter 1 ms samples but not 10 ms ones; a slow spell
    of half the run spreads every sample length."""
    flicker = [900_000, 1_100_000] * 2000
    spread = limits.spread_by_block(flicker, blocks_ms=(1, 10))
    assert spread[1]["iqr_share"] > 0.15
    assert spread[10]["iqr_share"] == 0.0
    spell = [1_000_000] * 2000 + [2_000_000] * 2000
    assert limits.spread_by_block(spell, blocks_ms=(10,))[10]["iqr_share"] > 0.5
    assert limits.spread_by_block(flicker[:10], blocks_ms=(100,)) == {}   # too few blocks


def test_the_machine_command_prints_the_spread_at_each_sample_length():
    from click.testing import CliRunner

    from eagerbench.cli import cli

    out = CliRunner().invoke(cli, ["machine", "--seconds", "0.5"])
    assert out.exit_code == 0, out.output
    assert "| 1 ms" in out.output and "| 10 ms" in out.output
    bad = CliRunner().invoke(cli, ["machine", "--seconds", "-1"])
    assert bad.exit_code != 0 and "--seconds" in bad.output and "Traceback" not in bad.output


def test_a_cell_faster_than_what_was_timed_alongside_it_asks_for_no_second_probe():
    """The product or the stream timed between a cell's samples shares its noise: a cell a
    little faster than it is no sign that the machine's probe ran in a slow spell."""
    from dataclasses import replace

    from tests.recorded_runs import record_of as _record

    cell = _record("matmul", {"size": 1024}, "torch", [10.0] * 6, 1, 0)   # 215 GFLOP/s
    product = {"side": 1024, "ns": 10.5e6, "call_ns": 3e3}              # 205 GFLOP/s
    alongside = [replace(cell, result=replace(cell.result, why={"product": product}))]
    assert not _beaten(alongside, _probe(300.0, 26.0))
    # 120 MB per call in 4 ms: faster than the machine's stream (26 GB/s: 4.6 ms), and than
    # the stream timed alongside (28 GB/s: 4.3 ms), which shares its noise
    add = _record("elementwise", {"size": 10**7, "ops": 1}, "torch", [4.0] * 6, 1, 0)
    assert _beaten([add], _probe(300.0, 26.0))
    streamed = replace(add, result=replace(add.result, why={"stream_gbps": 28.0}))
    assert not _beaten([streamed], _probe(300.0, 26.0))
    assert _beaten([cell], {**_probe(300.0, 26.0), "matmul_ladder": {"float32": {"1024": 150.0}}})
