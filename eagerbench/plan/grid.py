"""From command-line choices to the ordered list of cells a run measures.

Each phase is one function: check the workloads and their parameter values, choose the modes,
expand the grid, add the workloads' companion cells, and order everything so that the cells a
worker process can share (one framework, one workload, one repeat) come together.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from typing import Optional

from eagerbench.frameworks.modes import all_modes, canonical, get_mode, graph_twins
from eagerbench.records.model import CellSpec
from eagerbench.records.settings import ALLOCATORS
from workloads import all_workloads

# Every cell is timed for at least this long per process (steps under 1 ms in blocks), so cheap
# cells get enough samples for their spread to be measured.
MIN_TIME_S = 0.2

# The default grid covers every workload of the article at its sizes; "full" adds each
# workload's further values (``Param.full``) and its companion cells (a setting changed);
# "quick" is one small cell per workload family (``Workload.quick``).
GRIDS = ("default", "full", "quick", "models")
MODEL_SUITE = "models"   # --grid models, -w models: the workloads of that suite


class PlanError(ValueError):
    """Input that cannot be planned; the message is one line for the user."""


def names(values) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def choose_workloads(workloads, given: dict, grid: str = "default") -> list:
    """The workloads named (``models``: the model suite's), or, with none named, every one of
    the grid's suite that takes the parameters given."""
    known = all_workloads()
    named = names(workloads)
    if MODEL_SUITE in named and MODEL_SUITE not in known:
        at = named.index(MODEL_SUITE)
        named[at:at + 1] = [n for n, w in known.items() if w.suite == MODEL_SUITE]
    for name in named:
        if name not in known:
            raise PlanError(f"unknown workload {name!r} (known: {', '.join(known)}, and "
                            f"{MODEL_SUITE}: the model suite)")
    if named:
        chosen = [known[n] for n in dict.fromkeys(named)]
        for opt in given:
            if not [w for w in chosen if opt in {p.name for p in w.params}]:
                raise PlanError(f"--{opt} does not apply to {', '.join(named)}")
        return chosen
    suite = MODEL_SUITE if grid == MODEL_SUITE else ""
    chosen = [w for w in known.values()
              if w.suite == suite and set(given) <= {p.name for p in w.params}]
    if not chosen:
        raise PlanError(f"no workload takes all of --{', --'.join(given)}")
    return chosen


def frameworks_of(chosen: list) -> Optional[set]:
    """The frameworks that can run the chosen workloads (None: any, when one runs in all)."""
    if any(not w.frameworks for w in chosen):
        return None
    return {f for w in chosen for f in w.frameworks}


def check_values(chosen: list, given: dict) -> None:
    for opt, values in given.items():
        for w in chosen:
            for p in w.params:
                if p.name != opt:
                    continue
                if p.kind == "choice":
                    wrong = [v for v in values if v not in p.choices]
                    if wrong:
                        raise PlanError(f"--{opt} {wrong[0]!r} is not one of "
                                        f"{', '.join(p.choices)}")
                elif min(values) < p.minimum:
                    raise PlanError(f"--{opt} must be at least {p.minimum:g} "
                                    f"(got {min(values):g})")


def choose_modes(modes, device: str, here: bool = True,
                 frameworks: Optional[set] = None) -> tuple[list[str], list[str]]:
    """The modes named (or every installed one for the device), and notes on those skipped
    that could have run the chosen workloads (of ``frameworks``; None: any). ``here=False``:
    the modes run in environments of their own (``--env``), so whether their framework is
    installed here does not matter."""
    known = all_modes()
    named = [canonical(name) for name in names(modes)]
    if not here:
        for name in named:
            if name not in known:
                raise PlanError(f"unknown mode {name!r} (known: {', '.join(known)})")
        chosen = named or [m.name for m in known.values() if device in m.devices]
        return [m for m in chosen if device in known[m].devices], []
    for name in named:
        if name not in known:
            raise PlanError(f"unknown mode {name!r} (known: {', '.join(known)})")
        if not known[name].installed():
            raise PlanError(f"mode {name!r} needs {known[name].framework}, which is not "
                            f"installed ({known[name].install_hint})")
        if device not in known[name].devices:
            raise PlanError(f"mode {name!r} runs only with --device "
                            f"{' or '.join(known[name].devices)}")
    if named:
        return list(dict.fromkeys(named)), []
    chosen = [m.name for m in known.values() if m.installed() and device in m.devices]
    relevant = [m for m in known.values() if frameworks is None or m.framework in frameworks]
    skipped = [f"mode {m.name} skipped: {m.framework} not installed ({m.install_hint})"
               for m in relevant if not m.installed()]
    skipped += [f"mode {m.name} skipped: runs only with --device {' or '.join(m.devices)}"
                for m in relevant if m.installed() and device not in m.devices]
    if not chosen:
        raise PlanError("no framework installed: pip install torch==2.13.0 tensorflow-cpu")
    return chosen, skipped


def check_counts(iters, warmup, repeat, threads, chosen: list) -> None:
    for opt, value in (("--iters", iters), ("--repeat", repeat), ("--threads", threads)):
        if value is not None and value < 1:
            raise PlanError(f"{opt} must be at least 1 (got {value})")
    if warmup is not None and warmup < 0:
        raise PlanError(f"--warmup must be at least 0 (got {warmup})")
    for w in chosen:
        if warmup is not None and warmup < w.min_warmup:
            raise PlanError(f"--warmup must be at least {w.min_warmup} for {w.name}: every step "
                            f"function must be traced before timing starts")


def expand(chosen: list, modes: list[str], given: dict, iters, warmup, base: CellSpec,
           full: bool = False, quick: bool = False) -> list[CellSpec]:
    """One cell per workload grid entry and mode (an interleaved sweep is one cell)."""
    grid = []
    for w in chosen:
        quick_cell = {k: v if isinstance(v, list) else [v] for k, v in (w.quick or {}).items()}
        for params in w.grid(quick_cell if quick else dict(given), full):
            variants = w.variants(params)
            # Interleaved values keep their own default iteration counts (a list).
            default_iters = ([w.iters(v) for v in variants] if w.sweeps(params)
                             else w.iters(params))
            for mode in modes:
                if w.frameworks and get_mode(mode).framework not in w.frameworks:
                    continue   # a framework-native workload runs in its framework's modes
                grid.append(replace(base, workload=w.name, params=params, mode=mode,
                                    iters=iters or default_iters,
                                    warmup=(max(w.warmup(v) for v in variants) if warmup is None
                                            else warmup)))
    return grid


def companions(chosen: list, modes: list[str], grid: list[CellSpec], explicit: bool,
               full: bool = True) -> list[CellSpec]:
    """The workloads' companion cells (a setting changed), where their cell is in the grid,
    the grid is the full one and the user chose no setting of their own."""
    if explicit or not full:
        return []
    extra = []
    for w in chosen:
        for params, mode, options in w.companions:
            for cell in grid:
                if cell.workload == w.name and cell.mode == mode and all(
                        cell.params.get(k) == v for k, v in params.items()):
                    extra.append(replace(cell, options={**cell.options, **options}))
    return extra


def order(cells: list[CellSpec], repeat: int) -> list[CellSpec]:
    """Repeat by repeat (drift then hits every cell alike), and within a repeat framework by
    framework, so that one worker process per framework takes its cells; within it, workload
    by workload, with the modes of one parameter set together (measured interleaved).

    Odd repeats run the frameworks, and the modes of each parameter set, in reverse: a mode
    measured first in one process is measured last in the next, so whatever a position costs
    (a cold allocator, a warming core) falls on every mode alike. The why probes run in a
    setting's first process only: they describe the step, and the others time it."""
    frameworks = list(dict.fromkeys(get_mode(c.mode).framework for c in cells))
    settings = list(dict.fromkeys(c.options.get("allocator") for c in cells))
    envs = list(dict.fromkeys(c.options.get("env") for c in cells))
    workloads = list(dict.fromkeys(c.workload for c in cells))
    params = list(dict.fromkeys(json.dumps(c.params, sort_keys=True) for c in cells))
    position = {id(c): i for i, c in enumerate(cells)}

    def ranked(r: int) -> list[CellSpec]:
        turn = -1 if r % 2 else 1
        # Cells with another setting (a companion's allocator) need their own process: after
        # the framework's others, so that each setting is one process. Environments (--env)
        # take turns first, reversed on odd repeats (A B, B A, ...): drift of the host then
        # falls on every release alike.
        return sorted(cells, key=lambda c: (turn * envs.index(c.options.get("env")),
                                            turn * frameworks.index(get_mode(c.mode).framework),
                                            settings.index(c.options.get("allocator")),
                                            workloads.index(c.workload),
                                            params.index(json.dumps(c.params, sort_keys=True)),
                                            turn * position[id(c)]))
    return [replace(c, repeat=r, why=c.why and r == 0) for r in range(repeat) for c in ranked(r)]


def quick_choice(chosen: list, given: dict, mode_names: list[str],
                 named_modes: list) -> tuple[list, list[str]]:
    """The quick grid: each workload's one quick cell, in the eager modes and their graph
    twins (unless modes were named)."""
    if given:
        raise PlanError(f"--quick measures each workload's own small cell; drop "
                        f"--{', --'.join(given)}")
    quick = [w for w in chosen if w.quick is not None]
    if not quick:
        having = ", ".join(n for n, w in all_workloads().items() if w.quick)
        raise PlanError(f"--quick: {', '.join(w.name for w in chosen)} has no quick cell "
                        f"(those that do: {having})")
    if not named_modes:
        twins = graph_twins()
        mode_names = [m for m in mode_names if m in twins or m in twins.values()]
    return quick, mode_names


def plan(workloads, modes, param_values, *, iters, warmup, repeat, threads, device, dtype, seed,
         data, gc_mode, compile_mode="default", allocator: Optional[str] = None,
         min_time_s: float = MIN_TIME_S, why: bool = True,
         grid: str = "default", envs: tuple = ()) -> tuple[list[CellSpec], list[str]]:
    """Validate the options and expand them into the ordered list of cells to run: the one
    check every front end (``eagerbench run``, ``eagerbench.measure``) goes through."""
    if not isinstance(min_time_s, (int, float)) or min_time_s < 0 \
            or not math.isfinite(min_time_s):
        raise PlanError(f"--min-time must be a number of seconds, at least 0 (got {min_time_s})")
    given = {k: v for k, v in param_values.items() if v}
    chosen = choose_workloads(workloads, given, grid)
    check_values(chosen, given)
    mode_names, skipped = choose_modes(modes, device, here=not envs,
                                       frameworks=frameworks_of(chosen))
    check_counts(iters, warmup, repeat, threads, chosen)
    if grid not in GRIDS:
        raise PlanError(f"--grid {grid!r} is not one of {', '.join(GRIDS)}")
    full, quick = grid == "full", grid == "quick"
    if quick:
        chosen, mode_names = quick_choice(chosen, given, mode_names, names(modes))
    if allocator is not None and allocator not in ALLOCATORS:
        raise PlanError(f"--allocator {allocator!r} is not one of {', '.join(ALLOCATORS)}")
    base = CellSpec(workload="", params={}, mode="", device=device, dtype=dtype, threads=threads,
                seed=seed, gc=gc_mode, data=os.path.abspath(data) if data else None,
                min_time_s=min_time_s, why=why,
                options={"compile_mode": compile_mode, "allocator": allocator or "default"})
    if envs:
        cells = in_environments(envs, lambda names: expand(chosen, names, given, iters, warmup,
                                                           base, full, quick), mode_names)
    else:
        cells = expand(chosen, mode_names, given, iters, warmup, base, full, quick)
    if not cells:
        frameworks = ", ".join(sorted({f for w in chosen for f in w.frameworks}))
        raise PlanError(f"none of the modes chosen can run {', '.join(w.name for w in chosen)} "
                        f"(it runs in {frameworks}'s modes)")
    cells += companions(chosen, mode_names, cells, explicit=allocator is not None or bool(envs),
                        full=full)
    if device == "cuda":
        check_cuda({c.mode for c in cells})
    if data:
        check_data(data, cells)
    return order(cells, repeat), skipped


def in_environments(envs, expand_modes, mode_names: list[str]) -> list[CellSpec]:
    """The grid once per environment, in the modes of the frameworks it holds; each cell
    carries its environment among its options (a setting, like the allocator)."""
    cells = []
    for env in envs:
        here = [m for m in mode_names if get_mode(m).framework in env.frameworks]
        cells += [replace(c, options={**c.options, "env": env.label,
                                      "env_requirements": list(env.requirements)})
                  for c in expand_modes(here)]
    return cells


def check_cuda(modes: set[str]) -> None:
    """Fail fast, before any cell runs, when a requested framework sees no GPU."""
    probes = {"torch": "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)",
              "tensorflow": "import tensorflow as tf,sys; "
                            "sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)",
              "jax": "import jax,sys; sys.exit(0 if any(d.platform=='gpu' for d in "
                     "jax.devices()) else 1)"}
    known = all_modes()
    for framework in sorted({known[m].framework for m in modes}):
        code = probes.get(framework)
        if code is None:
            continue
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        rc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env).returncode
        if rc != 0:
            raise PlanError(f"--device cuda: {framework} sees no CUDA GPU on this machine")


def check_data(path: str, cells: list[CellSpec]) -> None:
    """Fail fast when ``--data`` cannot give the largest batch a cell reads."""
    from workloads import get_workload
    from workloads.mnist import DataError, load

    batches = [c.params["batch"] for c in cells
               if "batch" in c.params and get_workload(c.workload).uses_data]
    try:
        load(path, max(batches) if batches else 1)
    except DataError as exc:
        raise PlanError(f"--data {exc}") from None
