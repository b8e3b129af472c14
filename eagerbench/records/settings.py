"""A run's settings as its header records them: what every front end (``eagerbench run``,
``eagerbench.measure``) sets, whichever way it was started."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# Allocator settings a cell can ask for (``--allocator``), as the environment they set.
ALLOCATORS = {"default": {}, "thp": {"THP_MEM_ALLOC_ENABLE": "1"}}


@dataclass(frozen=True)
class RunSettings:
    """What a run was asked, as its header records it (with the environment, the limits and
    the plan around it): the same whichever front end started the run."""

    device: str
    dtype: str
    threads: int
    seed: int
    repeat: int
    min_time_s: float
    why: bool
    command: str                               # what started it, as typed
    gc: str = "on"
    compile_mode: str = "default"
    allocator: Optional[str] = None            # ``--allocator``; None: as the environment is
    skipped: tuple[str, ...] = ()              # modes left out, and why
    grid: str = "default"
    user_workloads: tuple[str, ...] = ()       # the user's workload files, registered again
    allocator_settings: dict[str, Any] = field(default_factory=dict)   # the allocator as measured
    environments: dict[str, Any] = field(default_factory=dict)         # ``--env``: each as built

    def to_json(self) -> dict[str, Any]:
        """The header's settings (their keys are read back by ``--resume``, ``report`` and
        ``compare``)."""
        return {"device": self.device, "dtype": self.dtype, "threads": self.threads,
                "seed": self.seed, "gc": self.gc, "compile_mode": self.compile_mode,
                "skipped": list(self.skipped), "repeat": self.repeat, "grid": self.grid,
                "min_time_s": self.min_time_s, "why": self.why,
                "allocator_choice": self.allocator or "default",
                "allocator": self.allocator_settings,
                "user_workloads": list(self.user_workloads), "command": self.command,
                **({"environments": self.environments} if self.environments else {})}
