"""torchvision beside a CPU build of torch that PyPI's torchvision was not built against.

PyPI's torchvision wheel for Linux is built against PyPI's torch (a CUDA build): its C++ ops
(``nms``, ``roi_align``: detection only) link to ``libtorch_cuda.so`` and do not load beside a
CPU torch (``pip install torch --index-url .../whl/cpu``). torchvision handles that for every
op but two: its import registers fake kernels for ``nms`` and ``qnms`` unconditionally, and
fails with ``operator torchvision::nms does not exist``. ``import_torchvision`` declares those
two schemas first, and only when the C++ ops cannot load: the models (pure PyTorch) then
import, and a call of a detection op fails with torchvision's own message. Where the ops load
(a matching torchvision), nothing is declared.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
from types import ModuleType

SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
           "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_DECLARED: list = []   # the torch.library.Library holding the schemas (kept alive)


def ops_load() -> bool:
    """Whether torchvision's C++ ops load beside this torch (without importing torchvision)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("torchvision is not installed (pip install eagerbench[models])")
    found = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    if not found:
        return False
    try:
        torch.ops.load_library(found[0])
    except OSError:
        return False
    return True


def import_torchvision() -> ModuleType:
    """``import torchvision``, its detection ops' schemas declared first where its C++ ops do
    not load (see the module's docs)."""
    if "torchvision" not in sys.modules and not _DECLARED and not ops_load():
        import torch

        library = torch.library.Library("torchvision", "DEF")
        for schema in SCHEMAS:
            library.define(schema)
        _DECLARED.append(library)
    import torchvision

    return torchvision


def before_torch_libraries() -> None:
    """Call before importing a library that imports torchvision when it is installed
    (Hugging Face transformers, timm): torchvision is then imported as above."""
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is not None:
        import_torchvision()


def ops_declared() -> bool:
    """Whether this process declared the schemas (torchvision's own ops did not load)."""
    return bool(_DECLARED)
