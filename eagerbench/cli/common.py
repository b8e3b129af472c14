"""What every command shares: exit codes, bad input as one line, and the session's and the
planner's errors turned into it."""

from __future__ import annotations

import click

from eagerbench import session
from eagerbench.plan import grid as planner

EXIT_BAD_INPUT = 2
EXIT_CELLS_FAILED = 3
# Options that shape a run's grid: --resume takes the interrupted run's own.
GRID_OPTIONS = ("workloads", "env_specs", "extra_params", "modes", "iters", "warmup", "repeat",
                "grid", "threads", "device", "dtype", "seed", "data", "gc_mode", "compile_mode",
                "allocator", "min_time", "out", "limits", "why")


class UserError(click.ClickException):
    """Bad input: reported as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT



def say(line: str) -> None:
    click.echo(line, err=True)


def session_step(call, *args):
    """A session step, its errors as one-line user errors."""
    try:
        return call(*args)
    except session.SessionError as exc:
        raise UserError(str(exc)) from None




def plan(*args, **kwargs):
    """``eagerbench.plan.plan`` with its errors as one-line user errors."""
    return planned(planner.plan, *args, **kwargs)


def planned(check, *args, **kwargs):
    """A planning step, its ``PlanError`` as a one-line user error."""
    try:
        return check(*args, **kwargs)
    except planner.PlanError as exc:
        raise UserError(str(exc)) from None
