"""What a command prints of a stored run: its answer in the terminal, the guards its cells
broke, and where its pages are."""

from __future__ import annotations

import json
from pathlib import Path

import click

from eagerbench.report import cell_table
from eagerbench.report.rows import CellRow


def print_answer(folder: Path, all_rows: bool = False) -> None:
    """The run's answer in the terminal (its stored cells table), the warnings under it (one
    line per kind), and where the page is."""
    from eagerbench.report import answer, exports, releases

    for table in stored_tables(folder):
        cells = exports.read_cells(table)
        if table.parent != folder:
            click.echo(f"\n{table.parent.relative_to(folder)}:")
        env = stored_env(table.parent)
        click.echo(releases.terminal(cells, env) if env.get("environments")
                   else answer.terminal(cells, all_rows))
        warn(cells)
    click.echo(f"\nthe answer: {folder / 'README.md'}; every table and plot: "
               f"{folder / 'workloads'}/")


def stored_env(folder: Path) -> dict:
    """The ``env.json`` a report wrote beside a cells table ({} where there is none)."""
    try:
        return json.loads((folder / "env.json").read_text())
    except (OSError, ValueError):
        return {}


def stored_tables(folder: Path) -> list[Path]:
    """A run's cells tables: its own, or one per host type (a cluster's nodes)."""
    own = folder / "cells.csv"
    return [own] if own.is_file() else sorted(folder.glob("hosts/*/cells.csv"))


def warn(cells: list[CellRow]) -> None:
    """One line per kind of guard a cell's measurement broke (INVALID, DISAGREES, RETRACED,
    RECOMPILED, COPIED), with how many rows and the first of them."""
    for rows in cell_table.guards_broken(cells).values():
        more = f" and {len(rows) - 1} more row(s)" if len(rows) > 1 else ""
        click.echo(f"eagerbench: warning: {rows[0]}{more}", err=True)
