"""What a step holds and faults: its memory around the first timed sample, page faults over
every timed block, the kernel's share of its CPU time, and the price of a fresh page."""

from __future__ import annotations

import time

import numpy as np
import pytest

from eagerbench.worker.why import memory as diagnose
from tests.fake_backend import FakeBackend


def test_the_memory_of_a_step_is_its_high_water_mark_above_what_was_held():
    held = np.ones(1 << 20)   # 8 MiB, held throughout

    def step(st, mem):
        scratch = np.ones(12_500_000)   # 100 MB, freed when the step returns
        return {"total": float(scratch.sum() + held[0])}, mem

    found, (st, _) = diagnose.step_memory(step, lambda tree: None, {}, {}, FakeBackend())
    assert st["total"] == 12_500_001
    assert found["rss_peak_bytes"] - found["rss_before_bytes"] >= 90e6
    assert found["device_peak_bytes"] is None
    # 100 MB of fresh pages: 4 KiB ones, or 2 MiB ones where NumPy asked for huge pages
    huge = found["huge_page_faults"] or 0
    assert (found["page_faults"] - huge) * 4096 + huge * (2 << 20) >= 90e6


def test_a_step_that_reuses_its_memory_takes_no_page_faults():
    buffer = np.zeros(12_500_000)
    buffer += 1   # mapped now

    def step(st, mem):
        np.add(buffer, 1.0, out=buffer)
        return st, mem

    found, _ = diagnose.step_memory(step, lambda tree: None, {}, {}, FakeBackend())
    assert found["page_faults"] < 100


def test_a_long_steps_memory_is_watched_in_its_first_timed_sample_not_an_extra_call():
    """A 64 MiB allocation per call (16,384 fresh 4 KiB pages, fewer where huge): the record
    holds its faults per call, and the step ran only for warm-up, timing and the op count."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 64}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    memory = res.why.memory
    huge = memory["huge_page_faults"] or 0
    assert (memory["page_faults"] - huge) * 4096 + huge * (2 << 20) >= 60 * 2**20
    assert res.block_calls == 1
    assert res.info["steps"] == len(res.warmup) + len(res.timed) + 1   # + op count


def test_page_faults_are_counted_over_every_timed_block_not_the_first_only():
    """jax at 1e7 elements took no fault in its first timed block and 9,766 a call in a loop
    by hand: an allocator that faults in some blocks only. Here every other call allocates
    64 MiB afresh, one call per block: a third or two thirds of the 3 blocks fault, never
    none or all."""
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 60_000, "fresh_mib": 64, "fresh_every": 2}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert res.block_calls == 1 and len(res.timed) == 3
    memory = res.why.memory
    huge = memory["huge_page_faults"] or 0
    fresh = ((memory["page_faults"] - huge) * 4096 + huge * (2 << 20)) / (64 << 20)
    assert 0.25 < fresh < 0.75


def test_a_fresh_pages_price_includes_its_release(monkeypatch):
    """A step whose memory stays level hands back as many pages as it faults: the probe times
    the mapping's release with its faults."""
    import mmap

    class SlowRelease(mmap.mmap):
        def close(self):
            time.sleep(0.05)
            super().close()

    monkeypatch.setattr(mmap, "mmap", SlowRelease)
    elapsed, faults, _ = diagnose._touch_fresh_pages(False, 1)
    assert faults > 0 and elapsed >= 50e6


def test_a_blocked_steps_faults_are_per_call():
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 0}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert res.block_calls > 100
    assert res.why.memory["page_faults"] < 1   # a few faults over the block, per call


def test_a_fresh_page_has_a_measured_price():
    prices = diagnose.fault_ns()
    assert 0 < prices["small"] < 1e6
    assert prices["huge"] is None or prices["huge"] > prices["small"]


def test_the_kernels_share_is_summed_over_every_watched_block(monkeypatch):
    """A block's own share moves by a tick of the kernel's accounting (user 0 to 18 ms of
    jax's 14 ms add at 1e7 elements): the share is the blocks' sums."""
    clock = iter([(0, 0), (100, 300), (100, 300), (300, 500), (300, 500), (300, 500)])
    monkeypatch.setattr(diagnose, "_cpu_ns", lambda: next(clock))
    tally = diagnose.FaultTally()
    assert tally.kernel_share() is None
    for calls in (1, 2, 1):
        with tally.watch(calls):
            pass
    assert tally.kernel_share() == pytest.approx(500 / 800) and tally.calls == 4


def test_a_step_that_faults_records_its_kernels_share():
    from eagerbench.worker.loop import Entry, Settings
    from tests.conftest import measure_why as measure_unit
    from tests.fake_backend import ADD

    params = {"size": 8, "ops": 1, "spin_us": 0, "fresh_mib": 64, "small_pages": 1}
    (res,) = measure_unit([Entry(FakeBackend(compiled=False), ADD, params, {"seed": 1}, [3])],
                          Settings(2, 0.0))
    assert 0 < res.why.memory["kernel_share"] <= 1
