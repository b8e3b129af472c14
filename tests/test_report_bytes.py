"""No figure moves: ``eagerbench report`` on two small stored runs (a subset of the committed
run, and of the committed run across releases) writes the same bytes as the code that measured
them did: every page, ``cells.csv``, ``why.csv``, ``env.json``, the terminal answer, and the
hashes of the plots and ``iterations.csv``. ``tests/data/golden/*/expected`` holds them, written
by the report of revision 01e53d4; a change to the report that moves a figure fails here."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import eagerbench_in_process

GOLDEN = Path(__file__).parent / "data" / "golden"


def _stored(name: str, folder: Path) -> Path:
    """The stored run ``name`` unpacked into ``folder`` (its raw.jsonl and verify.json)."""
    source = GOLDEN / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw.jsonl").write_bytes(gzip.decompress((source / "raw.jsonl.gz").read_bytes()))
    for extra in source.glob("*.json"):
        shutil.copy(extra, folder)
    return folder


def _differences(expected: Path, written: Path) -> list[str]:
    """The files whose bytes differ between the expected folder and a written report."""
    wrong = []
    for path in sorted(expected.rglob("*")):
        rel = path.relative_to(expected)
        if path.is_dir() or rel.name in ("hashes.json", "terminal.txt", "terminal_all.txt"):
            continue
        mine = written / rel
        if not mine.is_file() or mine.read_bytes() != path.read_bytes():
            wrong.append(str(rel))
    for rel, digest in json.loads((expected / "hashes.json").read_text()).items():
        mine = written / rel
        if not mine.is_file() or hashlib.sha256(mine.read_bytes()).hexdigest() != digest:
            wrong.append(rel)
    return wrong


def _terminal(text: str, folder: Path) -> str:
    return text.replace(str(folder), "RUN")


@pytest.fixture(scope="module", params=["run", "releases"])
def reported(request, tmp_path_factory):
    """(name, folder, what ``eagerbench report`` printed) of a stored run reported in place."""
    folder = _stored(request.param, tmp_path_factory.mktemp(request.param))
    done = eagerbench_in_process("report", folder)
    assert done.returncode == 0, done.stderr
    return request.param, folder, done.stdout


def test_report_in_place_writes_the_stored_bytes(reported):
    name, folder, printed = reported
    expected = GOLDEN / name / "expected"
    assert _differences(expected, folder) == []
    assert _terminal(printed, folder) == (expected / "terminal.txt").read_text()


def test_show_all_prints_the_stored_answer(reported):
    name, folder, _ = reported
    shown = eagerbench_in_process("show", folder, "--all")
    assert shown.returncode == 0, shown.stderr
    assert _terminal(shown.stdout, folder) == \
        (GOLDEN / name / "expected" / "terminal_all.txt").read_text()


def test_report_elsewhere_writes_the_same_pages_as_in_place(tmp_path):
    """``report --out DIR`` reads the run's ``verify.json`` too: its run.md keeps the verify
    section, and its wall time counts verify's (it read 23.2 min for the committed run's
    23.7 when it dropped it)."""
    folder = _stored("run", tmp_path / "run")
    out = tmp_path / "elsewhere"
    done = eagerbench_in_process("report", folder, "--out", out)
    assert done.returncode == 0, done.stderr
    assert _differences(GOLDEN / "run" / "expected", out) == []
    assert "## Verify: the same math in every mode" in (out / "run.md").read_text()
    assert not (folder / "README.md").exists(), "the run itself is only read"
