"""The package's layering (``eagerbench.layers``): no import runs back up, reporting never
imports the measuring side, and no module imports itself through a cycle."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from eagerbench import layers

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eagerbench", "workloads")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in its body (a function's lazy import
    counts: it runs as surely as one at the top)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names
                          if f"{base}.{alias.name}" in known]
            targets = submodules or [base]   # a package's names, or its modules
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


@functools.lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in _modules():
        layers.layer_of(name)


def test_no_import_runs_up_a_layer_or_across_to_one_it_may_not_use():
    wrong = [f"{a} ({layers.layer_of(a)}) imports {b} ({layers.layer_of(b)})"
             for a, deps in graph().items() for b in deps if not layers.allowed(a, b)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path
                             else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(edges):
        if state.get(start) is None and visit(start, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_reporting_never_imports_the_runner_or_the_worker():
    reporting = [m for m in graph() if layers.layer_of(m) == "reporting"]
    assert "eagerbench.report.build" in reporting and "eagerbench.report.summary" in reporting
    for module in reporting:
        for dep in graph()[module]:
            assert layers.layer_of(dep) not in ("measuring", "planning", "executing"), \
                f"{module} imports {dep}"


@pytest.mark.parametrize("importer, imported", [
    ("eagerbench.report.tables", "eagerbench.execute.runner"),   # reporting driving the runner
    ("eagerbench.records.runfile", "eagerbench.frameworks.facts"),   # the old results <-> facts
    ("eagerbench.records.limits", "eagerbench.worker.worker"),   # the old limits -> worker
    ("eagerbench.frameworks.backends.base", "eagerbench.worker.why.probes"),
    ("eagerbench.report.build", "eagerbench.worker.machine"),    # a report probing the host
])
def test_the_table_refuses_the_imports_that_made_the_old_cycles(importer, imported):
    assert not layers.allowed(importer, imported)


def test_the_walker_sees_a_lazy_import_inside_a_function(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from eagerbench.execute.runner import run_cells\n")
    assert imports_of("eagerbench.report.tables", source, {"eagerbench.execute.runner"}) == \
        {"eagerbench.execute.runner"}


def test_what_users_import_survives_every_subpackage_being_loaded():
    """``eagerbench.measure`` is the API's function: a subpackage named ``measure`` replaced it
    with a module once anything imported the subpackage (the session does)."""
    import importlib

    import eagerbench

    for package in ("records", "frameworks", "worker", "plan", "execute", "report", "cli"):
        importlib.import_module(f"eagerbench.{package}")
    importlib.import_module("eagerbench.session")
    assert callable(eagerbench.measure)
    from eagerbench import native, workload

    assert callable(native.workload) and workload.Workload.__name__ == "Workload"


def test_the_documented_layout_is_the_declared_one(tmp_path, monkeypatch):
    """docs/development.md's layout table is generated from LAYER_LIST and the modules on disk;
    a table edited by hand, or left behind by a moved module, fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("layout_table", ROOT / "scripts" /
                                                  "layout_table.py")
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    assert layout.main(["--check"]) == 0, "run python scripts/layout_table.py"
    stale = tmp_path / "development.md"
    stale.write_text(layout.DOC.read_text().replace("| records |", "| results |"))
    monkeypatch.setattr(layout, "DOC", stale)
    assert layout.main(["--check"]) == 1
