"""The README is short, its excerpt of the output is generated from results/, and every link
and command it names exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import readme_excerpt  # noqa: E402


def test_the_readme_is_short_and_its_excerpt_is_what_show_prints_for_results():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 20_000
    assert readme_excerpt.updated(readme, readme_excerpt.excerpt(ROOT / "results")) == readme


def test_the_results_page_fits_one_budget():
    assert len((ROOT / "results" / "README.md").read_bytes()) <= 15_000


def test_every_link_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_every_command_has_an_example_in_the_readme():
    from eagerbench.cli import cli

    readme = (ROOT / "README.md").read_text()
    for name in cli.commands:
        assert f"eagerbench {name}" in readme, name


def test_every_column_of_the_tables_is_described_in_the_results_format():
    doc = (ROOT / "docs" / "results-format.md").read_text()
    header = (ROOT / "results" / "cells.csv").read_text().splitlines()[0].split(",")
    suffixes = ("_half_width", "_significant", "_df", "_disagreement_p")
    for column in header:
        if column.startswith("p_") or column.endswith(suffixes):
            continue     # described by pattern: `p_<name>`, `*_half_width`, ...
        assert f"`{column}`" in doc, column
