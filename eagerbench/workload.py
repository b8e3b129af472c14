"""What a workload is: its parameters, how it builds a step on a backend, and its work count.

Workload programs live in the top-level ``workloads`` package, one module each, each defining
``WORKLOAD``. The runner only sees this interface.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class Unsupported(Exception):
    """This mode cannot run this workload (the message says why); recorded, not a failure."""


@dataclass(frozen=True)
class Param:
    """A parameter that can be swept (``--size 128,1024``): an integer, a float, or a choice."""

    name: str
    default: tuple            # the default sweep; ``None`` inside means "chosen from the others"
    help: str
    minimum: float = 1
    kind: str = "int"         # "int", "float" or "choice"
    choices: tuple = ()       # the allowed values of a "choice" parameter
    full: tuple = ()          # values the full grid (``--grid full``) adds to the default sweep

    def values(self, full: bool) -> tuple:
        """The sweep run when the user names no values: the default, or the full grid's."""
        return self.default + self.full if full else self.default


@dataclass
class Work:
    """Work done by one timed iteration, to turn times into rates."""

    flops: Optional[float] = None   # floating-point operations
    bytes: Optional[float] = None   # bytes moved to and from memory (lower bound)
    ops: Optional[int] = None       # framework ops dispatched (for time per op)
    footprint: Optional[float] = None  # bytes of data one iteration touches (cache or DRAM?)
    # What kind of arithmetic the FLOPs are, for the rate they are priced at: "matmul" (the
    # library's products of their size) or "elementwise" (a fused chain of adds in cache).
    arithmetic: str = "matmul"


@dataclass
class Task:
    """A workload built on one backend: ``st, mem = step(st, mem)`` is one timed iteration.

    ``observe(st, mem)`` runs after the timer stops and returns per-iteration values to keep
    (a loss, say). ``stopped(st)`` returns a reason when the algorithm asks to stop early.
    ``check(st, mem)`` returns values compared across modes once the run ends.
    """

    step: Callable[[dict, dict], tuple[dict, dict]]
    st: dict
    mem: dict
    observe: Callable[[dict, dict], dict] = lambda st, mem: {}
    stopped: Callable[[dict], Optional[str]] = lambda st: None
    check: Callable[[dict, dict], dict] = lambda st, mem: {}
    info: dict = field(default_factory=dict)
    # Whether ``check`` after the same steps must agree across the framework's modes (not when
    # it depends on random numbers, which compiled modes may draw differently).
    comparable: bool = True


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    params: tuple[Param, ...]
    build: Callable[[Any, dict, dict], Task]          # (backend, params, context) -> Task
    # (params, dtype, observed) -> work of one call; ``observed`` holds the means over the timed
    # samples of what ``Task.observe`` returned (the l-BFGS memory's pairs, say)
    work: Callable[[dict, str, dict], Work]
    iters: Callable[[dict], int]                      # default timed iterations for a cell
    warmup: Callable[[dict], int] = lambda p: 2       # default warm-up iterations
    resolve: Callable[[dict], dict] = lambda p: p     # fills parameters derived from others
    uses_data: bool = False
    # Some steps change after the first iteration (l-BFGS): a compiled mode must trace both
    # before the timed loop starts.
    min_warmup: int = 1
    # A parameter whose values are measured in one worker process, interleaved iteration by
    # iteration (the orders of a derivative, the optimizers on one problem): drift then hits
    # every value alike, and the sweep costs one process start, not one per value. Each value
    # is still its own row in every table.
    interleave: Optional[str] = None
    # A start state computed once per run by one mode and loaded by every cell that shares
    # ``prepare_params`` (the l-BFGS memory filled with ``history`` pairs, so that every timed
    # iteration holds the memory it is labelled with): (backend, params, context) -> named NumPy
    # arrays, which ``build`` then finds as ``context["prepared"]``.
    prepare: Optional[Callable[[Any, dict, dict], dict]] = None
    prepare_params: tuple[str, ...] = ()
    # Values of ``Task.observe`` shown as table columns (their range over the timed samples):
    # what a reader needs to trust that a row measured what its label says (l-BFGS pairs).
    shown: tuple[str, ...] = ()
    # Cells the default suite adds with non-default settings, to show what a setting changes:
    # (params, mode, options), e.g. PyTorch's CPU allocator with transparent huge pages.
    companions: tuple = ()
    # The frameworks whose modes can run it (a framework-native workload has one); empty: all.
    frameworks: tuple[str, ...] = ()
    # A native workload's step, checked before anything runs (it must return (st, mem)).
    step_function: Optional[Callable] = None
    # What its part of a report shows: generic figure and table types (``presentation``).
    views: tuple = ()
    # Its one cell in ``--quick`` (the parameters; an interleaved one as a list), or None: not
    # in the quick run (another workload of its family stands for it).
    quick: Optional[dict] = None
    # The suite a run with no workload named measures it in: "" the default one (the article's
    # workloads and the user's), "models" the model suite (``--grid models``, ``-w models``).
    suite: str = ""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def grid(self, overrides: dict[str, list], full: bool = False) -> list[dict]:
        """Every parameter combination: the overrides given, defaults (or the ``full`` grid's
        values) for the rest. The interleaved parameter, if any, stays a list: one combination
        is one worker process."""
        names = [p.name for p in self.params]
        values = [[list(overrides.get(p.name) or p.values(full))] if p.name == self.interleave
                  else list(overrides.get(p.name) or p.values(full)) for p in self.params]
        combos = [dict(zip(names, combo)) for combo in itertools.product(*values)]
        # An interleaved entry is resolved per value, by ``variants``.
        return combos if self.interleave else [self.resolve(c) for c in combos]

    def sweeps(self, params: dict) -> bool:
        """Whether this grid entry carries several values of the interleaved parameter."""
        return bool(self.interleave) and isinstance(params.get(self.interleave), list)

    def variants(self, params: dict) -> list[dict]:
        """The single-valued, resolved parameter sets one grid entry stands for."""
        if self.sweeps(params):
            return [self.resolve({**params, self.interleave: v}) for v in params[self.interleave]]
        return [params]
