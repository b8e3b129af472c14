"""``eagerbench report`` (tables, plots and pages rebuilt from a stored run) and
``eagerbench show`` (its answer in the terminal)."""

from __future__ import annotations

from pathlib import Path

import click

from eagerbench.cli.common import UserError
from eagerbench.cli.output import print_answer, stored_tables
from eagerbench.records.runfile import RAW, ResultsError
from eagerbench.report.build import build as build_report


@click.command()
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
    print_answer(Path(out) if out else run_dir)


@click.command()
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
    if not stored_tables(run_dir):
        try:
            build_report(run_dir)
        except ResultsError as exc:
            raise UserError(str(exc)) from None
    print_answer(run_dir, all_rows)
