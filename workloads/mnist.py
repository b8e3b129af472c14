"""MNIST training images for the l-BFGS autoencoder: the real files when given, else a stand-in.

Nothing is downloaded. ``load(path, batch)`` reads the standard idx file (gzipped or not) or an
``.npz``; ``standin(batch, seed)`` draws deterministic stroke images of the same shape, value range
and sparsity, so the workload's cost is the same without the data.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

PIXELS = 784


class DataError(ValueError):
    """The data file cannot be used; the message says why in one line."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an idx file of unsigned bytes (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path) as archive:
        key = "x_train" if "x_train" in archive.files else archive.files[0]
        return archive[key]


def load(path: str | Path, batch: int) -> np.ndarray:
    """The first ``batch`` images of the file as float64 in [0, 1], shape (batch, 784)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        images = _read_npz(path) if path.suffix == ".npz" else _read_idx(path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    images = images.reshape(len(images), -1)
    if images.shape[1] != PIXELS:
        raise DataError(f"{path}: images have {images.shape[1]} pixels, expected {PIXELS}")
    if len(images) < batch:
        raise DataError(f"{path}: holds {len(images)} images, fewer than --batch {batch}")
    images = images[:batch].astype(np.float64)
    # The article's loader divides bytes by 255; an .npz may already hold [0, 1] floats.
    return images / 255.0 if images.max() > 1.0 else images


CHUNK = 5000


def standin(batch: int, seed: int) -> np.ndarray:
    """Deterministic MNIST-like images: two blurred strokes on a 28x28 canvas, mostly zeros,
    quantised to multiples of 1/255 like the real pixels. Drawn in whole chunks, so a smaller
    batch is always a prefix of a larger one (as with the real file)."""
    rng = np.random.default_rng(seed + 7919)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1)            # (784, 2)
    chunks = -(-batch // CHUNK)
    out = np.empty((chunks * CHUNK, PIXELS), dtype=np.uint8)
    for c in range(chunks):
        img = np.zeros((CHUNK, PIXELS), dtype=np.float32)
        for _ in range(2):
            p0 = rng.uniform(6, 22, size=(CHUNK, 1, 2)).astype(np.float32)
            p1 = rng.uniform(6, 22, size=(CHUNK, 1, 2)).astype(np.float32)
            seg = p1 - p0
            tt = np.clip(((grid[None] - p0) * seg).sum(-1) / ((seg * seg).sum(-1) + 1e-6), 0, 1)
            dist2 = ((grid[None] - (p0 + tt[..., None] * seg)) ** 2).sum(-1)
            img = np.maximum(img, np.exp(-dist2 / 2.0))
        img[img < 0.1] = 0.0
        out[c * CHUNK:(c + 1) * CHUNK] = np.round(img * 255.0)
    return out[:batch].astype(np.float64) / 255.0


def standin_cached(batch: int, seed: int, cache_dir: str | Path) -> np.ndarray:
    """``standin`` through an on-disk cache of bytes (generating 60k images takes seconds,
    and every lbfgs cell is a fresh process)."""
    chunks = -(-batch // CHUNK)
    path = Path(cache_dir) / f"mnist-standin-seed{seed}-{chunks * CHUNK}.npy"
    try:
        pixels = np.load(path)
    except (OSError, ValueError):
        pixels = np.round(standin(chunks * CHUNK, seed) * 255.0).astype(np.uint8)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, pixels)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs time
    return pixels[:batch].astype(np.float64) / 255.0
