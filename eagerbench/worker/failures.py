"""How a failure reads: one line a user can act on, whichever layer it came from."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An exception as one line a user can act on."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, MemoryError) or "out of memory" in message.lower():
        return f"out of memory: {message}" if message else "out of memory"
    return f"{type(exc).__name__}: {message}"[:500]
