"""The user's own workloads: loaded from a file, a module or an entry point, run in every mode of
their framework, checked for agreement, and refused in one line when they cannot be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import eagerbench
from eagerbench.plan import grid as planner
from eagerbench.records import runfile
from eagerbench.report import cell_table, cellstats
from tests.conftest import record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def no_registered_workloads(monkeypatch):
    """Workloads registered in this process (and so in the workers it starts) are forgotten
    after each test."""
    import workloads

    monkeypatch.delenv(workloads.ENV, raising=False)

TORCH_STEP = '''
import torch
from eagerbench import native


def setup(params, env):
    w = torch.as_tensor(env.rng.standard_normal((8, 8)), dtype=env.dtype, device=env.device)
    return {{"w": w, "loss": torch.zeros((), dtype=env.dtype)}}, {{}}


def step(st, mem):
    {body}
    return {{"w": w, "loss": (w * w).mean()}}, mem


WORKLOAD = native.workload("tiny", "torch", setup, step, iters=3, warmup=2,
                           params={{"n": (1,)}})
'''


def _workload_file(folder: Path, body: str = "w = st['w'] * 0.5 + 0.1", name="tiny.py") -> Path:
    path = folder / name
    path.write_text(TORCH_STEP.format(body=body))
    return path


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "eagerbench.cli", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


BAD = {
    "missing file": (lambda d: d / "nope.py", "no such file"),
    "no attribute": (lambda d: f"{_workload_file(d)}:NOPE", "no attribute 'NOPE'"),
    "syntax error": (lambda d: _write(d / "broken.py", "def step(:\n"), ":1: syntax error"),
    "import fails": (lambda d: _write(d / "imports.py", "import no_such_module_here\n"),
                     "ModuleNotFoundError"),
    "not a workload": (lambda d: _write(d / "other.py", "WORKLOAD = 42\n"),
                       "is a int, not an eagerbench Workload"),
    "step returns nothing": (
        lambda d: _write(d / "silent.py", TORCH_STEP.replace(
            "    return {{\"w\": w, \"loss\": (w * w).mean()}}, mem\n", "").format(
            body="w = st['w']")), "returns nothing"),
    # a return in a nested helper once satisfied the check: every cell then failed at run
    # time ("cannot unpack non-iterable NoneType object") and the run exited 3, table empty
    "step returns only in a nested helper": (
        lambda d: _write(d / "nested.py", TORCH_STEP.replace(
            "    return {{\"w\": w, \"loss\": (w * w).mean()}}, mem\n", "").format(
            body="w = st['w']\n    def helper():\n        return st, mem\n    helper()")),
        "returns nothing"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_user_workload_is_one_line_naming_the_file_and_exit_2(tmp_path, case):
    make, cause = BAD[case]
    ref = str(make(tmp_path))
    proc = _cli("run", "-w", ref, "--out", tmp_path / "run", "--no-limits")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert ref.split(":")[0] in lines[0] and cause in lines[0]
    assert not (tmp_path / "run").exists()                      # nothing ran


def test_a_native_workload_runs_only_in_its_frameworks_modes(tmp_path):
    import workloads

    name = workloads.register([str(_workload_file(tmp_path))])[0]
    cells, _ = planner.plan([name], [], {}, iters=None, warmup=None, repeat=1, threads=1,
                            device="cpu", dtype="float32", seed=1, data=None, gc_mode="on")
    assert sorted({c.mode for c in cells}) == ["torch", "torch-compile"]
    with pytest.raises(planner.PlanError, match="torch's modes"):
        planner.plan([name], ["jax"], {}, iters=None, warmup=None, repeat=1, threads=1,
                     device="cpu", dtype="float32", seed=1, data=None, gc_mode="on")


def test_a_step_that_raises_fails_its_cell_and_the_others_go_on(tmp_path):
    path = _workload_file(tmp_path, body="w = st['w'] * 0.5\n    if w.shape[0] == 8 and "
                                        "N == 2: raise RuntimeError('user bug')")
    path.write_text(path.read_text().replace("import torch\n", "import torch\nN = 0\n").replace(
        "def setup(params, env):\n",
        "def setup(params, env):\n    global N\n    N = params['n']\n"))
    proc = _cli("run", "-w", path, "-p", "n=1,2", "--modes", "torch", "--repeat", "1",
                "--min-time", "0", "--no-limits", "-q", "--out", tmp_path / "run")
    assert proc.returncode == 3, proc.stderr
    run = runfile.read(tmp_path / "run")
    status = {r.spec.params["n"]: (r.result.status, r.result.reason) for r in run.records}
    assert status[1][0] == "ok"
    assert status[2] == ("failed", "RuntimeError: user bug")


def test_a_step_that_returns_none_at_run_time_fails_its_cell_with_what_it_must_return(
        tmp_path):
    """A return the load check cannot see through (``return None`` on a branch) is caught at
    the first warm-up call, in one line, not as ``cannot unpack non-iterable NoneType``."""
    path = _workload_file(tmp_path, body="w = st['w']\n    if w is not None:\n"
                                        "        return None")
    proc = _cli("run", "-w", path, "--modes", "torch", "--repeat", "1", "--min-time", "0",
                "--no-limits", "-q", "--out", tmp_path / "run")
    assert proc.returncode == 3, proc.stderr
    (rec,) = runfile.read(tmp_path / "run").records
    assert rec.result.status == "failed"
    assert rec.result.reason == ("TypeError: the step returned NoneType; it must return "
                                 "(st, mem)")


def test_outputs_that_differ_across_modes_are_flagged(tmp_path):
    """A step that computes something else when compiled: its row says DISAGREES."""
    path = _workload_file(tmp_path, body="w = st['w'] * 0.5 + (0.2 if "
                                        "torch.compiler.is_compiling() else 0.1)")
    measured = eagerbench.measure(str(path), repeat=1, min_time_s=0.0, iters=3, threads=1,
                                  limits=False, why=False)
    row = next(r for r in measured.rows if r.mode == "torch-compile")
    assert row.agreement_rel_diff > 0.01
    assert any(n.startswith("DISAGREES with torch") for n in cell_table.notes(row))


def test_agreement_compares_a_mode_with_its_twin_in_the_same_process():
    sample = {"ns": 10**6, "calls": 1, "gc_collections": 0, "gc_ns": 0}

    def rec(mode, pid, value):
        return record({"workload": "matmul", "params": {"size": 8}, "mode": mode},
                      {"status": "ok", "warmup": [sample], "timed": [sample] * 3,
                       "warm_check": {"c_sum": value}, "process": {"pid": pid}})

    eager = [rec("torch", 1, 10.0), rec("torch", 2, 20.0)]
    assert cellstats.agreement([rec("torch-compile", 2, 20.0 + 2e-5)], eager) == \
        pytest.approx(1e-6, rel=1e-3)
    assert cellstats.agreement([rec("torch-compile", 1, 11.0)], eager) == pytest.approx(1 / 11)


def test_the_api_takes_a_workload_object_and_returns_the_clis_records(tmp_path):
    import workloads

    ref = str(EXAMPLES / "jax_mlp.py")
    workload = workloads.load(workloads.absolute_reference(ref))
    measured = eagerbench.measure(workload, params={"batch": 8, "hidden": 16}, repeat=2,
                                  iters=5, min_time_s=0.0, threads=1, limits=False,
                                  out=tmp_path / "run")
    assert measured.folder == tmp_path / "run"
    # the second process measures the modes in reverse, so position costs fall on both alike
    assert [r.spec.mode for r in measured.records] == ["jax", "jax-jit", "jax-jit", "jax"]
    assert runfile.read(measured.folder).latest() == list(measured.records)
    jit = measured.cells.set_index("mode").loc["jax-jit"]
    assert jit["agreement_rel_diff"] < 1e-5 and jit["compiles_during_timing"] == 0
    assert np.isfinite(jit["vs_eager_lo"]) and np.isfinite(jit["gflops"])


@pytest.mark.parametrize("example, params, modes", [
    ("transformer_block.py", ["batch=2", "seq=8", "dim=16", "heads=2"], {"torch",
                                                                       "torch-compile"}),
    ("jax_mlp.py", ["batch=8", "hidden=16", "layers=2"], {"jax", "jax-jit"})])
def test_the_examples_run_in_every_mode_of_their_framework(tmp_path, example, params, modes):
    args = [arg for p in params for arg in ("-p", p)]
    proc = _cli("run", "-w", EXAMPLES / example, *args, "--repeat", "1", "--min-time", "0.05",
                "--threads", "1", "--no-limits", "--no-why", "-q", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    cells = runfile.read(tmp_path / "run")
    assert {r.spec.mode for r in cells.records} == modes
    name = {"transformer_block.py": "transformer-block", "jax_mlp.py": "jax-mlp"}[example]
    readme = (tmp_path / "run" / "README.md").read_text()
    page = (tmp_path / "run" / "workloads" / f"{name}.md").read_text()
    assert "Compile cost and break-even" in page and "heatmap.png" in readme
    assert "DISAGREES" not in page and "RECOMPILED" not in page
    assert (tmp_path / "run" / "break_even.png").exists()
    assert (tmp_path / "run" / f"{name}_loss.png").stat().st_size > 1000   # declared view


def test_an_installed_packages_entry_point_is_listed(tmp_path):
    package = tmp_path / "site"
    (package / "mypkg").mkdir(parents=True)
    _workload_file(package / "mypkg", name="bench.py")
    (package / "mypkg" / "__init__.py").write_text("")
    info = package / "mypkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [eagerbench.workloads]
        tiny = mypkg.bench:WORKLOAD
        """))
    proc = _cli("list", env={"PYTHONPATH": f"{package}{os.pathsep}"
                                           f"{os.environ.get('PYTHONPATH', '')}"})
    assert proc.returncode == 0, proc.stderr
    assert "tiny" in proc.stdout and "-p n=" in proc.stdout


def test_a_worker_measuring_an_article_workload_never_loads_the_users_files(tmp_path):
    """Cells of the article's workloads run in workers of one framework; a user's file
    (importing another framework, or broken) must not be imported there."""
    broken = _write(tmp_path / "heavy.py", "raise SystemExit('imported')\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import workloads; print(workloads.get_workload('matmul').name)"],
        capture_output=True, text=True, env={**os.environ, "EAGERBENCH_WORKLOADS": str(broken)})
    assert proc.returncode == 0 and proc.stdout.strip() == "matmul", proc.stderr


TF_STEP = '''
import tensorflow as tf
from eagerbench import native


def setup(params, env):
    w = tf.Variable(env.rng.standard_normal((16, 4)), dtype=env.dtype)
    x = tf.constant(env.rng.standard_normal((params["batch"], 16)), dtype=env.dtype)
    y = tf.constant(env.rng.standard_normal((params["batch"], 4)), dtype=env.dtype)
    return {"x": x, "y": y, "loss": tf.zeros((), env.dtype)}, {"w": w}


def step(st, mem):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((st["x"] @ mem["w"] - st["y"]) ** 2)
    mem["w"].assign_sub(0.1 * tape.gradient(loss, mem["w"]), read_value=False)
    return {**st, "loss": loss}, mem


WORKLOAD = native.workload("tf-regression", "tensorflow", setup, step, iters=5,
                           params={"batch": (8,)},
                           check=lambda st, mem: {"w": float(tf.norm(mem["w"]))})
'''


def test_a_tensorflow_step_runs_eager_as_a_graph_and_with_xla_and_agrees(tmp_path):
    path = _write(tmp_path / "tf_step.py", TF_STEP)
    measured = eagerbench.measure(str(path), repeat=1, min_time_s=0.0, threads=1, limits=False,
                                  why=False)
    cells = measured.cells.set_index("mode")
    assert set(cells.index) == {"tf-eager", "tf-graph", "tf-xla"}
    assert (cells["status"] == "ok").all()
    for mode in ("tf-graph", "tf-xla"):
        assert cells.loc[mode, "agreement_rel_diff"] < 1e-5
        assert cells.loc[mode, "traces_during_timing"] == 0
