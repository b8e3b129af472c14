"""``eagerbench verify``: the same l-BFGS math in every mode, float64, against PyTorch eager
and ``torch.optim.LBFGS``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from eagerbench.cli.common import UserError, planned
from eagerbench.frameworks.modes import all_modes
from eagerbench.plan.grid import check_data
from eagerbench.plan.grid import names as plan_names
from eagerbench.records import host
from eagerbench.records.model import CellSpec
from eagerbench.records.runfile import RAW
from eagerbench.report.build import build as build_report


@click.command("verify")
@click.option("--modes", "--mode", "-m", "modes", multiple=True,
              help="Modes to check (default: all installed that run on the CPU).")
@click.option("--history", type=int, default=5, show_default=True)
@click.option("--batch", type=int, default=1000, show_default=True)
@click.option("--iters", type=int, default=12, show_default=True)
@click.option("--rtol", type=float, default=1e-8, show_default=True,
              help="Largest relative difference allowed against PyTorch eager.")
@click.option("--threads", type=int, default=host.default_threads, show_default="all cores")
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
        planned(check_data, data, [CellSpec("lbfgs", {"batch": batch}, "torch")])
    click.echo(f"eagerbench: verify {', '.join(names)} (float64, history {history}, batch "
               f"{batch}, {iters} iterations)", err=True)
    started = time.perf_counter()
    runs = verify.run(names, {"history": history, "batch": batch}, iters, threads, seed,
                      os.path.abspath(data) if data else None, timeout,
                      lambda mode, msg: click.echo(f"  {mode}: {msg.done}/{msg.total}", err=True)
                      if msg.done == msg.total else None)
    rows = verify.compare(runs, rtol)
    click.echo(verify_report.printable([row.to_json() for row in rows]))
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        verify.save(rows, {"history": history, "batch": batch, "iters": iters, "seed": seed,
                            "rtol": rtol}, out_dir, time.perf_counter() - started)
        if (out_dir / RAW).exists():
            build_report(out_dir)
    if verify.failed_modes(rows):
        click.echo(f"eagerbench: verify failed for {', '.join(verify.failed_modes(rows))}",
                   err=True)
        sys.exit(1)
