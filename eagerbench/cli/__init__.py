"""The ``eagerbench`` command line: one module per command, gathered here into one group.

``main`` is the console entry point: bad input is one line on stderr and exit code 2, never a
traceback."""

from __future__ import annotations

import sys
from typing import Optional

import click

from eagerbench.cli import compare, envs, listing, machine, report, run, verify
from eagerbench.cli.common import EXIT_BAD_INPUT, UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eagerbench")
def cli():
    """Measure the eager tax: the same programs run op by op and as graphs, in every framework."""


for command in (run.run, verify.verify_cmd, listing.list_cmd, report.report, report.show,
                machine.machine_cmd, envs.envs_group, compare.compare_cmd):
    cli.add_command(command)


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
        bad_input = isinstance(exc, (click.UsageError, UserError))
        sys.exit(EXIT_BAD_INPUT if bad_input else exc.exit_code)
    except KeyboardInterrupt:
        click.echo("eagerbench: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:   # a full disk, an unwritable file: name it, exit as for bad input
        click.echo(f"eagerbench: error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)

