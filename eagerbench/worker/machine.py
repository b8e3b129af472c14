"""This machine's limits, measured once per run: the best matmul throughput any installed library
reaches at a large size (GFLOP/s, per dtype) and streaming memory bandwidth (GB/s).

Each library is probed in its own process with the run's thread settings
(``python -m eagerbench.worker.machine LIB THREADS DEVICE``), like a measured cell. A cell
claiming more than these limits skipped work; one far below them shows how much the eager tax
costs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eagerbench.records.limits import MATMUL_N, SLOW, best_elementwise, best_ladder
from eagerbench.worker.clock import time_calls
from eagerbench.worker.process import pin_cpus, thread_env, with_package_path

LIBS = ["numpy", "torch", "tensorflow", "jax"]
# Square matmuls smaller than the peak's: a small product runs below the peak in every library
# (its blocks do not fill the cores), and a kernel estimate should know the rate at its size.
MATMUL_LADDER = (128, 256, 512, 1024)
STREAM_ELEMS = 1 << 25        # 128 MiB per float32 vector: past most last-level caches
CACHE_ELEMS = 1 << 16         # 256 KiB per vector: the bandwidth of data that stays in cache
CACHE_REPEATS = 200
REPEATS = 5
# A fused chain of dependent adds on vectors that stay in cache: the rate of element-wise
# arithmetic when no memory traffic limits it (a compiled element-wise chain's roofline).
CHAIN_ELEMS = 1 << 17
CHAIN_ADDS = (20, 80)


def _best(fn: Callable[[], object], sync: Callable[[], object]) -> float:
    """Seconds of the fastest of ``REPEATS`` waited calls of ``fn``, after one untimed."""
    fn()
    sync()
    return min(time_calls(fn, 1, lambda _: sync()) for _ in range(REPEATS)) / 1e9


DTYPES = ("float32", "float64")


def probe(lib: str, device: str, n: int = MATMUL_N, elems: int = STREAM_ELEMS,
          dtypes: tuple[str, ...] = DTYPES) -> dict[str, Any]:
    """Best matmul GFLOP/s per dtype and, where the library allows it, the bandwidth of
    ``b += a`` (reads a and b, writes b in place: no write-allocate traffic to hide)."""
    import numpy as np

    rng = np.random.default_rng(0)
    gflops: dict[str, float] = {}
    ladder: dict[str, dict[str, float]] = {}
    out: dict[str, Any] = {"matmul_gflops": gflops, "bandwidth_gbps": None,
                           "matmul_ladder": ladder}
    for dtype in dtypes:
        def seconds(side: int, dtype: str = dtype) -> float:
            return _matmul_s(lib, device, rng.standard_normal((side, side)).astype(dtype))

        gflops[dtype] = 2.0 * n**3 / seconds(n) / 1e9
        # The ladder's kernels without the price of calling a product (an 8 x 8 one's): in
        # TensorFlow eager that call costs more than a 128 x 128 kernel.
        call = seconds(8)
        ladder[dtype] = {
            str(side): 2.0 * side**3 / (lambda s: s - min(call, s / 2))(seconds(side)) / 1e9
            for side in MATMUL_LADDER}
    if lib in ("numpy", "torch"):
        out["bandwidth_gbps"] = _stream(lib, device, elems, 1)
        out["cache_bandwidth_gbps"] = _stream(lib, device, CACHE_ELEMS, CACHE_REPEATS)
    if lib == "jax":   # the compiler that fuses a chain into one loop at the least cost to probe
        out["elementwise_gflops"] = {dtype: _chain_gflops(dtype) for dtype in dtypes}
    return out


def _chain_gflops(dtype: str) -> float:
    """GFLOP/s of ``b + a + a + ...`` fused by ``jax.jit`` into one loop over in-cache vectors:
    the difference between chains of 80 and 20 adds, so that neither the call nor the vectors'
    traffic counts (a chain of 200 compiled to code half as fast per add as one of 100)."""
    import jax
    import jax.numpy as jnp

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    a, b = jnp.full(CHAIN_ELEMS, 1.0 / 1024, dtype), jnp.zeros(CHAIN_ELEMS, dtype)

    def seconds(adds: int) -> float:
        def chain(a: Any, b: Any) -> Any:
            for _ in range(adds):
                b = b + a
            return b

        jitted = jax.jit(chain)
        calls = 20

        def run() -> None:
            for _ in range(calls):
                out = jitted(a, b)
            out.block_until_ready()

        return _best(run, lambda: None) / calls

    short, long = (seconds(adds) for adds in CHAIN_ADDS)
    return (CHAIN_ADDS[1] - CHAIN_ADDS[0]) * CHAIN_ELEMS / max(long - short, 1e-9) / 1e9


def _matmul_s(lib: str, device: str, a: np.ndarray) -> float:
    """Best seconds per call of ``a @ a`` in ``lib``, each timing over enough products to last
    milliseconds (a 128 x 128 product takes tens of microseconds)."""
    n, dtype = a.shape[0], str(a.dtype)
    calls = max(1, min(512, (1024 // n) ** 3))
    run: Callable[[], object]
    sync: Callable[[], object]
    last: list[Any] = [None]   # the last product only is kept, and waited on
    if lib == "numpy":
        run, sync = (lambda: a @ a), (lambda: None)
    elif lib == "torch":
        import torch

        dev = "cuda" if device == "cuda" else "cpu"
        t = torch.from_numpy(a).to(dev)
        run = lambda: torch.mm(t, t)  # noqa: E731
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    elif lib == "tensorflow":
        import tensorflow as tf

        # Only the last product is kept, and waited on: holding all 512 made a 128 x 128
        # product in JAX 1.7x slower than a cell's, every output a fresh buffer.
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            t = tf.constant(a)
            run = lambda: last.__setitem__(0, tf.matmul(t, t))  # noqa: E731
            sync = lambda: last[0].numpy()  # noqa: E731
    else:
        import jax

        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        t = jax.device_put(a)
        run = lambda: last.__setitem__(0, t @ t)  # noqa: E731
        sync = lambda: last[0].block_until_ready()  # noqa: E731

    def products() -> None:
        for _ in range(calls):
            run()
        sync()

    return float(_best(products, sync) / calls)


def _adds_s(lib: str, device: str, elems: int, repeats: int) -> float:
    """Best seconds of ``repeats`` adds ``b += a`` on float32 vectors of ``elems``."""
    add: Callable[[], object]
    sync: Callable[[], object]
    if lib == "numpy":
        a, b = (np.ones(elems, np.float32) for _ in range(2))
        add, sync = (lambda: np.add(b, a, out=b)), (lambda: None)
    else:
        import torch

        dev = "cuda" if device == "cuda" else "cpu"
        a, b = (torch.ones(elems, device=dev) for _ in range(2))
        add = lambda: b.add_(a)  # noqa: E731
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def run() -> None:
        for _ in range(repeats):
            add()

    return _best(run, sync)


def _stream(lib: str, device: str, elems: int, repeats: int) -> float:
    """GB/s of ``b += a`` on float32 vectors of ``elems``, ``repeats`` adds per timing. With
    several adds (data in cache, each add microseconds) the price of calling an add, timed on
    16-element vectors, is taken out: the cache's bandwidth, not the library's dispatch."""
    seconds = _adds_s(lib, device, elems, repeats)
    if repeats > 1:
        seconds -= min(_adds_s(lib, device, 16, repeats), seconds / 2)
    return 3 * 4 * elems * repeats / seconds / 1e9


PROBE_UNIT = 30_000     # additions of a pure-Python loop: about 1 ms here


def contention(seconds: float = 2.0) -> dict[str, Any]:
    """How steady this machine is right now: a fixed pure-Python loop run back to back for
    ``seconds``, in units of about 1 ms. On a shared host, a busy neighbour slows everything for
    spells of milliseconds to minutes; ``slow_share`` is the share of units at least 1.3x the
    fastest tenth, ``slowdown`` how much slower those are (median). ``percentiles_us`` keeps the
    distribution, so that probes can be compared (``slow_against``): a probe that fell wholly in
    a slow spell looks steady against itself."""
    units = sorted(probe_units(seconds))
    fast = units[len(units) // 10]
    slow = [u for u in units if u > SLOW * fast]
    q1, med, q3 = (units[int(len(units) * q)] for q in (0.25, 0.5, 0.75))
    return {"units": len(units), "fast_unit_us": fast / 1e3, "iqr_share": (q3 - q1) / med,
            "slow_share": len(slow) / len(units),
            "slowdown": (slow[len(slow) // 2] / fast) if slow else 1.0,
            "percentiles_us": [units[min(int(len(units) * q / 100), len(units) - 1)] / 1e3
                               for q in range(101)]}


def probe_units(seconds: float) -> list[int]:
    """Nanoseconds of each unit of a fixed pure-Python loop, run back to back for ``seconds``."""
    units = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        units.append(time_calls(_python_unit, 1, lambda _: None))
    return units


def _python_unit() -> int:
    """A fixed pure-Python loop: ``PROBE_UNIT`` additions."""
    total = 0
    for i in range(PROBE_UNIT):
        total += i
    return total


STEADINESS_BLOCKS_MS = (1, 10, 100, 1000)


def spread_by_block(units_ns: list[int], blocks_ms: tuple[int, ...] = STEADINESS_BLOCKS_MS
                    ) -> dict[int, dict[str, float]]:
    """The IQR over the median of a fixed workload's time, as samples of each length would see
    it: consecutive units summed into blocks of about ``block_ms``. Noise that averages out
    within a block shrinks; a slow spell longer than the block does not."""
    import numpy as np

    units = np.asarray(units_ns, dtype=float)
    if units.size == 0:
        return {}
    unit_ms = float(np.median(units)) / 1e6
    out = {}
    for block_ms in blocks_ms:
        size = max(1, round(block_ms / unit_ms))
        count = units.size // size
        if count < 8:    # too few blocks for quartiles
            continue
        blocks = units[:count * size].reshape(count, size).sum(axis=1)
        q1, median, q3 = np.percentile(blocks, [25, 50, 75])
        out[block_ms] = {"blocks": int(count), "iqr_share": float((q3 - q1) / median),
                         "max_over_min": float(blocks.max() / blocks.min())}
    return out


def cache_levels() -> dict[int, int]:
    """Bytes of the CPU's data (or unified) cache at each level (Linux sysfs), empty where
    unknown."""
    levels: dict[int, int] = {}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            levels[level] = max(levels.get(level, 0), int(text.rstrip("KMG")) * scale)
        except (OSError, ValueError):
            continue
    return levels


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's largest cache, below which bandwidth is not DRAM's."""
    levels = cache_levels()
    return max(levels.values()) if levels else None


def inner_cache_bytes() -> int | None:
    """Size of the cache one level below the last (a core's L2), where the machine's cache
    bandwidth is measured; None where fewer than two levels are known."""
    sizes = sorted(cache_levels().items())
    return sizes[-2][1] if len(sizes) >= 2 else None


def probe_limits(threads: int, device: str, timeout: float = 300,
                 dtypes: tuple[str, ...] = DTYPES) -> dict[str, Any]:
    """Probe every installed library (one process each) in ``dtypes`` (a run's own: the float64
    products took TensorFlow 6 of its 17 s); the best of each figure is the limit."""
    env = with_package_path({**os.environ, **thread_env(threads, device)})
    per_lib: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for lib in LIBS:
        if importlib.util.find_spec(lib) is None:
            continue
        if device == "cuda" and lib == "numpy":
            continue
        try:
            proc = subprocess.run([sys.executable, "-m", "eagerbench.worker.machine", lib,
                                   str(threads), device, ",".join(dtypes)], capture_output=True,
                                  text=True, env=env, timeout=timeout)
            per_lib[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
            errors[lib] = type(exc).__name__
    peak = {d: max((r["matmul_gflops"][d] for r in per_lib.values()), default=None)
            for d in dtypes}
    bandwidths = [r["bandwidth_gbps"] for r in per_lib.values() if r["bandwidth_gbps"]]
    cached = [r["cache_bandwidth_gbps"] for r in per_lib.values()
              if r.get("cache_bandwidth_gbps")]
    return {"device": device, "matmul_n": MATMUL_N, "llc_bytes": last_level_cache_bytes(),
            "inner_cache_bytes": inner_cache_bytes(),
            "elementwise_gflops": best_elementwise(list(per_lib.values())),
            "stream_elems": STREAM_ELEMS, "cache_elems": CACHE_ELEMS,
            "per_library": per_lib, "errors": errors, "peak_gflops": peak,
            "matmul_ladder": best_ladder(list(per_lib.values())),
            "bandwidth_gbps": max(bandwidths) if bandwidths else None,
            "cache_bandwidth_gbps": max(cached) if cached else None}


if __name__ == "__main__":
    pin_cpus(int(sys.argv[2]))
    print(json.dumps(probe(sys.argv[1], sys.argv[3], dtypes=tuple(
        sys.argv[4].split(",")) if len(sys.argv) > 4 else DTYPES)))
