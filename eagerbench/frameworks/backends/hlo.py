"""The bytes an XLA program's top-level instructions read and write, from its HLO text: what
TensorFlow's XLA exposes of a fused graph (JAX's executables report it themselves)."""

from __future__ import annotations

import re
from typing import Optional

ITEM_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
              "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_ARRAY = re.compile(r"\b(" + "|".join(ITEM_BYTES) + r")\[([\d,]*)\]")
# "%name = shape op(operands), attributes": the op is the first word followed by "(" after "="
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*?)\s([a-z][\w\-]*)\(([^)]*)\)")
_FREE = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}   # move nothing
# Their bodies run a number of times the text does not say
_CONTROL = {"while", "conditional", "call", "async-start"}


def array_bytes(shape: str) -> int:
    """Bytes of every array in a shape's text (``f32[100,2]{1,0}``, or a tuple of them)."""
    total = 0
    for kind, dims in _ARRAY.findall(shape):
        count = 1
        for dim in filter(None, dims.split(",")):
            count *= int(dim)
        total += ITEM_BYTES[kind] * count
    return total


def entry_bytes(hlo: str) -> Optional[float]:
    """Bytes the entry computation's instructions read and write per call (each one's
    operands and result, as XLA's cost analysis counts a fusion: once, whatever it fuses);
    None without an entry computation, or where it loops or branches."""
    start = hlo.find("\nENTRY")
    if start < 0:
        return None
    sizes: dict[str, int] = {}
    total = 0
    for line in hlo[start:].split("\n")[1:]:
        if line.startswith("}"):
            break
        found = _INSTRUCTION.match(line)
        if not found:
            continue
        name, shape, op, operands = found.groups()
        sizes[name] = array_bytes(shape)
        if op in _CONTROL:
            return None
        if op not in _FREE:
            total += sizes[name] + sum(sizes.get(operand, 0)
                                       for operand in re.findall(r"%?([\w.\-]+)", operands))
    return float(total)
