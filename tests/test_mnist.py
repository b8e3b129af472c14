"""The MNIST loader on small idx files written here, and the stand-in's properties."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from workloads import mnist


def idx_bytes(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">HBBIII", 0, 0x08, 3, n, h, w) + images.astype(np.uint8).tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["raw", "gz", "npz"])
def test_loads_first_batch_scaled_to_unit_interval(tmp_path, images, kind):
    if kind == "raw":
        path = tmp_path / "train-images-idx3-ubyte"
        path.write_bytes(idx_bytes(images))
    elif kind == "gz":
        path = tmp_path / "train-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(idx_bytes(images)))
    else:
        path = tmp_path / "mnist.npz"
        np.savez(path, x_train=images)
    X = mnist.load(path, 10)
    assert X.shape == (10, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(X, images[:10].reshape(10, 784) / 255.0)


def test_rejects_wrong_magic_short_files_and_too_few_images(tmp_path, images):
    bad = tmp_path / "labels"
    bad.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + b"\0" * 8)
    with pytest.raises(mnist.DataError, match="not an idx file"):
        mnist.load(bad, 1)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(images)[:-5])
    with pytest.raises(mnist.DataError, match="header says"):
        mnist.load(short, 1)
    good = tmp_path / "good"
    good.write_bytes(idx_bytes(images))
    with pytest.raises(mnist.DataError, match="fewer than --batch 60000"):
        mnist.load(good, 60000)
    with pytest.raises(mnist.DataError, match="no such file"):
        mnist.load(tmp_path / "absent", 1)


def test_standin_is_deterministic_mnist_like_and_prefix_consistent(tmp_path):
    a = mnist.standin(6000, 1)
    assert a.shape == (6000, 784)
    assert a.min() == 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(np.round(a * 255), a * 255)      # byte-valued like MNIST
    assert 0.05 < (a > 0).mean() < 0.5                              # mostly background
    np.testing.assert_array_equal(mnist.standin(700, 1), a[:700])
    assert not np.array_equal(mnist.standin(700, 2), a[:700])
    cached = mnist.standin_cached(700, 1, tmp_path)
    np.testing.assert_array_equal(cached, a[:700])
    assert list(tmp_path.glob("*.npy"))
    np.testing.assert_array_equal(mnist.standin_cached(700, 1, tmp_path), cached)
