"""``eagerbench machine``: how steady this host is."""

from __future__ import annotations

import click

from eagerbench.cli.common import UserError


@click.command("machine")
@click.option("--seconds", type=float, default=20.0, show_default=True,
              help="How long to run the fixed loop.")
def machine_cmd(seconds):
    """How steady this host is: a fixed pure-Python loop's spread at each sample length.

    A cell whose samples take about as long as a block inherits at least this spread; a run's
    report says "host noisy" once when the probe's IQR is over 10% of its median."""
    import pandas as pd

    from eagerbench.report import flags
    from eagerbench.worker import machine

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
