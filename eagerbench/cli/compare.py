"""``eagerbench compare``: runs against the first, in the eager-tax or the absolute view, with
a CI gate."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from eagerbench.cli.common import UserError
from eagerbench.records.runfile import ResultsError
from eagerbench.report.compare import Change, Shift, Side


@click.command("compare")
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
                   "(a CI gate; a framework with fewer than 5 cells has no shift: each cell "
                   "is judged on its own).")
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
        sides = [compare.load_side(path, f"run {i}" if len(set(runs)) < len(runs) else path)
                 for i, path in enumerate(runs)]
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    if not sides[0].levels:
        raise UserError(f"{runs[0]}: no measured cell to compare")
    shift_rows = compare.shifts(sides)
    changes = compare.tax_view(sides) if view_name == "tax" else \
        compare.absolute_view(sides, shift_rows)
    if not changes:
        raise UserError(f"{runs[0]}: no cell with an eager twin to compare the tax of "
                        f"(try --view absolute)")
    style = "github" if fmt == "markdown" else "simple"
    heading = (lambda text: f"\n## {text}\n") if fmt == "markdown" else \
        (lambda text: f"\n{text}:")
    names = "; ".join(f"{i}: {s.name}" for i, s in enumerate(sides))
    what = ("eager taxes (eager / compiled, the same processes) in run i over run 0; a "
            "compiled mode is slower when its tax falls" if view_name == "tax"
            else "times in run i over run 0, judged beyond the run's shift")
    click.echo(f"Runs ({names}); ratios are {what}, with 95% intervals over processes.")
    env = compare.environment_differences(sides)
    click.echo(heading("Environment differences"))
    click.echo(env.to_markdown(index=False, tablefmt=style) if not env.empty else
               "none (same machine, versions and settings)")
    click.echo(heading("Whole-run shift (absolute times, per framework)"))
    click.echo("\n".join(compare.display_shifts(shift_rows, sides)) or "none")
    click.echo(heading("Per mode"))
    click.echo(compare.display_modes(compare.by_mode(changes, len(sides)), sides)
               .to_markdown(index=False, tablefmt=style))
    shown = compare.display(changes, sides, changed, view_name)
    click.echo(heading("Cells" + (" with a significant change" if changed else "")))
    click.echo(shown.to_markdown(index=False, tablefmt=style) if not shown.empty else "none")
    for note in compare.unmatched(sides):
        click.echo(f"note: {note}")
    if plot_path:
        click.echo(f"plot: {compare.plot(changes, sides, Path(plot_path), view_name)}")
    if fail_slower is not None:
        _gate(changes, shift_rows, sides, view_name, fail_slower)


def _gate(changes: list[Change], shift_rows: list[Shift], sides: list[Side], view_name: str,
          percent: float) -> None:
    """Exit 1 when the named view shows a change slower than ``percent``."""
    from eagerbench.report import compare

    worse = compare.regressions(changes, percent)
    whole = compare.slower_shifts(shift_rows, percent) if view_name == "absolute" else []
    what = ("compiled time over its eager twin's (its eager tax falling)" if view_name == "tax"
            else "time (beyond its run's shift, where one could be estimated)")
    if whole:
        click.echo("eagerbench: whole run slower than " f"{sides[0].name} by more than "
                   f"{percent:g}%: " + "; ".join(f"{r.framework} {r.ratio.value:.3g}x"
                                                 for r in whole), err=True)
    if worse:
        click.echo(f"eagerbench: {len(worse)} cell(s) whose {what} is significantly slower "
                   f"than in {sides[0].name} by more than {percent:g}%: "
                   + "; ".join(f"{r.workload} {r.params} [{r.mode}]" for r in worse), err=True)
    if worse or whole:
        sys.exit(1)
    click.echo(f"eagerbench: no cell whose {what} is significantly slower by more than "
               f"{percent:g}%", err=True)
