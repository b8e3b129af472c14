"""The command line: bad input is one line and exit code 2; a real (tiny) run end to end."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import eagerbench_in_process


def eagerbench(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "eagerbench.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def garbage_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"not an idx file at all"))
    return path


BAD = [
    (["run", "--workload", "nope"], "unknown workload 'nope'"),
    (["run", "--modes", "torch,pytorch"], "unknown mode 'pytorch'"),
    (["run", "-w", "lbfgs", "--history", "0"], "--history must be at least 1"),
    (["run", "-w", "lbfgs", "--batch", "-5"], "--batch must be at least 1"),
    (["run", "-w", "matmul", "--size", "abc"], "'abc' is not an integer"),
    (["run", "-w", "matmul", "--history", "5"], "--history does not apply to matmul"),
    (["run", "-w", "lbfgs", "--warmup", "0"], "--warmup must be at least 1 for lbfgs"),
    (["run", "--iters", "0"], "--iters must be at least 1"),
    (["run", "--dtype", "float16"], "float16"),
    (["run", "-w", "lbfgs", "--data", "/no/such/file.gz"], "no such file"),
    (["run", "-w", "matmul", "--modes", "torch-cudagraph"], "runs only with --device cuda"),
    (["report", "/no/such/run"], "no raw.jsonl"),
    (["run", "-w", "higher-order", "--order", "0"], "--order must be at least 1"),
    (["run", "-w", "custom-gradient", "--square", "cube"], "'cube' is not one of plain"),
    (["run", "-w", "custom-gradient", "--noise", "-1"], "--noise must be at least 0"),
    (["run", "-w", "custom-gradient", "--noise", "x"], "'x' is not a number"),
    (["run", "-w", "custom-gradient", "--noise", "inf"], "'inf' is not a number"),
    (["run", "-w", "higher-order", "--order", "2.5"], "'2.5' is not an integer"),
    (["run", "-w", "convnet", "--optimizer", "adam"], "--optimizer does not apply to convnet"),
    (["run", "-w", "convnet", "--warmup", "1"], "--warmup must be at least 2 for convnet"),
    (["frobnicate"], "No such command"),
    (["run", "-w", "matmul", "--min-time", "-1"], "--min-time must be"),
    (["run", "-w", "matmul", "--allocator", "jemalloc"], "'jemalloc' is not one of"),
    (["run", "-w", "matmul", "--repeat", "0"], "--repeat must be at least 1"),
    (["run", "-w", "gpt", "-p", "btch=16"], "'btch' is not a parameter of gpt (they take: "
                                            "step, batch)"),
    (["run", "-w", "gpt", "-p", "batch=0"], "-p batch=0: batch must be at least 1"),
    (["run", "-w", "gpt", "-p", "step=fit"], "'fit' is not one of train"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = eagerbench_in_process(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("eagerbench: error:")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_gpu_run_where_no_framework_sees_one_is_one_line_and_exit_2():
    """The check starts each framework in a process of its own, as the cells would."""
    proc = eagerbench("run", "-w", "matmul", "--modes", "torch", "--device", "cuda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA GPU" in lines[0]


def test_unreadable_data_file_is_one_line(garbage_file):
    proc = eagerbench_in_process("run", "-w", "lbfgs", "--data", str(garbage_file))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "not an idx file" in proc.stderr or "unreadable" in proc.stderr


def test_list_shows_workloads_params_and_modes():
    proc = eagerbench("list")
    assert proc.returncode == 0
    for text in ("lbfgs", "--history", "5,100", "60000,10000", "matmul", "elementwise",
                 "torch", "tf-eager", "tf-graph", "available"):
        assert text in proc.stdout


def test_run_end_to_end_then_report(tmp_path):
    out = tmp_path / "run"
    proc = eagerbench("run", "-w", "matmul", "--size", "32,64", "--modes", "torch,tf-graph",
                      "--no-limits", "--iters", "5", "--warmup", "1", "--min-time", "0",
                      "--repeat", "2", "--threads", "1", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "vs torch" in proc.stdout
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 4 and (cells["status"] == "ok").all()
    assert set(cells["mode"]) == {"torch", "tf-graph"} and (cells["processes"] == 2).all()
    assert (cells.loc[cells["mode"] == "torch", "slowdown"] == 1.0).all()
    graph = cells[cells["mode"] == "tf-graph"]
    assert (graph["slowdown_lo"] < graph["slowdown"]).all()      # an interval over processes
    assert (cells["gflops"] > 0).all()
    iters = pd.read_csv(out / "iterations.csv")
    timed = iters[iters["phase"] == "timed"].groupby(["params", "mode", "repeat"]).size()
    assert len(timed) == 8 and (timed == 5).all()
    env = json.loads((out / "env.json").read_text())
    assert env["threads"] == 1 and env["run_wall_s"] > 0
    assert set(env["contention"]) == {"before", "after"}
    assert (out / "heatmap.png").stat().st_size > 1000
    readme = (out / "README.md").read_text()
    assert "heatmap.png" in readme and "[matmul](workloads/matmul.md)" in readme
    assert "## This run" in (out / "run.md").read_text()
    # report rebuilds everything from raw.jsonl alone
    (out / "cells.csv").unlink()
    (out / "heatmap.png").unlink()
    proc = eagerbench("report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "cells.csv").exists() and (out / "heatmap.png").exists()


def test_sweep_with_comma_lists_and_repeated_options(tmp_path):
    from eagerbench.cli.common import plan

    common = dict(iters=None, warmup=None, repeat=2, threads=1, device="cpu", dtype="float32",
                  seed=1, data=None, gc_mode="on")
    cells, _ = plan(("lbfgs",), ("torch,tf-eager", "tf-graph"),
                    {"history": [5, 100], "batch": [60000, 10000], "size": [], "ops": []},
                    **common)
    assert len(cells) == 2 * (2 * 2 * 3)    # the default grid has no allocator companion
    assert {c.mode for c in cells[:4]} == {"torch"}        # framework by framework
    assert {c.mode for c in cells[12:16]} == {"tf-graph", "tf-eager"}   # reversed on repeat 1
    assert {(c.params["history"], c.params["batch"]) for c in cells} == {
        (5, 60000), (5, 10000), (100, 60000), (100, 10000)}
    # repeats are interleaved: the whole grid once, then again
    assert [c.repeat for c in cells] == [0] * 12 + [1] * 12
    full, _ = plan(("lbfgs",), ("torch,tf-eager", "tf-graph"),
                   {"history": [5, 100], "batch": [60000, 10000], "size": [], "ops": []},
                   **common, grid="full")
    assert len(full) == 2 * (2 * 2 * 3 + 1)      # and the allocator companion, per repeat
    default, _ = plan((), (), {"history": [], "batch": [], "size": [], "ops": []},
                      **{**common, "repeat": 1})
    assert {c.workload for c in default} == {"lbfgs", "matmul", "elementwise", "higher-order",
                                             "custom-gradient", "kfac", "convnet"}
    # an interleaved parameter stays one cell per mode, with a count per value
    ho = [c for c in default if c.workload == "higher-order"]
    assert len(ho) == len({c.mode for c in default})
    assert ho[0].params["order"] == [1, 2, 3, 4] and ho[0].iters == [20] * 4   # 5-6: full grid


def test_gradient_features_end_to_end_tables_and_plots(tmp_path):
    out = tmp_path / "features"
    proc = eagerbench("run", "-w", "higher-order,custom-gradient,kfac,convnet", "--modes",
                      "torch,jax-jit", "--order", "1,3", "--size", "16", "--batch", "8",
                      "--width", "2", "--iters", "3", "--no-limits", "--threads", "1",
                      "--min-time", "0", "--repeat", "1", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    cells = pd.read_csv(out / "cells.csv")
    # 2 orders + 3 squares + 3 optimizers + 1 convnet, in two modes, every one measured
    assert len(cells) == 2 * 9 and (cells["status"] == "ok").all()
    assert set(cells.loc[cells["workload"] == "kfac", "interleaved"]) == {"optimizer=gd,kfac,adam"}
    assert cells.loc[cells["workload"] == "convnet", "interleaved"].isna().all()
    iters = pd.read_csv(out / "iterations.csv")
    kf = iters[(iters["workload"] == "kfac") & (iters["mode"] == "torch")
               & (iters["phase"] == "timed")]
    assert kf.groupby("p_optimizer").size().to_dict() == {"adam": 3, "gd": 3, "kfac": 3}
    for png in ("higher_order.png", "custom_gradient.png", "custom_gradient_time.png",
                "kfac.png", "kfac_time.png", "convnet.png", "convnet_compile.png"):
        assert (out / png).stat().st_size > 1000, png
    pages = out / "workloads"
    readme = (pages / "higher-order.md").read_text()
    assert "## Workloads' own tables" in readme
    section = readme.split("### higher-order: ms per n-th derivative (size=16)")[1]
    rows = [line for line in section.split("###")[0].splitlines() if line.startswith("|")]
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["1", "3"]   # one row per order
    assert "kfac: loss after the last iteration" in (pages / "kfac.md").read_text()
    assert "convnet.png" in (pages / "convnet.md").read_text()
