"""``eagerbench envs``: the isolated environments ``run --env`` built."""

from __future__ import annotations

import click

from eagerbench.cli.common import UserError


@click.group("envs")
def envs_group():
    """The isolated environments `run --env` built (cached under ~/.cache/eagerbench/envs).

    \b
    Examples:
      eagerbench envs list
      eagerbench envs prune jax==0.4.30        # one environment, by its label
      eagerbench envs prune --all
    """


@envs_group.command("list")
def envs_list():
    """Each cached environment: its label, frameworks' releases, size and folder."""
    import pandas as pd

    from eagerbench.execute import venvs

    found = venvs.listing()
    if not found:
        click.echo(f"no environments cached in {venvs.root()}")
        return
    rows = [{"label": e["label"], "releases": ", ".join(f"{k} {v}" for k, v in
                                                       e["versions"].items()),
             "own files": f"{e['bytes'] / 2**20:.0f} MiB", "folder": e["path"]} for e in found]
    click.echo(pd.DataFrame(rows).to_markdown(index=False))
    click.echo(f"{len(found)} environments, {sum(e['bytes'] for e in found) / 2**30:.2f} GiB "
               f"of their own; the packages' files are links into uv's cache (`uv cache clean` "
               f"frees those)")


@envs_group.command("prune")
@click.argument("labels", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every cached environment.")
def envs_prune(labels, everything):
    """Remove cached environments, by label (or key), or --all of them."""
    from eagerbench.execute import venvs

    if bool(labels) == everything:
        raise UserError("name the environments to remove (eagerbench envs list), or --all")
    known = {e["label"] for e in venvs.listing()} | {e["key"] for e in
                                                            venvs.listing()}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise UserError(f"no cached environment {', '.join(map(repr, unknown))} "
                        f"(eagerbench envs list shows them)")
    gone = venvs.prune(tuple(labels))
    click.echo(f"removed {len(gone)} environments ({sum(e['bytes'] for e in gone) / 2**20:.0f} "
               f"MiB of their own files)")
