"""What a mode is: a framework plus an execution style, and how to build its backend."""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:   # a mode builds its backend lazily: listing modes imports no framework
    from eagerbench.frameworks.backends.base import Backend


@dataclass(frozen=True)
class Mode:
    """An execution mode. ``make(device, dtype, threads, **options)`` imports the framework
    lazily, so listing modes never initialises a framework (that must happen inside a measured
    worker)."""

    name: str
    framework: str           # the import name of the framework package
    install_hint: str        # what to install when the framework is missing
    summary: str
    compiled: bool           # graph/compiled mode (steps are traced, first call is costly)
    baseline: str            # the mode this one's slowdown is read against in its own framework
    make: Callable[..., Backend]   # (device, dtype, threads, **options) -> its backend
    options: tuple = ()           # names of the --options this mode takes (compile_mode)
    devices: tuple = ("cpu", "cuda")
    since: str = ""               # the first framework release that has this mode ("2.0")

    def unavailable(self, version: str) -> str:
        """Why a release of the framework lacks this mode ('' when it has it)."""
        if self.since and release(version) < release(self.since):
            return (f"unavailable in {self.framework} {version} ({self.name} needs "
                    f"{self.since} or newer)")
        return ""

    def installed(self) -> bool:
        """Whether the framework can be imported here (without importing it)."""
        return importlib.util.find_spec(self.framework) is not None


def release(version: str) -> tuple[int, ...]:
    """A version's release numbers (``2.13.0+cpu`` -> (2, 13, 0)), for ordering releases;
    the worker compares them without the ``packaging`` library, which an environment may lack."""
    numbers = []
    for part in version.split("+")[0].split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):   # 2.0rc1, 0.4.14.dev: the number counts, then stop
            break
    return tuple(numbers)
