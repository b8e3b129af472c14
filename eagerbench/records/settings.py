"""A run's settings as its header records them: what every front end (``eagerbench run``,
``eagerbench.measure``) sets, whichever way it was started."""

from __future__ import annotations

# Allocator settings a cell can ask for (``--allocator``), as the environment they set.
ALLOCATORS = {"default": {}, "thp": {"THP_MEM_ALLOC_ENABLE": "1"}}
