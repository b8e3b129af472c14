"""A synthetic run with a known truth, for the statistics' coverage tests.

Each process shifts every cell it measures by one shared log-normal offset (10% by default);
each cell has its own between-process spread, drawn log-uniformly over a ``spread``-fold range
across cells; within a process per-call times are heavy-tailed (Student t with 3 degrees of
freedom on the log scale). A cell's two modes (``a``, the compiled one, and ``b``, its eager
twin) are measured back to back in the same processes, as a worker does; a second framework
(``c``) runs in processes of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eagerbench.report import stats


@dataclass
class SimulatedRun:
    levels: dict        # (workload, params, mode) -> stats.Level, as a run's cells are keyed
    classes: dict       # cell key -> its class (its workload)
    truth: dict         # cell -> true a / b
    noise: dict         # cell -> its between-process standard deviation (log scale)
    truth_c: dict       # cell -> true c / b
    means: dict         # cell -> true (log a, log b, log c), to draw an A/A twin run

    def key(self, cell: int, mode: str) -> tuple:
        return key(cell, mode, len(set(self.classes.values())))

    def side(self, name: str):
        """This run as ``compare`` reads one: ``a`` is ``b``'s compiled twin, sharing its
        processes; ``c`` is another framework."""
        from eagerbench.report import compare

        twins = {k: (k[0], k[1], "b") for k in self.levels if k[2] == "a"}
        frameworks = {k: "c" if k[2] == "c" else "ab" for k in self.levels}
        return compare.Side(name, None, self.levels, twins, frameworks, {})


def key(cell: int, mode: str, classes: int) -> tuple:
    return (f"w{cell % classes}", f"cell={cell}", mode)


def _per_call(rng, level: float, samples: int, jitter: float) -> np.ndarray:
    return np.exp(level + jitter * rng.standard_t(3, samples))


def simulated_run(rng, cells: int = 400, processes: int = 5, offset: float = 0.10,
                  noise: float = 0.02, spread: float = 4.0, samples: int = 20,
                  jitter: float = 0.05, classes: int = 4, run_offset: float = 0.0,
                  means: dict | None = None) -> SimulatedRun:
    """``means`` (cell -> (log a, log b, log c)) fixes the true times, for A/A runs."""
    offsets = rng.normal(0, offset, processes)          # shared by a process's cells
    offsets_c = rng.normal(0, offset, processes)        # the other framework's processes
    levels, cls, truth, sd, truth_c = {}, {}, {}, {}, {}
    means = means or {}
    for cell in range(cells):
        log_a, log_b, log_c = means.get(cell) or (rng.normal(0, 1), rng.normal(0, 1),
                                                  rng.normal(0, 1))
        means[cell] = (log_a, log_b, log_c)
        sigma = noise * spread ** rng.uniform(0, 1)
        for mode, mu, shifts in (("a", log_a, offsets), ("b", log_b, offsets),
                                 ("c", log_c, offsets_c)):
            per_process = [_per_call(rng, run_offset + mu + shifts[p] + rng.normal(0, sigma),
                                     samples, jitter) for p in range(processes)]
            names = [f"{'c' if mode == 'c' else 'ab'}{p}" for p in range(processes)]
            levels[key(cell, mode, classes)] = stats.level(per_process, names)
            cls[key(cell, mode, classes)] = key(cell, mode, classes)[0]
        truth[cell], truth_c[cell], sd[cell] = np.exp(log_a - log_b), np.exp(log_c - log_b), sigma
    return SimulatedRun(levels, cls, truth, sd, truth_c, means)


def terciles(values: dict) -> dict:
    """Each key's noise tercile (0, 1, 2) by its value."""
    cut = np.quantile(list(values.values()), [1 / 3, 2 / 3])
    return {k: int(np.searchsorted(cut, v)) for k, v in values.items()}
