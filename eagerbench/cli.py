"""The ``eagerbench`` command line: run, list, report."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import click

from eagerbench import envinfo
from eagerbench.modes import all_modes
from eagerbench.plan import names as plan_names
from eagerbench.runner import RAW, Cell, run_cells
from workloads import all_workloads

EXIT_BAD_INPUT = 2
EXIT_CELLS_FAILED = 3
GENERATED = [RAW, "env.json", "cells.csv", "iterations.csv", "README.md"]


class UserError(click.ClickException):
    """Bad input: reported as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


def _values(option: str, kind: str, choices: tuple):
    """A click callback turning ``--x 5,100 --x 7`` into ``[5, 100, 7]`` (ints accept ``1e6``)."""

    def one(part: str):
        if kind == "choice":
            if part not in choices:
                raise UserError(f"{option}: {part!r} is not one of {', '.join(choices)}")
            return part
        what = "a number" if kind == "float" else "an integer"
        try:
            value = float(part) if kind == "float" or "e" in part.lower() else int(part)
            if not math.isfinite(value) or (kind != "float" and value != int(value)):
                raise ValueError
        except ValueError:
            raise UserError(f"{option}: {part!r} is not {what}") from None
        return value if kind == "float" else int(value)

    def parse(ctx, param, values):
        return [one(part.strip()) for value in values for part in str(value).split(",")
                if part.strip()]

    return parse


def _param_options(command):
    """One ``--name`` option per workload parameter (shared names, such as --batch, once)."""
    uses: dict[str, list] = {}
    for w in all_workloads().values():
        for p in w.params:
            uses.setdefault(p.name, []).append((w.name, p))
    for name, pairs in reversed(list(uses.items())):
        first = pairs[0][1]
        choices = tuple(dict.fromkeys(c for _, p in pairs for c in p.choices))
        text = "; ".join(f"{w}: {p.help}" for w, p in pairs)
        metavar = "NAME[,NAME...]" if first.kind == "choice" else "N[,N...]"
        command = click.option(f"--{name}", name, multiple=True, metavar=metavar,
                               callback=_values(f"--{name}", first.kind, choices),
                               help=text + (f" [{', '.join(choices)}]" if choices else ""))(command)
    return command


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eagerbench")
def cli():
    """Measure the eager tax: the same programs run op by op and as graphs, in every framework."""


@cli.command()
@click.option("--workload", "-w", "workloads", multiple=True,
              help="Workload(s), comma-separated or repeated. Default: the whole suite "
                   "(only those taking every parameter option given).")
@click.option("--modes", "-m", "modes", multiple=True,
              help="Modes, comma-separated or repeated (see `eagerbench list`). Default: all "
                   "installed.")
@_param_options
@click.option("--iters", type=int, help="Timed iterations per cell (default: per workload).")
@click.option("--warmup", type=int, help="Warm-up iterations per cell, timed separately.")
@click.option("--repeat", type=int, default=2, show_default=True,
              help="Measure every cell in this many worker processes (the whole grid once, then "
                   "again): intervals include what varies between processes; 1 gives none.")
@click.option("--threads", type=int, default=_default_threads, show_default="all cores",
              help="Threads for every framework (intra- and inter-op pools).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--seed", type=int, default=1, show_default=True,
              help="Seed of the initial weights, matrices and stand-in data.")
@click.option("--data", type=click.Path(dir_okay=False),
              help="MNIST training images (idx, gzipped or not, or .npz). Default: a stand-in.")
@click.option("--compile-mode", type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
              default="default", show_default=True, help="torch.compile's mode (torch-compile).")
@click.option("--allocator", type=click.Choice(["default", "thp"]), default=None,
              help="Memory allocator setting: thp sets THP_MEM_ALLOC_ENABLE=1 (PyTorch's CPU "
                   "allocator asks for transparent huge pages). Default: as the environment is, "
                   "plus the workloads' companion cells with thp.")
@click.option("--min-time", "min_time", type=float, default=0.2, show_default=True,
              help="Seconds of timed samples per cell and process, at least (cheap steps get "
                   "more samples).")
@click.option("--gc", "gc_mode", type=click.Choice(["on", "off", "freeze"]), default="on",
              show_default=True, help="Python's garbage collector while timing.")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Output folder (replaces a previous run there). Default: runs/<timestamp>.")
@click.option("--timeout", type=float, default=900, show_default=True,
              help="Seconds before a cell is killed and recorded as failed.")
@click.option("--limits/--no-limits", default=True, show_default=True,
              help="Measure the machine's peak matmul rate and bandwidth first (~15 s).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def run(workloads, modes, iters, warmup, repeat, threads, device, dtype, seed, data, gc_mode,
        compile_mode, allocator, min_time, out, timeout, limits, quiet, **param_values):
    """Run workloads in modes, each cell in --repeat worker processes; write tables and plots.

    \b
    Examples:
      eagerbench run                                    # the default suite
      eagerbench run --workload lbfgs --history 100
      eagerbench run -w lbfgs --history 5,100 --batch 60000,10000 --modes torch,tf-graph
      eagerbench run -w elementwise --size 100,1e6 --ops 10
    """
    if min_time < 0 or not math.isfinite(min_time):
        raise UserError(f"--min-time must be a number of seconds, at least 0 (got {min_time:g})")
    started = time.perf_counter()
    cells, skipped = plan(workloads, modes, param_values, iters=iters, warmup=warmup,
                          repeat=repeat, threads=threads, device=device, dtype=dtype, seed=seed,
                          data=data, gc_mode=gc_mode, compile_mode=compile_mode,
                          allocator=allocator, min_time_s=min_time)
    if device == "cuda":
        _check_cuda({c.mode for c in cells})
    if data:
        _check_data(data, cells)
    for note in skipped:
        click.echo(f"eagerbench: note: {note}", err=True)
    out_dir = Path(out) if out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    _prepare(out_dir)
    settings = {"device": device, "dtype": dtype, "threads": threads, "seed": seed, "gc": gc_mode,
                "compile_mode": compile_mode, "skipped": skipped, "repeat": repeat,
                "min_time_s": min_time, "allocator_choice": allocator or "default",
                "allocator": envinfo.allocator_settings(),
                "command": " ".join(["eagerbench"] + sys.argv[1:])}
    from eagerbench import limits as machine

    if limits:
        click.echo("eagerbench: measuring this machine's matmul peak and bandwidth ...", err=True)
        settings["limits"] = machine.measure(threads, device)
    settings["contention"] = {"before": machine.contention()}
    (out_dir / "env.json").write_text(json.dumps(envinfo.record(settings), indent=2) + "\n")
    click.echo(f"eagerbench: {len(cells)} cells, {threads} threads, {device}, {dtype} -> "
               f"{out_dir}", err=True)
    try:
        records = run_cells(cells, out_dir, timeout, progress=not quiet)
    except KeyboardInterrupt:
        _finish(out_dir)
        click.echo(f"eagerbench: interrupted; cells finished so far are in {out_dir}", err=True)
        sys.exit(130)
    if limits and _beaten(records, settings["limits"]):
        click.echo("eagerbench: a cell beat the limits measured before the run (taken in a slow "
                   "spell?): measuring them again", err=True)
        _record_limits(out_dir, machine.merge(settings["limits"],
                                              machine.measure(threads, device)))
    _record_wall(out_dir, time.perf_counter() - started, machine.contention())
    summary = _finish(out_dir)
    click.echo(summary.to_markdown(index=False))
    _warn_noisy(out_dir)
    click.echo(f"\ntables, plots and README.md in {out_dir}/")
    failed = sum(r["result"]["status"] == "failed" for r in records)
    if failed:
        click.echo(f"eagerbench: {failed} of {len(records)} cells failed (see the table)", err=True)
        sys.exit(EXIT_CELLS_FAILED)


def _beaten(records: list, limits: dict) -> bool:
    """Whether a measured cell claims more than the machine's limits allow."""
    from eagerbench.tables import cells_table

    cells = cells_table(records, limits)
    return "invalid" in cells and cells["invalid"].fillna("").ne("").any()


def _record_limits(out_dir: Path, limits: dict) -> None:
    path = out_dir / "env.json"
    env = json.loads(path.read_text())
    env["limits"] = limits
    path.write_text(json.dumps(env, indent=2) + "\n")


def _record_wall(out_dir: Path, seconds: float, contention_after: dict) -> None:
    """The run's wall time (limits and cells included) and the machine's contention at its end,
    into env.json (for the report)."""
    path = out_dir / "env.json"
    env = json.loads(path.read_text())
    env["run_wall_s"] = seconds
    env.setdefault("contention", {})["after"] = contention_after
    path.write_text(json.dumps(env, indent=2) + "\n")


def _warn_noisy(out_dir: Path) -> None:
    """hyperfine-style: name each cell whose ratio its spread cannot support, and the remedy;
    and each cell whose measurement broke a guard (INVALID, RECOMPILED, COPIED)."""
    import pandas as pd

    from eagerbench.tables import notes

    text = {"warnings": "string", "invalid": "string", "bimodal": "string"}
    cells = pd.read_csv(out_dir / "cells.csv", dtype=text)
    for column in text:   # absent when no cell was measured
        cells[column] = cells[column].fillna("") if column in cells else ""
    noisy = cells[(cells["warnings"] != "") | (cells["bimodal"] != "")]
    for r in noisy.itertuples():
        why = "; ".join(x for x in (r.warnings, r.bimodal) if x)
        click.echo(f"eagerbench: warning: {r.workload} {r.params} [{r.mode}]: {why}", err=True)
    if len(noisy):
        click.echo("eagerbench: to firm up those ratios: more --iters or --min-time, --repeat 3, "
                   "or a quieter machine", err=True)
    guards = ("INVALID", "RETRACED", "RECOMPILED", "COPIED")
    for _, r in cells.iterrows():
        broken = [n for n in notes(r) if n.startswith(guards)]
        if broken:
            click.echo(f"eagerbench: warning: {r['workload']} {r['params']} [{r['mode']}]: "
                       f"{'; '.join(broken)}", err=True)


def plan(*args, **kwargs):
    """``eagerbench.plan.plan`` with its errors as one-line user errors."""
    from eagerbench import plan as planner

    try:
        return planner.plan(*args, **kwargs)
    except planner.PlanError as exc:
        raise UserError(str(exc)) from None


def _check_cuda(modes: set[str]) -> None:
    """Fail fast, before any cell runs, when a requested framework sees no GPU."""
    probes = {"torch": "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)",
              "tensorflow": "import tensorflow as tf,sys; "
                            "sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)",
              "jax": "import jax,sys; sys.exit(0 if any(d.platform=='gpu' for d in "
                     "jax.devices()) else 1)"}
    known = all_modes()
    for framework in sorted({known[m].framework for m in modes}):
        code = probes.get(framework)
        if code is None:
            continue
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        rc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env).returncode
        if rc != 0:
            raise UserError(f"--device cuda: {framework} sees no CUDA GPU on this machine")


def _check_data(path: str, cells: list[Cell]) -> None:
    from workloads.mnist import DataError, load

    from workloads import get_workload

    batches = [c.params["batch"] for c in cells
               if "batch" in c.params and get_workload(c.workload).uses_data]
    try:
        load(path, max(batches) if batches else 1)
    except DataError as exc:
        raise UserError(f"--data {exc}") from None


def _prepare(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            (out_dir / name).unlink(missing_ok=True)
        for png in out_dir.glob("*.png"):
            png.unlink()
    except OSError as exc:
        raise UserError(f"--out {out_dir}: {exc.strerror}") from None


def _finish(out_dir: Path):
    from eagerbench import report

    return report.build(out_dir)


@cli.command("verify")
@click.option("--modes", "-m", "modes", multiple=True,
              help="Modes to check (default: all installed that run on the CPU).")
@click.option("--history", type=int, default=5, show_default=True)
@click.option("--batch", type=int, default=1000, show_default=True)
@click.option("--iters", type=int, default=12, show_default=True)
@click.option("--rtol", type=float, default=1e-8, show_default=True,
              help="Largest relative difference allowed against PyTorch eager.")
@click.option("--threads", type=int, default=_default_threads, show_default="all cores")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--data", type=click.Path(dir_okay=False), help="MNIST images (default: stand-in).")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Write verify.json here (a run folder: its report then shows it).")
@click.option("--timeout", type=float, default=600, show_default=True)
def verify_cmd(modes, history, batch, iters, rtol, threads, seed, data, out, timeout):
    """Run l-BFGS in float64 in every mode from the same start and compare the numbers.

    Exits 1 when a mode differs from PyTorch eager by more than --rtol, PyTorch eager differs
    from torch.optim.LBFGS, or a gradient fails the finite-difference check.
    """
    from eagerbench import verify

    for opt, value in (("--history", history), ("--batch", batch), ("--iters", iters),
                       ("--threads", threads)):
        if value < 1:
            raise UserError(f"{opt} must be at least 1 (got {value})")
    if rtol <= 0:
        raise UserError(f"--rtol must be positive (got {rtol:g})")
    known = all_modes()
    names = plan_names(modes) or [m.name for m in known.values()
                              if m.installed() and "cpu" in m.devices]
    for name in names:
        if name not in known:
            raise UserError(f"unknown mode {name!r} (known: {', '.join(known)})")
        if not known[name].installed():
            raise UserError(f"mode {name!r} needs {known[name].framework}, which is not installed")
        if "cpu" not in known[name].devices:
            raise UserError(f"mode {name!r} runs only on a GPU; verify runs on the CPU")
    if verify.REFERENCE not in names:
        names = [verify.REFERENCE] + names
    if data:
        _check_data(data, [Cell("lbfgs", {"batch": batch}, "torch")])
    click.echo(f"eagerbench: verify {', '.join(names)} (float64, history {history}, batch "
               f"{batch}, {iters} iterations)", err=True)
    started = time.perf_counter()
    runs = verify.run(names, {"history": history, "batch": batch}, iters, threads, seed,
                      os.path.abspath(data) if data else None, timeout,
                      lambda mode, msg: click.echo(f"  {mode}: {msg['i']}/{msg['n']}", err=True)
                      if msg["i"] == msg["n"] else None)
    table = verify.compare(runs, rtol)
    click.echo(table.to_markdown(index=False, floatfmt=".3g"))
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        verify.save(table, {"history": history, "batch": batch, "iters": iters, "seed": seed,
                            "rtol": rtol}, out_dir, time.perf_counter() - started)
        if (out_dir / RAW).exists():
            _finish(out_dir)
    if not table["pass"].all():
        bad = ", ".join(table.loc[~table["pass"], "mode"])
        click.echo(f"eagerbench: verify failed for {bad}", err=True)
        sys.exit(1)


@cli.command("list")
def list_cmd():
    """Show workloads with their parameters and defaults, and modes with their availability."""
    click.echo("Workloads (parameters: default sweep):")
    for w in all_workloads().values():
        click.echo(f"  {w.name:<16} {w.summary}")
        for p in w.params:
            default = ",".join("auto" if v is None else str(v) for v in p.default)
            click.echo(f"      --{p.name:<10} {default:<28} {p.help}")
    click.echo("\nModes:")
    for m in all_modes().values():
        state = "available" if m.installed() else f"not installed ({m.install_hint})"
        if m.installed() and m.devices != ("cpu", "cuda"):
            state += f" (--device {' or '.join(m.devices)} only)"
        click.echo(f"  {m.name:<16} {m.summary:<52} {state}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
def report(directory):
    """Rebuild tables, plots and README.md from a saved run's raw.jsonl."""
    out_dir = Path(directory)
    if not (out_dir / RAW).is_file():
        raise UserError(f"{out_dir}: no {RAW} here (not an eagerbench run folder)")
    click.echo(_finish(out_dir).to_markdown(index=False))


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("eagerbench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        msg = exc.format_message().strip().replace("\n", " ")
        click.echo(f"eagerbench: error: {msg}", err=True)
        sys.exit(EXIT_BAD_INPUT if isinstance(exc, (click.UsageError, UserError)) else exc.exit_code)
    except KeyboardInterrupt:
        click.echo("eagerbench: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"eagerbench: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
