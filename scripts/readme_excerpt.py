"""Write what `eagerbench show results` prints into README.md, between its markers, so that the
README's excerpt is generated from results/ and never typed by hand (`make report` runs it;
tests/test_readme.py checks it matches)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- show results: begin -->", "<!-- show results: end -->"


def excerpt(results: Path) -> str:
    from eagerbench.report import answer, exports

    return answer.terminal(exports.read_cells(results / "cells.csv"))


def updated(readme: str, text: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n```\n$ eagerbench show results\n{text}\n```\n{END}{tail}"


def main() -> int:
    readme = ROOT / "README.md"
    readme.write_text(updated(readme.read_text(), excerpt(ROOT / "results")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
