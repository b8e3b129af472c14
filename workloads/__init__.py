"""The benchmarked programs, one module each, each defining ``WORKLOAD``; and the user's own.

A user workload is a ``Workload`` in a file (``path/to/file.py[:NAME]``), in an importable
module (``package.module:NAME``), or in an installed package's ``eagerbench.workloads`` entry
point; ``NAME`` defaults to ``WORKLOAD``. References given on the command line are kept in the
``EAGERBENCH_WORKLOADS`` environment variable, which worker processes inherit, so a worker finds
the same workloads as the runner.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import textwrap
from pathlib import Path

from eagerbench.workload import Workload

# Display order; the default suite runs them in this order too.
_ORDER = ["lbfgs", "matmul", "elementwise", "higher-order", "custom-gradient", "kfac", "convnet",
          "resnet18", "mobilenet", "vit", "gpt", "bert"]
ENV = "EAGERBENCH_WORKLOADS"
ENTRY_POINTS = "eagerbench.workloads"
SEPARATOR = "\n"   # between references in ENV (a reference holds colons)


class WorkloadError(Exception):
    """A user workload that cannot be loaded: one line naming the file (and line) and why."""


def all_workloads() -> dict[str, Workload]:
    """Every workload: the article's, then installed packages', then the user's, by name."""
    return dict(_discovered(os.environ.get(ENV, "")))


def builtin_workloads() -> dict[str, Workload]:
    """The article's workloads only (what the command line's parameter options are built from)."""
    return dict(_builtin())


@functools.cache
def _builtin() -> tuple:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for workload in (getattr(module, "WORKLOAD", None), *getattr(module, "WORKLOADS", ())):
            if isinstance(workload, Workload):
                found[workload.name] = workload
    rank = {name: i for i, name in enumerate(_ORDER)}
    return tuple(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _entry_points() -> list[tuple[str, Workload]]:
    from importlib import metadata

    found = []
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        try:
            workload = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is named, not fatal here
            raise WorkloadError(f"entry point {ep.name} ({ep.value}): "
                                f"{type(exc).__name__}: {exc}") from None
        found.append((ep.value, _checked(workload, ep.value)))
    return found


@functools.cache
def _discovered(references: str) -> tuple:
    """Scanned and imported once per process and set of references (reports look a workload
    up for every record)."""
    found = dict(_builtin())
    origin = {name: "eagerbench" for name in found}
    user = _entry_points() + [(ref, load(ref)) for ref in references.split(SEPARATOR) if ref]
    for where, workload in user:
        if workload.name in found and origin[workload.name] != where:
            raise WorkloadError(f"{where}: a workload named {workload.name!r} exists already "
                                f"({origin[workload.name]})")
        found[workload.name], origin[workload.name] = workload, where
    return tuple(found.items())


def get_workload(name: str) -> Workload:
    """A workload by name. The article's are found without loading the user's files: a worker
    measuring them must not import a framework a user's file imports."""
    builtin = dict(_builtin())
    if name in builtin:
        return builtin[name]
    workloads = all_workloads()
    if name not in workloads:
        raise KeyError(f"unknown workload {name!r} (known: {', '.join(workloads)})")
    return workloads[name]


def is_reference(text: str) -> bool:
    """Whether a --workload value names a file or module rather than a workload."""
    return text.split(":", 1)[0].endswith(".py") or ":" in text


def register(references: list[str]) -> list[str]:
    """Load the references (raising WorkloadError), make them visible to this process and to
    the workers it starts; returns their workload names."""
    absolute = [absolute_reference(ref) for ref in references]
    names = [load(ref).name for ref in absolute]
    os.environ[ENV] = SEPARATOR.join(dict.fromkeys(registered() + absolute))
    all_workloads()   # fails now, in one line, on a clash of names
    return names


def registered() -> list[str]:
    return [r for r in os.environ.get(ENV, "").split(SEPARATOR) if r]


def absolute_reference(ref: str) -> str:
    target, sep, attr = ref.partition(":")
    if target.endswith(".py"):
        return str(Path(target).resolve()) + sep + attr
    return ref


@functools.cache
def load(ref: str) -> Workload:
    """The workload a reference names (``file.py[:NAME]`` or ``module:NAME``)."""
    target, _, attr = ref.partition(":")
    attr = attr or "WORKLOAD"
    if target.endswith(".py"):
        module, where = _module_from_file(Path(target)), target
    else:
        try:
            module, where = importlib.import_module(target), target
        except SyntaxError as exc:
            raise WorkloadError(f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}") from None
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
            raise WorkloadError(f"{target}: cannot import it: {type(exc).__name__}: {exc}") \
                from None
    if not hasattr(module, attr):
        raise WorkloadError(f"{where}: no attribute {attr!r} (a workload file defines "
                            f"WORKLOAD, or name it: {target}:NAME)")
    return _checked(getattr(module, attr), f"{where}:{attr}")


def _module_from_file(path: Path):
    if not path.is_file():
        raise WorkloadError(f"{path}: no such file")
    name = "eagerbench_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise WorkloadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise WorkloadError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import
        del sys.modules[name]
        raise WorkloadError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") \
            from None
    return module


def _checked(obj, where: str) -> Workload:
    if not isinstance(obj, Workload):
        raise WorkloadError(f"{where} is a {type(obj).__name__}, not an eagerbench Workload "
                            f"(make one with eagerbench.native.workload)")
    step = getattr(obj, "step_function", None)
    if step is not None and not _returns_something(step):
        raise WorkloadError(f"{_source_of(step)}: step {step.__name__!r} returns nothing; it "
                            f"must return (st, mem)")
    return obj


def _source_of(fn) -> str:
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", "step")


def _returns_something(fn) -> bool:
    """Whether a function's own body has a ``return`` with a value: one inside a nested
    function or class is that one's (True when the source is not available: the run then
    finds out)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return True
    body = tree.body[0]
    if isinstance(body, ast.Expr) and isinstance(body.value, ast.Lambda):
        return True   # a lambda's body is its value
    return any(isinstance(n, ast.Return) and n.value is not None for n in _own_nodes(body))


def _own_nodes(function: ast.AST):
    """The nodes of a function's body, not descending into nested scopes."""
    todo = list(ast.iter_child_nodes(function))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                 ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
