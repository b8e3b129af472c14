"""``eagerbench run``: plan the cells, open the run folder, measure, print the answer (and
``--resume``)."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from pathlib import Path

import click

from eagerbench import session
from eagerbench.cli.common import (
    EXIT_CELLS_FAILED,
    GRID_OPTIONS,
    UserError,
    plan,
    say,
    session_step,
)
from eagerbench.cli.options import executor_options, param_options, pick_executor, register
from eagerbench.cli.options import extra_params as with_extra_params
from eagerbench.cli.output import print_answer
from eagerbench.plan.grid import GRIDS
from eagerbench.records import host


@click.command()
@click.option("--workload", "--workloads", "-w", "workloads", multiple=True,
              help="Workload(s), comma-separated or repeated: a name, or your own as "
                   "path/to/file.py[:NAME] or module:NAME. Default: the whole suite (only those "
                   "taking every parameter option given).")
@click.option("--param", "-p", "extra_params", multiple=True, metavar="NAME=V[,V...]",
              help="A workload parameter by name (your own workloads' parameters, or any).")
@click.option("--modes", "--mode", "-m", "modes", multiple=True,
              help="Modes, comma-separated or repeated (see `eagerbench list`). Default: all "
                   "installed.")
@param_options
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
@click.option("--threads", type=int, default=host.default_threads, show_default="all cores",
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
@executor_options
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
    workloads = register(workloads)
    param_values = with_extra_params(extra_params, workloads, param_values)
    runner = pick_executor(ctx, executor, limits=limits)
    environments = session_step(session.prepare_environments, env_specs, runner, say)
    cells, skipped = plan(workloads, modes, param_values, iters=iters, warmup=warmup,
                          repeat=repeat, threads=threads, device=device, dtype=dtype, seed=seed,
                          data=data, gc_mode=gc_mode, compile_mode=compile_mode,
                          allocator=allocator, min_time_s=min_time, why=why, grid=grid,
                          envs=environments.specs)
    for note in skipped:
        click.echo(f"eagerbench: note: {note}", err=True)
    target = Path(out) if out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    settings = session.run_settings(
        device=device, dtype=dtype, threads=threads, seed=seed, repeat=repeat,
        min_time_s=min_time, why=why, command=" ".join(["eagerbench"] + sys.argv[1:]),
        gc=gc_mode, compile_mode=compile_mode, allocator=allocator, skipped=tuple(skipped),
        grid=grid, environments=environments)
    started = time.perf_counter()
    opened = session_step(session.open_new, target, session.header_env(
        settings, cells, runner, limits, say), environments)
    opened.started = started
    click.echo(f"eagerbench: {len(cells)} cells, {threads} threads, {device}, {dtype} -> "
               f"{opened.folder}" + (f" (on {runner.name})" if runner.name != "local" else ""),
               err=True)
    _execute(cells, opened, runner, timeout, quiet)


def _quick(ctx, grid: str, repeat: int, why: bool, limits: bool) -> tuple:
    """--quick's settings: the quick grid, 3 processes, no why phase and no limits probe,
    unless the user set them."""
    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    if given("grid") and grid != "quick":
        raise UserError(f"--quick chooses its own grid; drop --grid {grid}")
    return ("quick", repeat if given("repeat") else 3, why if given("why") else False,
            limits if given("limits") else False)


def _resume(ctx, folder: Path, rerun_failed: bool, timeout: float, quiet: bool,
            executor_choice) -> None:
    """Measure the cells an interrupted run planned and did not finish, into the same file."""
    resumption = session_step(session.open_resume, folder, rerun_failed, say)
    if resumption.torn:
        say(f"eagerbench: the record being written when the run was killed is incomplete; "
             f"set aside in {resumption.torn}")
    try:
        runner = pick_executor(ctx, executor_choice, resumption.executor_settings,
                           limits=resumption.limits)
    except (UserError, ValueError, TypeError) as exc:
        resumption.opened.release()
        raise UserError(str(exc.message if isinstance(exc, UserError) else exc)) from None
    todo, planned = resumption.todo, resumption.planned
    say(f"eagerbench: resuming {folder}: {len(planned) - len(todo)} of {len(planned)} cells "
         f"already measured, {len(todo)} to go")
    _execute(todo, resumption.opened, runner, timeout, quiet)


def _execute(cells, opened, runner, timeout: float, quiet: bool) -> None:
    """Measure through the session, then print the summary and what it warns of."""
    try:
        outcome = session_step(session.execute, cells, opened, runner, timeout, not quiet, say)
    except session.Interrupted as stop:
        say(f"eagerbench: {stop}" + (f" (the run in {stop.target} is untouched)"
                                      if stop.folder != stop.target else "")
             + f"; `eagerbench run --resume {stop.folder}` finishes the run")
        sys.exit(130)
    print_answer(outcome.target)
    if outcome.kept_previous:
        say(f"eagerbench: the previous run in {outcome.target} is kept in "
             f"{outcome.kept_previous}")
    if outcome.failed:
        say(f"eagerbench: {outcome.failed} of {len(outcome.records)} cells failed (see the table)")
        sys.exit(EXIT_CELLS_FAILED)
