"""Options shared by commands: parameter values (``--size 10,1e6``, ``-p NAME=V``), the
workloads named (a user's files registered), and the executor (``--executor slurm`` and its
options)."""

from __future__ import annotations

import functools
import math

import click

import workloads as workload_registry
from eagerbench.cli.common import UserError
from eagerbench.plan.grid import names as plan_names
from workloads import WorkloadError, all_workloads, builtin_workloads


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


def register(values) -> list[str]:
    """--workload values with the user's files and modules loaded and replaced by their names."""
    parts = plan_names(values)
    refs = [p for p in parts if workload_registry.is_reference(p)]
    try:
        loaded = dict(zip(refs, workload_registry.register(refs)))
    except WorkloadError as exc:
        raise UserError(str(exc)) from None
    return [loaded.get(p, p) for p in parts]


def extra_params(pairs, names: list[str], param_values: dict) -> dict:
    """``-p NAME=V[,V...]`` merged into the parameter options, parsed by the parameter's kind."""
    out = dict(param_values)
    known = all_workloads()
    chosen = [known[n] for n in names if n in known] or list(known.values())
    offered = list(dict.fromkeys(p.name for w in chosen for p in w.params))
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        params = [p for w in chosen for p in w.params if p.name == name]
        if not sep:
            raise UserError(f"-p {pair}: expected NAME=VALUE[,VALUE...]")
        if not params:
            raise UserError(f"-p {pair}: {name!r} is not a parameter of "
                            f"{', '.join(w.name for w in chosen)} (they take: "
                            f"{', '.join(offered) or 'none'})")
        kind, choices = params[0].kind, tuple(c for p in params for c in p.choices)
        values = [_value(f"-p {name}", kind, choices, v.strip()) for v in text.split(",")
                  if v.strip()]
        low = min((p.minimum for p in params if p.kind != "choice"), default=None)
        if low is not None and values and min(values) < low:
            raise UserError(f"-p {pair}: {name} must be at least {low:g}")
        out[name] = list(out.get(name) or []) + values
    return out


def param_options(command):
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


def executor_options(command):
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


    wrapped = functools.wraps(command)(gather)
    for option in reversed([executor] + slurm):
        wrapped = option(wrapped)
    return wrapped


def pick_executor(ctx, choice, resume_settings=None, limits=True):
    """The executor the options ask for (``--resume``: the run's own, unless options say)."""
    from eagerbench.execute import executors, slurm

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
