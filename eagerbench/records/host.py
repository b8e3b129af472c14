"""The host: the environment record saved with every run (what ran, where, with which
versions), and the fingerprint that says which machines count as one host type."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ["torch", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "pandas"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_threads() -> int:
    """The cores this process may run on (all of the machine's unless restricted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def gpus() -> list[dict[str, Any]]:
    """GPU model, driver and clocks from nvidia-smi (empty where there is none)."""
    query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    keys = query.split(",")
    if out.returncode != 0:
        return []
    return [dict(zip(keys, (v.strip() for v in line.split(","))))
            for line in out.stdout.strip().splitlines() if line.strip()]


# Environment variables that change how a framework or the C library allocates memory.
ALLOCATOR_VARIABLES = ("THP_MEM_ALLOC_ENABLE", "LD_PRELOAD", "MALLOC_ARENA_MAX",
                       "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_CONF",
                       "TF_GPU_ALLOCATOR", "PYTORCH_CUDA_ALLOC_CONF", "XLA_PYTHON_CLIENT_ALLOCATOR",
                       "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")


def transparent_hugepages() -> str | None:
    """The kernel's transparent-huge-page policy (the bracketed word of sysfs' setting)."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    return text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()


VIRTIO_BALLOON = "0x0005"        # virtio's device id of a memory balloon
VIRTIO_BALLOON_F_REPORTING = 5   # its feature bit: free page reporting


def free_page_reporting(devices: Path = Path("/sys/bus/virtio/devices")) -> bool | None:
    """Whether this VM's balloon reports freed memory to its host, which takes the pages back:
    a step that faults pages afresh then pays the host's faults too, the more the longer its
    memory lay free (jax's 1 GiB add on this project's VM: 1.9 us of kernel time a page in
    most calls, up to 15.8 us in some). False without a balloon; None where sysfs is
    unreadable (not Linux)."""
    if not Path("/sys").is_dir():
        return None
    for device in devices.glob("*") if devices.is_dir() else ():
        try:
            kind, features = (device / "device").read_text().strip(), \
                (device / "features").read_text().strip()
        except OSError:
            continue
        if kind == VIRTIO_BALLOON and features[VIRTIO_BALLOON_F_REPORTING:][:1] == "1":
            return True
    return False


def allocator_settings() -> dict[str, Any]:
    """What decides how this process allocates: the allocator variables set, the kernel's
    transparent-huge-page policy (fresh large tensors cost page faults; huge pages cut them),
    and whether freed memory goes back to a VM's host (``free_page_reporting``)."""
    return {"env": {k: os.environ[k] for k in ALLOCATOR_VARIABLES if k in os.environ},
            "transparent_hugepages": transparent_hugepages(),
            "free_page_reporting": free_page_reporting()}


CHECKOUT = Path(__file__).resolve().parents[2]   # eagerbench/records/host.py's checkout


def git_revision(root: Path = CHECKOUT) -> str | None:
    """The checkout's revision, ``+uncommitted`` where its code (``eagerbench``,
    ``workloads``) differs from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "eagerbench", "workloads"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def record(settings: dict[str, Any]) -> dict[str, Any]:
    """Everything about this machine and run that a reader needs to judge the numbers."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpus": gpus() if settings.get("device") == "cuda" else [],
        "versions": {p: v for p in PACKAGES if (v := _version(p))},
        **settings,
    }


def fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What identifies the hardware a run measured: CPU model, cores, memory, GPU and driver."""
    return {"cpu": env.get("cpu"), "cores": env.get("cpu_count"),
            "memory_gib": env.get("memory_gib"), "platform": env.get("platform"),
            "gpus": [{"name": g.get("name"), "driver": g.get("driver_version")}
                     for g in env.get("gpus") or []]}


def key(host: dict[str, Any]) -> str:
    """Which machines count as one host type: the CPU model, the GPU models and their driver.
    Ratios are only ever taken between cells measured on one host type."""
    gpus = sorted((g.get("name") or "", g.get("driver") or "") for g in host.get("gpus") or [])
    text = json.dumps({"cpu": host.get("cpu"), "gpus": gpus}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def label(host: dict[str, Any]) -> str:
    """A host type in words: 'CPU model' or 'CPU model + 4x GPU model (driver D)'."""
    gpus: dict[str, int] = {}
    for g in host.get("gpus") or []:
        name = f"{g.get('name')} (driver {g.get('driver')})"
        gpus[name] = gpus.get(name, 0) + 1
    parts = [str(host.get("cpu") or "unknown CPU")]
    parts += [f"{n}x {name}" if n > 1 else name for name, n in gpus.items()]
    return " + ".join(parts)
