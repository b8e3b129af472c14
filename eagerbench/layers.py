"""The package's layers, declared once, by package: the pipeline from the front down.

``tests/test_layers.py`` walks every module with ``ast`` and fails on an import that this table
does not allow, and on any import cycle; ``docs/development.md``'s layout table is generated
from it (``scripts/layout_table.py``) and a test fails when the two differ.

A module imports only from its own layer (no cycle) or from a layer it lists. Reporting reads
stored records only: it never imports the measuring side, the planner or the executors.
Modules are matched by their dotted name, the longest prefix first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[str, ...]     # a package covers its modules
    holds: str                    # what a reader finds there
    may_import: tuple[str, ...]   # the layers below it that it may use


LAYER_LIST: tuple[Layer, ...] = (
    Layer("front", ("eagerbench.cli", "eagerbench.api", "eagerbench"),
          "the command line (`cli/`, one module per command) and `eagerbench.measure` (`api`): "
          "options to one call of the session or of a report",
          ("session", "reporting", "executing", "planning", "measuring", "frameworks",
           "records", "foundation")),
    Layer("session", ("eagerbench.session",),
          "one run: plan, prepare (environments, start states), execute, store, report",
          ("reporting", "executing", "planning", "measuring", "frameworks", "records",
           "foundation")),
    Layer("reporting", ("eagerbench.report",),
          "stored records to typed rows (`summary`), statistics and flags, one `format` for "
          "every unit, and the views: the terminal answer, pages, figures, compare, releases",
          ("frameworks", "records", "foundation")),
    Layer("executing", ("eagerbench.execute",),
          "the runner (cells down to an executor, records up as they land), the executors "
          "(local worker processes, Slurm), start states, `--env` virtual environments, verify",
          ("planning", "measuring", "frameworks", "records", "foundation")),
    Layer("planning", ("eagerbench.plan",),
          "options to the ordered cells of a run (`grid`), and each cell's expected seconds",
          ("frameworks", "records", "foundation")),
    Layer("measuring", ("eagerbench.worker",),
          "what runs in a worker process (`python -m eagerbench.worker`): the timing loop "
          "(`loop`) and its `clock`, cell set-up, jobs, compiler counters, the machine's limits, "
          "the why phase",
          ("frameworks", "records", "foundation")),
    Layer("frameworks", ("eagerbench.frameworks", "eagerbench.native", "eagerbench.models",
                         "workloads"),
          "one backend per framework, one module per mode, the facts a record keeps, the "
          "workloads and framework-native ones",
          ("records", "foundation")),
    Layer("records", ("eagerbench.records",),
          "the typed, versioned result model, the run file, the host, the machine's limits, the "
          "run settings, the worker protocol, run folders",
          ("foundation",)),
    Layer("foundation", ("eagerbench.layers", "eagerbench.workload", "eagerbench.presentation"),
          "the workload interface and the figure and table types a workload declares",
          ()),
)

LAYERS: dict[str, tuple[str, ...]] = {layer.name: layer.packages for layer in LAYER_LIST}
MAY_IMPORT: dict[str, tuple[str, ...]] = {layer.name: layer.may_import for layer in LAYER_LIST}


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
