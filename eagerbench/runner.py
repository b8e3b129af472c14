"""Runs a grid of cells, each in a fresh worker process, and appends each result as it lands.

Modelled on pyperf's master/worker split: the runner never imports a framework, so no cell can
inherit another's threads, allocator or CUDA context, and a crash or an out-of-memory kill takes
down one cell, not the run.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from tqdm import tqdm

RAW = "raw.jsonl"


@dataclass
class Cell:
    """One measured unit: a workload with fixed parameters in one mode."""

    workload: str
    params: dict
    mode: str
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    seed: int = 1
    iters: int | list = 10    # a list: one count per interleaved value
    warmup: int = 2
    gc: str = "on"
    data: Optional[str] = None
    repeat: int = 0
    options: dict = field(default_factory=dict)   # mode options, e.g. {"compile_mode": ...}
    job: str = "measure"                          # or "verify" (eagerbench verify)
    save: Optional[str] = None                    # verify: where to save the final weights
    extra_env: dict = field(default_factory=dict)

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.workload} {params} [{self.mode}]"


def thread_env(threads: int, device: str) -> dict:
    """Environment that pins every framework's pools to ``threads`` before it initialises."""
    env = {name: str(threads) for name in (
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""   # a CPU cell must not touch (or reserve) a GPU
    return env


def _describe_exit(rc: int, stderr_tail: str) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    return f"worker exited with code {rc}: {last[0][:300]}"


def run_cell(cell: Cell, timeout: float, on_progress=lambda msg: None,
             cache_template: str | None = None) -> dict:
    """Run one cell in a fresh ``python -m eagerbench.worker``; always returns a record.

    The cell gets its own empty on-disk cache for torch.compile, or a copy of
    ``cache_template`` (see ``warm_compiler``): no graph compiled elsewhere is ever reused.
    """
    env = {**os.environ, **thread_env(cell.threads, cell.device), **cell.extra_env}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    spec = asdict(cell)
    spec.pop("extra_env")
    started = time.perf_counter()
    caches = tempfile.TemporaryDirectory(prefix="eagerbench-cache-")
    if cache_template:
        shutil.copytree(cache_template, caches.name, dirs_exist_ok=True)
    env.update(_cache_env(caches.name))
    with caches, tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen([sys.executable, "-m", "eagerbench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errfile, text=True, env=env,
                                start_new_session=True)
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout] + [lines.put(None)],
                                  daemon=True)
        reader.start()
        result, deadline = None, started + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                result = {"status": "failed", "reason": f"timed out after {timeout:g} s"}
                break
            if line is None:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("type") == "progress":
                on_progress(msg)
            elif msg.get("type") == "result":
                result = {k: v for k, v in msg.items() if k != "type"}
        rc = proc.wait()
        errfile.seek(0)
        stderr_tail = errfile.read()[-4000:]
    if result is None:
        result = {"status": "failed", "reason": _describe_exit(rc, stderr_tail)}
    if result["status"] != "ok":
        result["stderr_tail"] = stderr_tail[-1500:]
    result["wall_s"] = time.perf_counter() - started
    return {"cell": spec, "result": result}


def _cache_env(root: str) -> dict:
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
            "TRITON_CACHE_DIR": os.path.join(root, "triton")}


WARM_UP_COMPILER = ("import torch; f = torch.compile(lambda x: (x * 2).sin()); "
                    "f(torch.ones(8, device={device!r}))")


def warm_compiler(cells: list[Cell], template: str) -> float | None:
    """Compile a trivial function once into ``template`` if any cell uses torch.compile.

    torch.compile's first use in a cache directory also builds its toolchain's artifacts
    (about 5 s on 2 cores), which a user pays once, not per program. Each cell starts from a
    copy of this template: its first call is its own graph's compile, whatever ran before it.
    Returns the seconds the warm-up took (None when no cell needs it or it failed).
    """
    from eagerbench.modes import get_mode

    users = [c for c in cells if "compile_mode" in get_mode(c.mode).options]
    if not users:
        return None
    env = {**os.environ, **thread_env(users[0].threads, users[0].device), **_cache_env(template)}
    code = WARM_UP_COMPILER.format(device="cuda" if users[0].device == "cuda" else "cpu")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=600)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started if proc.returncode == 0 else None


def split_variants(record: dict) -> list[dict]:
    """One record per parameter set: a cell that interleaved several values of a parameter in
    one process becomes one record per value, each saying what it shared its process with."""
    from workloads import get_workload

    cell, res = record["cell"], record["result"]
    workload = get_workload(cell["workload"])
    if not workload.sweeps(cell["params"]):
        return [record]
    name = workload.interleave
    shared = {k: v for k, v in res.items() if k != "variants"}
    out = []
    for i, params in enumerate(workload.variants(cell["params"])):
        one = {**cell, "params": params, "interleaved": {name: cell["params"][name]}}
        if isinstance(cell["iters"], list):
            one["iters"] = cell["iters"][i]
        result = {**shared, **res["variants"][i]} if res.get("variants") else dict(shared)
        out.append({"cell": one, "result": result})
    return out


def run_cells(cells: Iterable[Cell], out_dir: Path, timeout: float,
              progress: bool = True) -> list[dict]:
    """Run cells in order, appending each record to ``out_dir/raw.jsonl`` the moment it ends."""
    cells = list(cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(total=len(cells), unit="cell", file=sys.stderr, disable=not progress,
               bar_format="{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}]"
                          "{postfix}", dynamic_ncols=True)
    # torch.compile keeps compiled graphs on disk between processes: with the user's cache a
    # first call would depend on what ran before. Cells start from a template holding only
    # the compiler's one-time set-up.
    template = tempfile.TemporaryDirectory(prefix="eagerbench-template-")
    with template, bar, open(out_dir / RAW, "a") as raw:
        setup = warm_compiler(cells, template.name)
        if setup is not None:
            bar.write(f"eagerbench: torch.compile's one-time set-up took {setup:.1f} s "
                      f"(done once, kept out of every cell's first call)")
        for cell in cells:
            bar.set_description_str(cell.label())

            def show(msg, bar=bar):
                bar.set_postfix_str(f"{msg['phase']} {msg['i']}/{msg['n']}", refresh=True)

            record = run_cell(cell, timeout, show, template.name if setup else None)
            for one in split_variants(record):
                raw.write(json.dumps(one) + "\n")
                records.append(one)
            raw.flush()
            if record["result"]["status"] != "ok":
                bar.write(f"eagerbench: {cell.label()} {record['result']['status']}: "
                          f"{record['result']['reason']}")
            bar.set_postfix_str("")
            bar.update(1)
    return records


def load_records(out_dir: Path) -> list[dict]:
    """Every record of a saved run (a torn last line from a killed run is skipped)."""
    records = []
    with open(Path(out_dir) / RAW) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
