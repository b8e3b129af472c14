"""Shared helpers: build a workload on a backend in this process and run it step by step.

Correctness tests run in-process (fast); anything about measurement runs real worker processes.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import sys
import textwrap

import numpy as np
import pytest

from eagerbench.frameworks.modes import get_mode
from workloads import get_workload, mnist

THREADS = 1


def build(mode: str, workload: str, params: dict, dtype: str = "float64", seed: int = 1):
    """(backend, task) for a workload built in-process."""
    B = get_mode(mode).make("cpu", dtype, THREADS)
    ctx = {"seed": seed, "data": lambda batch: mnist.standin(batch, seed)}
    wl = get_workload(workload)
    return B, wl.build(B, wl.resolve(dict(params)), ctx)


def run_steps(B, task, n: int):
    """Run ``n`` steps; return the observed values per step and the final check values."""
    st, mem = task.st, task.mem
    seen = []
    for _ in range(n):
        st, mem = task.step(st, mem)
        B.block((st, mem))
        seen.append(task.observe(st, mem))
    return seen, task.check(st, mem), (st, mem)


@pytest.fixture(scope="session")
def small_images():
    return mnist.standin(500, 1)


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def record(cell, result: dict):
    """A typed record from a cell (a spec or its JSON) and a worker-shaped result, built the
    way the runner builds them (facts included)."""
    from eagerbench.execute.runner import to_records
    from eagerbench.records.model import CellResult, CellSpec

    spec = cell if isinstance(cell, CellSpec) else CellSpec.from_json(cell)
    typed = result if isinstance(result, CellResult) else CellResult.from_json(result)
    return to_records(spec, (typed,))[0]


def run_into(cells, folder, timeout: float, say=lambda line: None):
    """Run cells into ``folder``'s raw.jsonl (a header first), as ``eagerbench run`` does:
    their start states prepared, then the cells on this machine; returns the typed records."""
    from pathlib import Path

    from eagerbench.execute import start_states
    from eagerbench.execute.local import LocalExecutor
    from eagerbench.execute.runner import run_cells
    from eagerbench.execute.venvs import EnvironmentSet
    from eagerbench.records.runfile import RAW, RunHeader, RunWriter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    executor = LocalExecutor().at(folder, EnvironmentSet())
    ready = start_states.attach(list(cells), timeout, say, executor.run_one)
    with RunWriter(folder / RAW, RunHeader.new({})) as writer:
        return run_cells(ready, writer, timeout, executor, progress=False)


def eagerbench_cli(*args, env=None, background=False):
    """`eagerbench ARGS` in a subprocess (``background``: started, not waited for)."""
    import os
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "eagerbench.cli", *map(str, args)]
    full_env = {**os.environ, **(env or {})}
    if background:
        # A shell's background job (make test run with &) ignores SIGINT, and the child would
        # inherit that: give it the default back, so that Python turns SIGINT into an interrupt.
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env, preexec_fn=lambda: signal.signal(
                                    signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env)


class InProcess:
    """What ``eagerbench ARGS`` did, run in this process (``eagerbench_in_process``)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def eagerbench_in_process(*args) -> InProcess:
    """`eagerbench ARGS` through the console entry point, in this process (click's CliRunner
    isolates its streams): for bad input, where a subprocess adds nothing but its start."""
    from click.testing import CliRunner

    from eagerbench import cli

    code = 0
    with CliRunner().isolation() as streams:
        try:
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return InProcess(code, out, err)


def one_line_error(proc, *needles):
    """The command failed with exactly one `eagerbench: error:` line holding ``needles``, and
    no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert any(all(n in line for n in needles) for line in lines), proc.stderr
    errors = [line for line in lines if line.startswith("eagerbench: error:")]
    assert len(errors) == 1, proc.stderr


def measure_why(entries, settings, channel=None):
    """``measure_unit`` with the why phase, as a worker runs it by default (``--why``)."""
    from eagerbench.worker.loop import measure_unit
    from eagerbench.worker.why.observer import WhyObserver

    return measure_unit(entries, settings, channel, WhyObserver(entries))


# --- test tiers ------------------------------------------------------------------------------
# Each test is marked by what it touches, read from its code (its body, the fixtures it takes,
# and the helpers of its module and of this file that it calls): ``framework`` (a framework is
# imported), ``compile`` (a graph is compiled), ``process`` (a worker or CLI process is
# spawned), ``slurm``. ``make test-fast`` runs the tests with none of these, and there
# ``EAGERBENCH_FAST_TIER=1`` makes importing a framework or spawning a process fail the test:
# a test marked wrongly fails rather than slipping into the fast tier.

FRAMEWORKS = ("torch", "tensorflow", "jax")
REAL_MODES = {"torch", "torch-compile", "torch-cudagraph", "tf-eager", "tf-graph", "tf-xla",
              "jax", "jax-jit"}
COMPILED_MODES = {"torch-compile", "torch-cudagraph", "tf-graph", "tf-xla", "jax-jit"}
TOUCHES = {
    "process": {"eagerbench_cli", "run_into", "run_cell", "run_batch", "run_cells", "Popen",
                "subprocess", "measure_cells", "contention", "measure"},
    "framework": {"build", "run_steps", "tf", "torch", "jax", "jnp", "make"},
    "compile": {"compile_step", "compile_function", "COMPILED"},
    "slurm": {"SlurmExecutor", "slurm", "slurm_local"},
    # compares the harness with an independent clock: runs alone, not beside another test
    "timing": {"Timer", "blocked_autorange", "timeit"},
}


@functools.lru_cache(maxsize=None)
def _words(func) -> frozenset:
    """Names, attributes and strings in a function's source."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return frozenset()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):   # only a framework's counts
            names = {a.name.split(".")[0] for a in node.names}
            if isinstance(node, ast.ImportFrom):
                names.add((node.module or "").split(".")[0])
            found |= names & set(FRAMEWORKS)
    return frozenset(found)


def _in_tests(obj) -> bool:
    """Whether a helper is the tests' own (its words count), not a library's."""
    try:
        path = os.path.abspath(inspect.getfile(obj))
    except TypeError:
        return False
    return path.startswith(os.path.dirname(os.path.abspath(__file__)))


def _touched(item) -> set:
    module = item.module
    def code(space: dict) -> dict:   # functions (cached ones unwrapped) and classes
        return {name: inspect.unwrap(obj) for name, obj in space.items()
                if inspect.isfunction(inspect.unwrap(obj)) or inspect.isclass(obj)}

    helpers = {**code(vars(module)), **code(globals()),
               **code(getattr(item.function, "__globals__", {}))}   # a factory-made test
    words: set = set()
    here = os.path.dirname(os.path.abspath(__file__))
    todo = [item.function] + [d.func for name, defs in item._fixtureinfo.name2fixturedefs.items()
                              for d in defs if name != "_fast_tier_guard"
                              and os.path.abspath(inspect.getfile(d.func)).startswith(here)]
    seen: set = set()
    while todo:
        func = todo.pop()
        if func in seen:
            continue
        seen.add(func)
        found = _words(func)
        words |= found
        todo += [helpers[w] for w in found if w in helpers and helpers[w] not in seen
                 and _in_tests(helpers[w])]
    params = {v for v in getattr(getattr(item, "callspec", None), "params", {}).values()
              if isinstance(v, str)}
    tiers = {tier for tier, names in TOUCHES.items() if words & names}
    if "invoke" in words and "run" in words:   # CliRunner running cells: workers
        tiers.add("process")
    texts = words | {v for w, v in vars(module).items() if w in words and isinstance(v, str)}
    if any(f"import {name}" in w for w in texts for name in FRAMEWORKS):   # a file it writes
        tiers.add("framework")
    if any(_words(getattr(obj, w, None)) & set(FRAMEWORKS) for obj in vars(module).values()
           if inspect.ismodule(obj) and obj.__name__.startswith("eagerbench")
           for w in words if inspect.isfunction(getattr(obj, w, None))):
        tiers.add("framework")   # a library function it calls imports a framework
    top = {a.name.split(".")[0] for n in ast.parse(inspect.getsource(module)).body
           if isinstance(n, (ast.Import, ast.ImportFrom))
           for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    if params & REAL_MODES or top & set(FRAMEWORKS):
        tiers.add("framework")
    if params & COMPILED_MODES or ("framework" in tiers and words & COMPILED_MODES):
        tiers.add("compile")
    if "compile" in tiers or "process" in tiers:
        tiers.add("framework")   # a compile needs a framework; a worker imports one
    return tiers


def pytest_configure(config):
    for tier, what in (("framework", "imports a framework"), ("compile", "compiles a graph"),
                       ("process", "spawns a worker or CLI process"),
                       ("slurm", "needs a local Slurm"),
                       ("timing", "compares against an independent timer: runs alone")):
        config.addinivalue_line("markers", f"{tier}: the test {what} (applied by conftest)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for tier in _touched(item):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _fast_tier_guard(monkeypatch):
    """In the fast tier, importing a framework or spawning a process fails the test."""
    if os.environ.get("EAGERBENCH_FAST_TIER") != "1":
        yield
        return
    import builtins
    import subprocess

    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.split(".")[0] in FRAMEWORKS:
            raise AssertionError(f"a fast-tier test imported {name}: mark it by what it "
                                 f"touches (tests/conftest.py)")
        return real_import(name, *args, **kwargs)

    def refused(*args, **kwargs):
        raise AssertionError("a fast-tier test spawned a process")

    monkeypatch.setattr(builtins, "__import__", guarded)
    monkeypatch.setattr(subprocess, "Popen", refused)
    yield


def pytest_sessionfinish(session, exitstatus):
    """The fast tier ends with no framework in ``sys.modules``, whatever imported it."""
    if os.environ.get("EAGERBENCH_FAST_TIER") == "1":
        loaded = [name for name in FRAMEWORKS if name in sys.modules]
        if loaded:
            print(f"\nfast tier: {', '.join(loaded)} imported", file=sys.stderr)
            session.exitstatus = 1


def _imports_a_framework(path) -> bool:
    """Whether a test file imports a framework at its top (collecting it would load one)."""
    tree = ast.parse(open(path).read())
    names = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    return bool(names & set(FRAMEWORKS))


def pytest_ignore_collect(collection_path, config):
    """The fast tier does not even collect a file that imports a framework at its top."""
    if os.environ.get("EAGERBENCH_FAST_TIER") == "1" and collection_path.suffix == ".py" \
            and collection_path.name.startswith("test_"):
        return _imports_a_framework(collection_path) or None
    return None
