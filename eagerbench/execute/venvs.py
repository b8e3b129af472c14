"""Isolated framework environments for ``eagerbench run --env SPEC``: one virtual environment
per SPEC, built with uv, cached under ``<cache>/envs/<key>`` and reused by later runs.

A SPEC is one requirement (``jax==0.4.30``) or a requirements file. The environment holds the
framework, NumPy and what the framework needs at run time (``RUNTIME_NEEDS``), nothing else:
the worker runs there on this package's own source (a folder of links put first on its path),
and imports neither pandas, matplotlib nor click.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from packaging.requirements import InvalidRequirement, Requirement

from eagerbench.records.store import cache_root
from eagerbench.worker.process import PACKAGE_ROOT

READY = "environment.json"           # written last: a folder without it is a broken build
SOURCE = "eagerbench-source"         # the links to this package's code, inside an environment

# The distributions that provide each framework (the import name a mode declares).
FRAMEWORK_OF = {"torch": "torch", "tensorflow": "tensorflow", "tensorflow-cpu": "tensorflow",
                "tf-nightly": "tensorflow", "tensorflow-macos": "tensorflow", "jax": "jax",
                "jaxlib": "jax"}


class EnvError(Exception):
    """A SPEC that cannot be read or an environment that cannot be built: one line."""


class NoSuchRelease(EnvError):
    """The index has no release that satisfies the SPEC (nothing is measured then)."""


class IndexUnreachable(EnvError):
    """No package index answered (nothing is measured then)."""


@dataclass(frozen=True)
class EnvSpec:
    """What the user asked for: the requirement lines and a short label for tables."""

    text: str
    requirements: tuple[str, ...]
    label: str

    @property
    def key(self) -> str:
        """The cache folder's name: the requirements as asked, this Python and this machine's
        kind. Not the resolved set: finding a built environment must need no package index (a
        run resumed offline)."""
        facts = {"requirements": sorted(self.requirements), "python": platform.python_version(),
                 "machine": platform.machine(), "system": platform.system()}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def frameworks(self) -> tuple[str, ...]:
        """The frameworks (import names) the requirements name."""
        names = [FRAMEWORK_OF.get(Requirement(r).name.lower().replace("_", "-"))
                 for r in self.requirements]
        return tuple(dict.fromkeys(n for n in names if n))

    def to_json(self) -> dict:
        return {"label": self.label, "requirements": list(self.requirements)}

    @classmethod
    def from_json(cls, data: dict) -> "EnvSpec":
        return cls(data["label"], tuple(data["requirements"]), data["label"])


def parse(text: str) -> EnvSpec:
    """A SPEC from the command line: a requirements file when such a file exists, else one
    requirement. Raises ``EnvError`` with one line for anything else."""
    path = Path(text)
    if path.is_file():
        lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        lines = [line for line in lines if line]
        for line in lines:
            if line.startswith("-"):
                raise EnvError(f"--env {text}: options such as {line.split()[0]!r} "
                                        f"are not supported in a requirements file")
        label = re.sub(r"\W+", "-", path.stem).strip("-") or "env"
    else:
        lines, label = [text.strip()], re.sub(r"\s+", "", text)
    if not lines:
        raise EnvError(f"--env {text}: the requirements file names no package")
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise EnvError(f"--env {text}: {line!r} is not a requirement ({reason}); "
                           f"give e.g. jax==0.4.30 or a requirements file") from None
        if requirement.url:
            raise EnvError(f"--env {text}: a requirement from a URL is not supported")
    spec = EnvSpec(text, tuple(lines), label)
    if not spec.frameworks:
        raise EnvError(f"--env {text}: names no framework (one of "
                                f"{', '.join(sorted(FRAMEWORK_OF))})")
    return spec


@dataclass
class Environment:
    """A built environment: its folder, its interpreter and every package in it, frozen."""

    spec: EnvSpec
    path: Path
    packages: dict = field(default_factory=dict)
    build_s: float = 0.0
    notes: tuple = ()

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def source(self) -> Path:
        return self.path / SOURCE

    def versions(self) -> dict:
        """The frameworks' versions (their distributions' names, as the header records them)."""
        return {name: version for name, version in self.packages.items()
                if name in FRAMEWORK_OF or name in ("numpy",)}

    def to_json(self) -> dict:
        return {**self.spec.to_json(), "key": self.spec.key, "path": str(self.path),
                "packages": self.packages, "build_s": round(self.build_s, 1),
                "notes": list(self.notes)}


def root() -> Path:
    return Path(cache_root()) / "envs"


def uv() -> str:
    """The uv binary (the ``uv`` package installs it beside this interpreter)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise EnvError("--env needs uv: pip install uv") from None
        return found


def _run(args: list[str], what: str, spec: EnvSpec, timeout: float = 1800) -> str:
    """Run uv; its failure becomes one line that says which kind it is."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "UV_NO_PROGRESS": "1"})
    except subprocess.TimeoutExpired:
        raise EnvError(f"--env {spec.text}: {what} took over {timeout:g} s") from None
    if proc.returncode != 0:
        raise _failure(proc.stderr, what, spec)
    return proc.stdout


UNREACHABLE = re.compile(r"dns error|failed to connect|connection refused|network is "
                         r"unreachable|could not connect|error sending request|timed out",
                         re.I)
NO_RELEASE = re.compile(r"no version of|not found in the package registry|no solution found|"
                        r"no matching distribution", re.I)


def _failure(stderr: str, what: str, spec: EnvSpec) -> EnvError:
    lines = [line.strip(" ╰─▶×│") for line in stderr.splitlines() if line.strip(" ╰─▶×│")]
    telling = next((line for line in lines if NO_RELEASE.search(line) or UNREACHABLE.search(line)),
                   lines[-1] if lines else "no message")
    text = " ".join(lines)
    if UNREACHABLE.search(text):
        return IndexUnreachable(f"--env {spec.text}: no package index could be reached "
                                f"({telling[:200]})")
    if NO_RELEASE.search(text):
        detail = next((line for line in lines if "because" in line.lower()), telling)
        detail = re.sub(r"^cause:\s*", "", detail)
        return NoSuchRelease(f"--env {spec.text}: no release satisfies it ({detail[:240]})")
    return EnvError(f"--env {spec.text}: {what} failed ({telling[:240]})")


def cached(spec: EnvSpec) -> Optional[Environment]:
    """The environment already built for ``spec``, or None."""
    folder = root() / spec.key
    try:
        data = json.loads((folder / READY).read_text())
    except (OSError, ValueError):
        return None
    return Environment(spec, folder, data.get("packages", {}), data.get("build_s", 0.0),
                       tuple(data.get("notes", ())))


def check(spec: EnvSpec) -> None:
    """Resolve ``spec`` without installing it, unless it is built: an unknown release or an
    unreachable index is found here, before anything is measured."""
    if cached(spec) is not None:
        return
    args = [uv(), "pip", "compile", "--quiet", "--no-header", "--python-version",
            platform.python_version(), "-"]
    try:
        proc = subprocess.run(args, input="\n".join(spec.requirements + ("numpy",)) + "\n",
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "UV_NO_PROGRESS": "1"})
    except subprocess.TimeoutExpired:
        raise IndexUnreachable(f"--env {spec.text}: resolving took over 600 s") from None
    if proc.returncode != 0:
        raise _failure(proc.stderr, "resolving", spec)


# Per framework, a smoke test that its NumPy interop works (an old release built against
# NumPy 1 imports beside NumPy 2 with a warning, then fails at its first conversion), and what
# it needs at run time beyond its metadata (torch.compile's C++ builder imports setuptools,
# which a uv environment does not hold).
SMOKE = {"torch": "import numpy, torch; torch.from_numpy(numpy.zeros(2)).sum().item()",
         "tensorflow": "import numpy, tensorflow as tf; tf.constant(numpy.zeros(2)).numpy()",
         "jax": "import numpy, jax.numpy as jnp; numpy.asarray(jnp.asarray(numpy.zeros(2)) + 1)"}
RUNTIME_NEEDS = {"torch": ("setuptools",)}
OLD_NUMPY = re.compile(r"numpy\.core\.multiarray failed to import|compiled using NumPy 1|"
                       r"_ARRAY_API not found|numpy.dtype size changed|Numpy is not available",
                       re.I)


def build(spec: EnvSpec, say: Callable[[str], None] = lambda line: None) -> Environment:
    """The environment for ``spec``: the cached one, or one built now (in a staging folder,
    moved into place only once its frameworks import)."""
    found = cached(spec)
    if found is not None:
        link_source(found)
        return found
    if spec.key in _BROKEN:
        raise _BROKEN[spec.key]
    try:
        return _build(spec, say)
    except EnvError as exc:
        _BROKEN[spec.key] = exc      # the run's other batches in it fail at once, as it did
        raise


# Builds that failed in this process: a run tries each environment once.
_BROKEN: dict[str, "EnvError"] = {}


def _build(spec: EnvSpec, say: Callable[[str], None]) -> Environment:
    folder = root() / spec.key
    staging = folder.with_name(f"{spec.key}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    say(f"eagerbench: building the environment {spec.label} with uv (once; cached in {folder})")
    started = time.perf_counter()
    python = staging / "bin" / "python"
    notes: list[str] = []
    try:
        _run([uv(), "venv", "--quiet", "--python", sys.executable, str(staging)],
             "creating the virtual environment", spec)
        requirements = spec.requirements + ("numpy",) + tuple(
            need for framework in spec.frameworks for need in RUNTIME_NEEDS.get(framework, ()))
        _install(python, requirements, spec)
        failure = _smoke(python, spec)
        for fix in FIXES:   # what an older release needs that its metadata does not say
            if failure and fix.symptom.search(failure):
                requirements = fix.change(requirements)
                _install(python, requirements, spec)
                notes.append(fix.note)
                failure = _smoke(python, spec)
        if failure:
            raise EnvError(f"--env {spec.text}: installed, but "
                           f"{'/'.join(spec.frameworks)} does not import ({failure[:240]})")
        packages = _frozen(python, spec)
        data = {**spec.to_json(), "packages": packages, "notes": notes,
                "build_s": time.perf_counter() - started, "python": platform.python_version()}
        (staging / READY).write_text(json.dumps(data, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    env = cached(spec)
    if env is None:
        raise EnvError(f"--env {spec.text}: built, but its {READY} cannot be read back")
    link_source(env)
    return env


NO_JAXLIB = re.compile(r"jax requires jaxlib", re.I)


def _with_cpu_extra(requirement: str) -> str:
    """``jax==0.4.20`` -> ``jax[cpu]==0.4.20`` (other requirements as they are)."""
    parsed = Requirement(requirement)
    if parsed.name.lower() != "jax" or "cpu" in parsed.extras:
        return requirement
    parsed.extras = set(parsed.extras) | {"cpu"}
    return str(parsed)


@dataclass(frozen=True)
class Fix:
    """An older release's known install gap: the import error that shows it, and the change
    to the requirements that closes it."""

    symptom: re.Pattern
    change: Callable[[tuple], tuple]
    note: str


# In this order: jax[cpu] first (its jaxlib may then want NumPy 1).
FIXES = (
    Fix(NO_JAXLIB, lambda reqs: tuple(_with_cpu_extra(r) for r in reqs),
        "jax[cpu]: the release leaves jaxlib to its cpu extra"),
    Fix(OLD_NUMPY, lambda reqs: tuple("numpy<2" if r == "numpy" else r for r in reqs),
        "numpy<2: the release was built against NumPy 1"),
)


def _install(python: Path, requirements: tuple, spec: EnvSpec) -> None:
    _run([uv(), "pip", "install", "--quiet", "--python", str(python), *requirements],
         "installing", spec)


def _smoke(python: Path, spec: EnvSpec) -> str:
    """'' when every framework of ``spec`` imports in the environment and converts a NumPy
    array, else the telling line of the error."""
    code = "\n".join(SMOKE[f] for f in spec.frameworks)
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode == 0:
        return ""
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    telling = [line for line in lines if OLD_NUMPY.search(line)]
    return (telling or lines or ["exit code %d" % proc.returncode])[-1]


def _frozen(python: Path, spec: EnvSpec) -> dict:
    text = _run([uv(), "pip", "freeze", "--python", str(python)], "listing packages", spec)
    out = {}
    for line in text.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def link_source(env: Environment) -> None:
    """This package's code, as links in the environment (refreshed each run: a worker there
    runs the runner's code, never a copy of an older one)."""
    env.source.mkdir(exist_ok=True)
    for package in ("eagerbench", "workloads"):
        link = env.source / package
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(PACKAGE_ROOT) / package, target_is_directory=True)


@dataclass(frozen=True)
class EnvironmentSet:
    """The ``--env`` environments a run's cells run in, prepared before any cell does: those
    built (or found cached), and why the others failed to build (their cells fail with it)."""

    built: dict[str, Environment] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def interpreter(self, label: str) -> Environment:
        """The environment a cell's ``env`` option names (``EnvError`` where its build failed
        or it was never prepared)."""
        if label in self.failed:
            raise EnvError(self.failed[label])
        if label not in self.built:
            raise EnvError(f"{label} was not prepared before the run")
        return self.built[label]


def prepare(specs: list[EnvSpec], say: Callable[[str], None]) -> EnvironmentSet:
    """Each environment built or found in the cache; a build that fails is said and kept as
    its reason."""
    built, failed = {}, {}
    for spec in specs:
        try:
            built[spec.label] = build(spec, say)
        except EnvError as exc:
            say(f"eagerbench: {exc}; its cells are recorded as failed, the others go on")
            failed[spec.label] = str(exc)
    return EnvironmentSet(built, failed)


def specs_of(cells: list) -> list[EnvSpec]:
    """The environments a planned run's cells name (``--resume`` prepares them again)."""
    found = {}
    for cell in cells:
        label = cell.options.get("env")
        if label and label not in found:
            found[label] = EnvSpec(label, tuple(cell.options.get("env_requirements") or ()),
                                   label)
    return list(found.values())


def worker_env(env: Environment, base: dict) -> dict:
    """A worker's environment variables inside ``env``: its source links first on the path,
    and nothing of the runner's own site-packages."""
    out = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    out["PYTHONPATH"] = str(env.source)
    out["VIRTUAL_ENV"] = str(env.path)
    return out


def listing() -> list[dict]:
    """Every cached environment: its label, requirements, size and frameworks' versions."""
    out: list[dict] = []
    if not root().is_dir():
        return out
    for folder in sorted(root().iterdir()):
        ready = folder / READY
        if not ready.is_file():
            out.append({"key": folder.name, "label": "(incomplete build)", "path": str(folder),
                        "bytes": _size(folder), "versions": {}})
            continue
        data = json.loads(ready.read_text())
        packages = data.get("packages", {})
        out.append({"key": folder.name, "label": data.get("label", ""), "path": str(folder),
                    "requirements": data.get("requirements", []), "bytes": _size(folder),
                    "versions": {k: v for k, v in packages.items()
                                 if k in FRAMEWORK_OF or k == "numpy"}})
    return out


def _size(folder: Path) -> int:
    """Bytes of the files only this environment holds: uv links the rest from its cache, and
    removing the environment frees none of those (``uv cache clean`` does)."""
    own = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            own += info.st_size if info.st_nlink == 1 else 0
    return own


def prune(labels: tuple[str, ...] = ()) -> list[dict]:
    """Remove the cached environments named (by label or key), or all of them; returns those
    removed."""
    gone = [e for e in listing() if not labels or e["label"] in labels or e["key"] in labels]
    for entry in gone:
        shutil.rmtree(entry["path"], ignore_errors=True)
    return gone
