"""What a mode is: a framework plus an execution style, and how to build its backend."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Mode:
    """An execution mode. ``make(device, dtype, threads, **options)`` imports the framework lazily, so
    listing modes never initialises a framework (that must happen inside a measured worker)."""

    name: str
    framework: str           # the import name of the framework package
    install_hint: str        # what to install when the framework is missing
    summary: str
    compiled: bool           # graph/compiled mode (steps are traced, first call is costly)
    baseline: str            # the mode this one's slowdown is read against in its own framework
    make: Callable[..., object]    # (device, dtype, threads, **options) -> Backend
    options: tuple = ()           # names of the --options this mode takes (compile_mode)
    devices: tuple = ("cpu", "cuda")

    def installed(self) -> bool:
        """Whether the framework can be imported here (without importing it)."""
        return importlib.util.find_spec(self.framework) is not None
