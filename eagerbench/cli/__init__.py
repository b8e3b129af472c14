"""The ``eagerbench`` command line: run, verify, list, report, compare."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import click

from eagerbench.records import host as envinfo
from eagerbench.plan import grid as planner
from eagerbench import session
from eagerbench.frameworks.modes import ALIASES, all_modes
from eagerbench.plan.grid import GRIDS, check_data, names as plan_names
from eagerbench.report.build import build as build_report
from eagerbench.records.runfile import RAW, ResultsError
from eagerbench.records.model import CellSpec
import workloads as workload_registry
from workloads import WorkloadError, all_workloads, builtin_workloads

EXIT_BAD_INPUT = 2
EXIT_CELLS_FAILED = 3
# Options that shape a run's grid: --resume takes the interrupted run's own.
GRID_OPTIONS = ("workloads", "env_specs", "extra_params", "modes", "iters", "warmup", "repeat", "grid", "threads", "device", "dtype",
                "seed", "data", "gc_mode", "compile_mode", "allocator", "min_time", "out",
                "limits", "why")


class UserError(click.ClickException):
    """Bad input: reported as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


def _value(option: str, kind: str, choices: tuple, part: str):
    """One parameter value from the command line (ints accept ``1e6``)."""
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


def _values(option: str, kind: str, choices: tuple):
    """A click callback turning ``--x 5,100 --x 7`` into ``[5, 100, 7]``."""

    def parse(ctx, param, values):
        return [_value(option, kind, choices, part.strip()) for value in values
                for part in str(value).split(",") if part.strip()]

    return parse


def _register(values) -> list[str]:
    """--workload values with the user's files and modules loaded and replaced by their names."""
    parts = plan_names(values)
    refs = [p for p in parts if workload_registry.is_reference(p)]
    try:
        loaded = dict(zip(refs, workload_registry.register(refs)))
    except WorkloadError as exc:
        raise UserError(str(exc)) from None
    return [loaded.get(p, p) for p in parts]


def _extra_params(pairs, names: list[str], param_values: dict) -> dict:
    """``-p NAME=V[,V...]`` merged into the parameter options, parsed by the parameter's kind."""
    out = dict(param_values)
    known = all_workloads()
    chosen = [known[n] for n in names if n in known] or list(known.values())
    for pair in pairs:
        name, sep, text = pair.partition("=")
        params = [p for w in chosen for p in w.params if p.name == name.strip()]
        if not sep or not params:
            raise UserError(f"-p {pair}: expected NAME=VALUE[,VALUE...] with NAME a parameter "
                            f"of {', '.join(w.name for w in chosen)}")
        kind, choices = params[0].kind, tuple(c for p in params for c in p.choices)
        out[name.strip()] = list(out.get(name.strip()) or []) + [
            _value(f"-p {name}", kind, choices, v.strip()) for v in text.split(",") if v.strip()]
    return out


def _param_options(command):
    """One ``--name`` option per workload parameter (shared names, such as --batch, once)."""
    uses: dict[str, list] = {}
    for w in builtin_workloads().values():
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


def _executor_options(command):
    """``--executor`` and the Slurm options, gathered into one ``executor`` argument."""
    slurm = [
        click.option("--partition", help="Slurm partition (default: the cluster's default)."),
        click.option("--constraint", help="Slurm node features, e.g. a100 (sbatch --constraint)."),
        click.option("--gres", help="Slurm generic resources, e.g. gpu:1 (sbatch --gres)."),
        click.option("--time-limit", type=click.IntRange(min=1), default=60, show_default=True,
                     help="Minutes per Slurm job (one job measures one worker's cells)."),
        click.option("--account", help="Slurm account to charge."),
        click.option("--max-jobs", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Slurm jobs running at once (the job array's parallelism)."),
        click.option("--exclusive/--shared-node", default=True, show_default=True,
                     help="Each Slurm job gets a whole node: nothing else runs beside a "
                          "benchmark."),
    ]
    executor = click.option(
        "--executor", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
        help="Where workers run: this machine, or one exclusive-node Slurm job each (through "
             "submitit; the output folder must be on a file system the nodes share).")

    def gather(**kwargs):
        names = ("partition", "constraint", "gres", "time_limit", "account", "max_jobs",
                 "exclusive")
        chosen = {name: kwargs.pop(name) for name in names}
        kwargs["executor"] = (kwargs.pop("executor"), chosen)
        return command(**kwargs)

    import functools

    wrapped = functools.wraps(command)(gather)
    for option in reversed([executor] + slurm):
        wrapped = option(wrapped)
    return wrapped


def _executor(ctx, choice, resume_settings=None, limits=True):
    """The executor the options ask for (``--resume``: the run's own, unless options say)."""
    from eagerbench.execute import executors
    from eagerbench.execute import slurm

    name, options = choice
    given = [n for n in ["executor", *options]
             if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if resume_settings is not None and not given:
        return executors.from_settings(resume_settings)
    if name == "local":
        stray = [n for n in given if n != "executor"]
        if stray:
            raise UserError(f"--{stray[0].replace('_', '-')} is a Slurm option; it goes with "
                            f"--executor slurm")
        return executors.create("local")
    try:
        slurm.check_cluster(options["partition"])
    except slurm.SlurmError as exc:
        raise UserError(str(exc)) from None
    return executors.create("slurm", limits=limits, **options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eagerbench")
def cli():
    """Measure the eager tax: the same programs run op by op and as graphs, in every framework."""


@cli.command()
@click.option("--workload", "--workloads", "-w", "workloads", multiple=True,
              help="Workload(s), comma-separated or repeated: a name, or your own as "
                   "path/to/file.py[:NAME] or module:NAME. Default: the whole suite (only those "
                   "taking every parameter option given).")
@click.option("--param", "-p", "extra_params", multiple=True, metavar="NAME=V[,V...]",
              help="A workload parameter by name (your own workloads' parameters, or any).")
@click.option("--modes", "--mode", "-m", "modes", multiple=True,
              help="Modes, comma-separated or repeated (see `eagerbench list`). Default: all "
                   "installed.")
@_param_options
@click.option("--iters", type=int, help="Timed iterations per cell (default: per workload).")
@click.option("--warmup", type=int, help="Warm-up iterations per cell, timed separately.")
@click.option("--repeat", type=int, default=5, show_default=True,
              help="Measure every cell in this many worker processes (the whole grid once, then "
                   "again): intervals include what varies between processes; 1 gives none.")
@click.option("--grid", type=click.Choice(GRIDS), default="default", show_default=True,
              help="Parameter values run where none are given: the article's sizes (default), "
                   "full: every workload's further values and its companion cells (thp), or "
                   "quick: one small cell per family (see --quick).")
@click.option("--quick", is_flag=True,
              help="The whole story in about two minutes: one small cell per workload family "
                   "(matmul 512, element-wise adds on 10 elements, l-BFGS history 5 at batch "
                   "10k, the 2nd derivative) in the eager modes and their graph twins, 3 "
                   "processes each. It leaves out the article's large sizes, tf-xla, the why "
                   "decomposition (--why puts it back) and the machine's limits.")
@click.option("--threads", type=int, default=envinfo.default_threads, show_default="all cores",
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
              help="Output folder. A run already there is kept: the new one is written beside "
                   "it and takes its place only once finished (the old one moves to "
                   "OUT/previous/). Default: runs/<timestamp>.")
@click.option("--resume", type=click.Path(file_okay=False),
              help="Finish the interrupted run in this folder: its own cells, skipping those "
                   "already measured (no grid options with it).")
@click.option("--rerun-failed", is_flag=True,
              help="With --resume: measure the cells that failed again too.")
@click.option("--timeout", type=float, default=900, show_default=True,
              help="Seconds before a cell is killed and recorded as failed.")
@click.option("--why/--no-why", default=True, show_default=True,
              help="After each unit's timed rounds, a phase of its own that counts ops and "
                   "prices dispatch, memory and kernels (the why decomposition); --no-why "
                   "runs only the work.")
@click.option("--limits/--no-limits", default=True, show_default=True,
              help="Measure the machine's peak matmul rate and bandwidth first (~15 s; on "
                   "Slurm, once per host type, on its node).")
@click.option("--env", "env_specs", multiple=True, metavar="SPEC",
              help="Run in an isolated environment built with uv (cached; repeat the option "
                   "to compare releases): a requirement such as jax==0.4.30, or a requirements "
                   "file. Each environment's processes take turns with the others'.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_executor_options
@click.pass_context
def run(ctx, workloads, extra_params, modes, iters, warmup, repeat, grid, quick, threads, device,
        dtype, seed, data, gc_mode, compile_mode, allocator, min_time, env_specs, out, resume,
        rerun_failed, timeout, why, limits, quiet, executor, **param_values):
    """Run workloads in modes, each cell in --repeat worker processes; write tables and plots.

    \b
    Examples:
      eagerbench run --quick                            # every family, small, ~2 minutes
      eagerbench run                                    # the default suite
      eagerbench run --workload lbfgs --history 100
      eagerbench run -w lbfgs --history 5,100 --batch 60000,10000 --modes torch,tf-graph
      eagerbench run -w elementwise --size 100,1e6 --ops 10
      eagerbench run -w examples/transformer_block.py -p batch=8,32
      eagerbench run --env jax==0.4.30 --env jax==0.10.2 -w elementwise   # two releases
      eagerbench run --resume runs/20261128-0930       # finish an interrupted run
      eagerbench run --executor slurm --partition gpu --gres gpu:1 --device cuda
    """
    if resume:
        given = [name for name in list(GRID_OPTIONS) + list(param_values)
                 if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            flags = {p.name: p.opts[0] for p in ctx.command.params}
            raise UserError(f"--resume runs the interrupted run's own cells; drop "
                            f"{', '.join(flags.get(g, '--' + g) for g in given)}")
        return _resume(ctx, Path(resume), rerun_failed, timeout, quiet, executor)
    if rerun_failed:
        raise UserError("--rerun-failed goes with --resume DIR")
    if quick:
        grid, repeat, why, limits = _quick(ctx, grid, repeat, why, limits)
    workloads = _register(workloads)
    param_values = _extra_params(extra_params, workloads, param_values)
    runner = _executor(ctx, executor, limits=limits)
    specs, built = _session(session.prepare_environments, env_specs, runner, _say)
    cells, skipped = plan(workloads, modes, param_values, iters=iters, warmup=warmup,
                          repeat=repeat, threads=threads, device=device, dtype=dtype, seed=seed,
                          data=data, gc_mode=gc_mode, compile_mode=compile_mode,
                          allocator=allocator, min_time_s=min_time, why=why, grid=grid,
                          envs=specs)
    for note in skipped:
        click.echo(f"eagerbench: note: {note}", err=True)
    target = Path(out) if out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    settings = session.run_settings(
        device=device, dtype=dtype, threads=threads, seed=seed, repeat=repeat,
        min_time_s=min_time, why=why, command=" ".join(["eagerbench"] + sys.argv[1:]),
        gc=gc_mode, compile_mode=compile_mode, allocator=allocator, skipped=skipped, grid=grid,
        environments_built=built)
    started = time.perf_counter()
    opened = _session(session.open_new, target, session.header_env(
        settings, cells, runner, limits, _say))
    opened.started = started
    click.echo(f"eagerbench: {len(cells)} cells, {threads} threads, {device}, {dtype} -> "
               f"{opened.folder}" + (f" (on {runner.name})" if runner.name != "local" else ""),
               err=True)
    _measure(cells, opened, runner, timeout, quiet)


def _quick(ctx, grid: str, repeat: int, why: bool, limits: bool) -> tuple:
    """--quick's settings: the quick grid, 3 processes, no why phase and no limits probe,
    unless the user set them."""
    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    if given("grid") and grid != "quick":
        raise UserError(f"--quick chooses its own grid; drop --grid {grid}")
    return ("quick", repeat if given("repeat") else 3, why if given("why") else False,
            limits if given("limits") else False)


def _say(line: str) -> None:
    click.echo(line, err=True)


def _session(call, *args):
    """A session step, its errors as one-line user errors."""
    try:
        return call(*args)
    except session.SessionError as exc:
        raise UserError(str(exc)) from None


def _resume(ctx, folder: Path, rerun_failed: bool, timeout: float, quiet: bool,
            executor_choice) -> None:
    """Measure the cells an interrupted run planned and did not finish, into the same file."""
    resumption = _session(session.open_resume, folder, rerun_failed)
    if resumption.torn:
        _say(f"eagerbench: the record being written when the run was killed is incomplete; "
             f"set aside in {resumption.torn}")
    try:
        runner = _executor(ctx, executor_choice, resumption.executor_settings,
                           limits=resumption.limits)
    except (UserError, ValueError, TypeError) as exc:
        resumption.opened.release()
        raise UserError(str(exc.message if isinstance(exc, UserError) else exc)) from None
    todo, planned = resumption.todo, resumption.planned
    _say(f"eagerbench: resuming {folder}: {len(planned) - len(todo)} of {len(planned)} cells "
         f"already measured, {len(todo)} to go")
    _measure(todo, resumption.opened, runner, timeout, quiet)


def _measure(cells, opened, runner, timeout: float, quiet: bool) -> None:
    """Measure through the session, then print the summary and what it warns of."""
    try:
        outcome = _session(session.measure, cells, opened, runner, timeout, not quiet, _say)
    except session.Interrupted as stop:
        _say(f"eagerbench: {stop}" + (f" (the run in {stop.target} is untouched)"
                                      if stop.folder != stop.target else "")
             + f"; `eagerbench run --resume {stop.folder}` finishes the run")
        sys.exit(130)
    _print_answer(outcome.target)
    if outcome.kept_previous:
        _say(f"eagerbench: the previous run in {outcome.target} is kept in "
             f"{outcome.kept_previous}")
    if outcome.failed:
        _say(f"eagerbench: {outcome.failed} of {len(outcome.records)} cells failed (see the table)")
        sys.exit(EXIT_CELLS_FAILED)


def _print_answer(folder: Path, all_rows: bool = False) -> None:
    """The run's answer in the terminal (its stored cells table), the warnings under it (one
    line per kind), and where the page is."""
    from eagerbench.report import answer, releases

    for table in _tables(folder):
        cells = answer.read_cells(table)
        if table.parent != folder:
            click.echo(f"\n{table.parent.relative_to(folder)}:")
        env = _stored_env(table.parent)
        click.echo(releases.terminal(cells, env) if env.get("environments")
                   else answer.terminal(cells, all_rows))
        _warn(cells)
    click.echo(f"\nthe answer: {folder / 'README.md'}; every table and plot: "
               f"{folder / 'workloads'}/")


def _stored_env(folder: Path) -> dict:
    """The ``env.json`` a report wrote beside a cells table ({} where there is none)."""
    try:
        return json.loads((folder / "env.json").read_text())
    except (OSError, ValueError):
        return {}


def _tables(folder: Path) -> list[Path]:
    """A run's cells tables: its own, or one per host type (a cluster's nodes)."""
    own = folder / "cells.csv"
    return [own] if own.is_file() else sorted(folder.glob("hosts/*/cells.csv"))


def _warn(cells) -> None:
    """One line per kind of guard a cell's measurement broke (INVALID, DISAGREES, RETRACED,
    RECOMPILED, COPIED), with how many rows and the first of them."""
    from eagerbench.report.tables import notes

    guards = ("INVALID", "DISAGREES", "RETRACED", "RECOMPILED", "COPIED")
    broken: dict[str, list[str]] = {}
    for _, r in cells.iterrows():
        for note in notes(r):
            kind = next((g for g in guards if note.startswith(g)), None)
            if kind:
                broken.setdefault(kind, []).append(
                    f"{r['workload']} {r['params']} [{r['mode']}]: {note}")
    for kind, rows in broken.items():
        more = f" and {len(rows) - 1} more row(s)" if len(rows) > 1 else ""
        click.echo(f"eagerbench: warning: {rows[0]}{more}", err=True)


def plan(*args, **kwargs):
    """``eagerbench.plan.plan`` with its errors as one-line user errors."""
    return _planned(planner.plan, *args, **kwargs)


def _planned(check, *args, **kwargs):
    """A planning step, its ``PlanError`` as a one-line user error."""
    try:
        return check(*args, **kwargs)
    except planner.PlanError as exc:
        raise UserError(str(exc)) from None


@cli.command("verify")
@click.option("--modes", "--mode", "-m", "modes", multiple=True,
              help="Modes to check (default: all installed that run on the CPU).")
@click.option("--history", type=int, default=5, show_default=True)
@click.option("--batch", type=int, default=1000, show_default=True)
@click.option("--iters", type=int, default=12, show_default=True)
@click.option("--rtol", type=float, default=1e-8, show_default=True,
              help="Largest relative difference allowed against PyTorch eager.")
@click.option("--threads", type=int, default=envinfo.default_threads, show_default="all cores")
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
    from eagerbench.execute import verify
    from eagerbench.report.pages import verify as verify_report

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
        _planned(check_data, data, [CellSpec("lbfgs", {"batch": batch}, "torch")])
    click.echo(f"eagerbench: verify {', '.join(names)} (float64, history {history}, batch "
               f"{batch}, {iters} iterations)", err=True)
    started = time.perf_counter()
    runs = verify.run(names, {"history": history, "batch": batch}, iters, threads, seed,
                      os.path.abspath(data) if data else None, timeout,
                      lambda mode, msg: click.echo(f"  {mode}: {msg.done}/{msg.total}", err=True)
                      if msg.done == msg.total else None)
    table = verify.compare(runs, rtol)
    click.echo(verify_report.printable(table))
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        verify.save(table, {"history": history, "batch": batch, "iters": iters, "seed": seed,
                            "rtol": rtol}, out_dir, time.perf_counter() - started)
        if (out_dir / RAW).exists():
            build_report(out_dir)
    if not table["pass"].all():
        bad = ", ".join(table.loc[~table["pass"], "mode"])
        click.echo(f"eagerbench: verify failed for {bad}", err=True)
        sys.exit(1)


@cli.command("list")
@click.option("--workload", "--workloads", "-w", "workloads", multiple=True,
              help="Also your own workloads: path/to/file.py[:NAME] or module:NAME.")
def list_cmd(workloads):
    """Show workloads with their parameters and defaults, and modes with their availability."""
    _register(workloads)
    builtin = builtin_workloads()
    try:
        every = all_workloads()
    except WorkloadError as exc:
        raise UserError(str(exc)) from None
    click.echo("Workloads (parameters: default sweep):")
    for w in every.values():
        where = "" if w.name in builtin else (
            f"  [{', '.join(w.frameworks) or 'any framework'}; yours: -p NAME=V]")
        click.echo(f"  {w.name:<16} {w.summary}{where}")
        for p in w.params:
            default = ",".join("auto" if v is None else str(v) for v in p.default)
            if p.full:
                default += f" (full: +{','.join(str(v) for v in p.full)})"
            flag = f"--{p.name}" if w.name in builtin else f"-p {p.name}="
            click.echo(f"      {flag:<12} {default:<28} {p.help}")
    click.echo("\nModes:")
    for m in all_modes().values():
        state = "available" if m.installed() else f"not installed ({m.install_hint})"
        if m.installed() and m.devices != ("cpu", "cuda"):
            state += f" (--device {' or '.join(m.devices)} only)"
        also = [alias for alias, name in ALIASES.items() if name == m.name]
        state += f" (also: {', '.join(also)})" if also else ""
        click.echo(f"  {m.name:<16} {m.summary:<52} {state}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Write the tables, plots and README.md here instead (the run is only read).")
def report(directory, out):
    """Rebuild tables, plots and README.md from a saved run's raw.jsonl.

    \b
    Examples:
      eagerbench report results
      eagerbench report results --out /tmp/page    # leaves results/ as it is
    """
    run_dir = Path(directory)
    if not (run_dir / RAW).is_file():
        raise UserError(f"{run_dir}: no {RAW} here (not an eagerbench run folder)")
    try:
        build_report(run_dir, Path(out) if out else None)
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    _print_answer(Path(out) if out else run_dir)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--all", "all_rows", is_flag=True,
              help="One row per mode however many (by default a large run shows its headline "
                   "matrix).")
def show(directory, all_rows):
    """Print a stored run's answer: each mode's median, eager tax and ratio over torch.

    \b
    Examples:
      eagerbench show results
      eagerbench show runs/20261206-0930 --all
    """
    run_dir = Path(directory)
    if not (run_dir / RAW).is_file() and not (run_dir / "cells.csv").is_file():
        raise UserError(f"{run_dir}: no {RAW} here (not an eagerbench run folder)")
    if not _tables(run_dir):
        try:
            build_report(run_dir)
        except ResultsError as exc:
            raise UserError(str(exc)) from None
    _print_answer(run_dir, all_rows)


@cli.command("machine")
@click.option("--seconds", type=float, default=20.0, show_default=True,
              help="How long to run the fixed loop.")
def machine_cmd(seconds):
    """How steady this host is: a fixed pure-Python loop's spread at each sample length.

    A cell whose samples take about as long as a block inherits at least this spread; a run's
    report says "host noisy" once when the probe's IQR is over 10% of its median."""
    import pandas as pd

    from eagerbench.report import flags
    from eagerbench.measure import machine

    if not (0 < seconds <= 3600):
        raise UserError(f"--seconds must be more than 0 and at most 3600 (got {seconds:g})")
    spread = machine.spread_by_block(machine.probe_units(seconds))
    rows = [{"sample length": f"{block_ms} ms", "samples": s["blocks"],
             "IQR / median": f"{s['iqr_share']:.1%}", "slowest / fastest":
             f"{s['max_over_min']:.2f}x"} for block_ms, s in spread.items()]
    click.echo(pd.DataFrame(rows).to_markdown(index=False))
    noisy = [b for b, s in spread.items() if s["iqr_share"] > flags.HOST_NOISY]
    if noisy:
        click.echo(f"eagerbench: at {', '.join(f'{b} ms' for b in noisy)} this host alone "
                   f"spreads a fixed loop over {flags.HOST_NOISY:.0%} of its median: a run's "
                   f"report says so in one line (host noisy)")


@cli.group("envs")
def envs_group():
    """The isolated environments `run --env` built (cached under ~/.cache/eagerbench/envs).

    \b
    Examples:
      eagerbench envs list
      eagerbench envs prune jax==0.4.30        # one environment, by its label
      eagerbench envs prune --all
    """


@envs_group.command("list")
def envs_list():
    """Each cached environment: its label, frameworks' releases, size and folder."""
    import pandas as pd

    from eagerbench.execute import venvs as environments

    found = environments.listing()
    if not found:
        click.echo(f"no environments cached in {environments.root()}")
        return
    rows = [{"label": e["label"], "releases": ", ".join(f"{k} {v}" for k, v in
                                                       e["versions"].items()),
             "own files": f"{e['bytes'] / 2**20:.0f} MiB", "folder": e["path"]} for e in found]
    click.echo(pd.DataFrame(rows).to_markdown(index=False))
    click.echo(f"{len(found)} environments, {sum(e['bytes'] for e in found) / 2**30:.2f} GiB "
               f"of their own; the packages' files are links into uv's cache (`uv cache clean` "
               f"frees those)")


@envs_group.command("prune")
@click.argument("labels", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every cached environment.")
def envs_prune(labels, everything):
    """Remove cached environments, by label (or key), or --all of them."""
    from eagerbench.execute import venvs as environments

    if bool(labels) == everything:
        raise UserError("name the environments to remove (eagerbench envs list), or --all")
    known = {e["label"] for e in environments.listing()} | {e["key"] for e in
                                                            environments.listing()}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise UserError(f"no cached environment {', '.join(map(repr, unknown))} "
                        f"(eagerbench envs list shows them)")
    gone = environments.prune(tuple(labels))
    click.echo(f"removed {len(gone)} environments ({sum(e['bytes'] for e in gone) / 2**20:.0f} "
               f"MiB of their own files)")


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--view", "view_name", type=click.Choice(["tax", "absolute"]), default="tax",
              show_default=True,
              help="tax: each mode's eager tax (over its twin, same processes) in run i against "
                   "run 0, which a whole run being slower cancels; absolute: each cell's time, "
                   "judged beyond its framework's shift in that run (printed once).")
@click.option("--fail-slower", "fail_slower", type=float, metavar="PCT",
              help="Exit 1 when, in the named --view, a cell is significantly slower than in "
                   "the first run by more than PCT percent: its ratio's whole 95% interval "
                   "above 1 + PCT/100; with --view absolute, also a whole framework's shift "
                   "(a CI gate).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table",
              show_default=True, help="Terminal table or Markdown.")
@click.option("--changed", is_flag=True, help="Show only cells with a significant change.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw each change with its interval into this PNG.")
def compare_cmd(runs, view_name, fail_slower, fmt, changed, plot_path):
    """Compare runs against the first: the eager tax (default) or absolute times, ratios with
    95% intervals, which changes are significant, and each run's whole shift.

    \b
    Examples:
      eagerbench compare results runs/20261128-0930
      eagerbench compare before after --view absolute --fail-slower 10 --format markdown
    """
    from eagerbench.report import compare

    if len(runs) < 2:
        raise UserError("compare needs two runs or more (the first is the baseline)")
    if fail_slower is not None and (fail_slower < 0 or not math.isfinite(fail_slower)):
        raise UserError(f"--fail-slower must be a percentage, at least 0 (got {fail_slower:g})")
    try:
        sides = [compare.load(path, f"run {i}" if len(set(runs)) < len(runs) else path)
                 for i, path in enumerate(runs)]
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    if not sides[0].levels:
        raise UserError(f"{runs[0]}: no measured cell to compare")
    shift_table = compare.shifts(sides)
    table = compare.tax_view(sides) if view_name == "tax" else \
        compare.absolute_view(sides, shift_table)
    if table.empty:
        raise UserError(f"{runs[0]}: no cell with an eager twin to compare the tax of "
                        f"(try --view absolute)")
    style = "github" if fmt == "markdown" else "simple"
    heading = (lambda text: f"\n## {text}\n") if fmt == "markdown" else \
        (lambda text: f"\n{text}:")
    names = "; ".join(f"{i}: {s.name}" for i, s in enumerate(sides))
    what = ("eager taxes (each mode over its eager twin) in run i over run 0" if view_name == "tax"
            else "times in run i over run 0, judged beyond the run's shift")
    click.echo(f"Runs ({names}); ratios are {what}, with 95% intervals over processes.")
    env = compare.environment_differences(sides)
    click.echo(heading("Environment differences"))
    click.echo(env.to_markdown(index=False, tablefmt=style) if not env.empty else
               "none (same machine, versions and settings)")
    click.echo(heading("Whole-run shift (absolute times, per framework)"))
    click.echo("\n".join(compare.display_shifts(shift_table, sides)) or "none")
    click.echo(heading("Per mode"))
    click.echo(compare.display_modes(compare.by_mode(table, len(sides)), sides)
               .to_markdown(index=False, tablefmt=style))
    shown = compare.display(table, sides, changed, view_name)
    click.echo(heading("Cells" + (" with a significant change" if changed else "")))
    click.echo(shown.to_markdown(index=False, tablefmt=style) if not shown.empty else "none")
    for note in compare.unmatched(sides):
        click.echo(f"note: {note}")
    if plot_path:
        click.echo(f"plot: {compare.plot(table, sides, Path(plot_path), view_name)}")
    if fail_slower is not None:
        _gate(compare, table, shift_table, sides, view_name, fail_slower)


def _gate(compare, table, shift_table, sides, view_name: str, percent: float) -> None:
    """Exit 1 when the named view shows a change slower than ``percent``."""
    worse = compare.regressions(table, len(sides), percent)
    whole = compare.slower_shifts(shift_table, percent) if view_name == "absolute" else \
        shift_table.iloc[0:0]
    what = "eager tax" if view_name == "tax" else "time beyond its run's shift"
    if len(whole):
        click.echo("eagerbench: whole run slower than " f"{sides[0].name} by more than "
                   f"{percent:g}%: " + "; ".join(f"{r.framework} {r.shift:.3g}x"
                                                 for r in whole.itertuples()), err=True)
    if len(worse):
        click.echo(f"eagerbench: {len(worse)} cell(s) whose {what} is significantly slower "
                   f"than in {sides[0].name} by more than {percent:g}%: "
                   + "; ".join(f"{r.workload} {r.params} [{r.mode}]"
                               for r in worse.itertuples()), err=True)
    if len(worse) or len(whole):
        sys.exit(1)
    click.echo(f"eagerbench: no {what} significantly slower by more than {percent:g}%",
               err=True)


def main(args: Optional[list[str]] = None) -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, never a traceback."""
    try:
        cli.main(args=args, prog_name="eagerbench", standalone_mode=False)
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
    except OSError as exc:   # a full disk, an unwritable file: name it, exit as for bad input
        click.echo(f"eagerbench: error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
