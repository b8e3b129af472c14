"""The package's layers, declared once: each module's layer, and which layers a layer may
import. ``tests/test_layers.py`` walks every module with ``ast`` and fails on an import that
this table does not allow, and on any import cycle.

A module imports only from its own layer (no cycle) or from a layer it lists. Reporting reads
stored records only: it never imports the measuring core, the worker, the executors or the
runner. Modules are matched by their dotted name, the longest prefix first.
"""

from __future__ import annotations

LAYERS: dict[str, tuple[str, ...]] = {
    # layer        modules (a package name covers its modules)
    "foundation": ("eagerbench.stats", "eagerbench.envinfo", "eagerbench.procenv",
                   "eagerbench.presentation", "eagerbench.workload", "eagerbench.pricing",
                   "eagerbench.failures", "eagerbench.counters", "eagerbench.layers"),
    "records": ("eagerbench.results", "eagerbench.timer", "eagerbench.protocol",
                "eagerbench.limits", "eagerbench.store"),
    "frameworks": ("eagerbench.backends", "eagerbench.modes", "eagerbench.native",
                   "eagerbench.facts", "workloads"),
    "measuring": ("eagerbench.timing", "eagerbench.why", "eagerbench.cellsetup",
                  "eagerbench.jobs"),
    "worker": ("eagerbench.worker",),
    "executing": ("eagerbench.executors", "eagerbench.prepared", "eagerbench.plan",
                  "eagerbench.estimate", "eagerbench.environments"),
    "running": ("eagerbench.runner", "eagerbench.verify"),
    "reporting": ("eagerbench.tables", "eagerbench.flags", "eagerbench.plots", "eagerbench.compare",
                  "eagerbench.explain", "eagerbench.report", "eagerbench.views",
                  "eagerbench.article", "eagerbench.verify_report", "eagerbench.answer",
                  "eagerbench.pages", "eagerbench.runpage", "eagerbench.releases"),
    "session": ("eagerbench.session",),
    "front": ("eagerbench.cli", "eagerbench.api", "eagerbench"),
}

# Which layers each layer may import, besides its own.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "foundation": (),
    "records": ("foundation",),
    "frameworks": ("foundation", "records"),
    "measuring": ("foundation", "records", "frameworks"),
    "worker": ("foundation", "records", "frameworks", "measuring"),
    "executing": ("foundation", "records", "frameworks"),
    "running": ("foundation", "records", "frameworks", "executing"),
    "reporting": ("foundation", "records", "frameworks"),
    "session": ("foundation", "records", "frameworks", "executing", "running", "reporting"),
    "front": ("foundation", "records", "frameworks", "executing", "running", "reporting",
              "session"),
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name (``KeyError`` for one the table does not place)."""
    best = max((prefix for modules in LAYERS.values() for prefix in modules
                if module == prefix or module.startswith(prefix + ".")), key=len, default=None)
    if best is None:
        raise KeyError(f"{module} is in no layer of eagerbench.layers.LAYERS")
    return next(name for name, modules in LAYERS.items() if best in modules)


def allowed(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import module ``imported``."""
    mine, theirs = layer_of(importer), layer_of(imported)
    return mine == theirs or theirs in MAY_IMPORT[mine]
