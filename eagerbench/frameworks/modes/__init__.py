"""Execution modes, one module each. A new mode is a new module here defining ``MODE``."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from eagerbench.frameworks.modes.base import Mode

# The order modes appear in tables and plots; modes not named here follow alphabetically.
_ORDER = ["torch", "torch-compile", "torch-cudagraph", "tf-eager", "tf-graph", "tf-xla",
          "jax", "jax-jit"]


# Names a user may type for a mode: the eager modes by what they are, like tf-eager.
ALIASES = {"torch-eager": "torch", "jax-eager": "jax"}


def canonical(name: str) -> str:
    """The mode a name stands for (an alias's mode, or the name itself)."""
    return ALIASES.get(name, name)


def all_modes() -> dict[str, Mode]:
    """Every mode defined in this package, by name, in display order."""
    return dict(_discovered())


@functools.cache
def _discovered() -> tuple:
    """The package's modules, scanned and imported once per process (reports look a mode or
    workload up for every record)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        mode = getattr(module, "MODE", None)
        if isinstance(mode, Mode):
            found[mode.name] = mode
    rank = {name: i for i, name in enumerate(_ORDER)}
    return tuple(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def get_mode(name: str) -> Mode:
    modes = all_modes()
    if name not in modes:
        raise KeyError(f"unknown mode {name!r} (known: {', '.join(modes)})")
    return modes[name]


def graph_twins() -> dict[str, str]:
    """Each eager mode's graph twin: the first compiled mode (in display order) that names it
    as its baseline (torch -> torch-compile, tf-eager -> tf-graph, jax -> jax-jit)."""
    twins: dict[str, str] = {}
    for mode in all_modes().values():
        if mode.compiled and mode.baseline and mode.baseline not in twins:
            twins[mode.baseline] = mode.name
    return twins
