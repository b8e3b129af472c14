"""``eagerbench list``: the workloads with their parameters and defaults, and the modes with
their availability."""

from __future__ import annotations

import click

from eagerbench.cli.common import UserError
from eagerbench.cli.options import register
from eagerbench.frameworks.modes import ALIASES, all_modes
from workloads import WorkloadError, all_workloads, builtin_workloads


@click.command("list")
@click.option("--workload", "--workloads", "-w", "workloads", multiple=True,
              help="Also your own workloads: path/to/file.py[:NAME] or module:NAME.")
def list_cmd(workloads):
    """Show workloads with their parameters and defaults, and modes with their availability."""
    register(workloads)
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
