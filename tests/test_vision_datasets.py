"""Vision data loaders, each on small files written here in the dataset's exact on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from mirage.errors import MirageInputError
from mirage.vision.datasets import (
    cut_patches,
    load_cifar,
    load_mnist,
    load_natural_patches,
    load_omniglot,
    load_sklearn_digits,
    read_cifar_batch,
    read_idx,
    train_test_split,
)


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: 0, 0, dtype code 0x08 (ubyte), ndim, big-endian sizes, raw data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_mnist(directory, n=12, gz=True, split="train"):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    stem = "train" if split == "train" else "t10k"
    for name, arr in ((f"{stem}-images-idx3-ubyte", images), (f"{stem}-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_round_trip(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert data.images.shape == (12, 28, 28, 1) and data.images.dtype == np.float32
    np.testing.assert_allclose(data.images[..., 0] * 255.0, images, atol=1e-3)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.n_classes == 10


def test_mnist_bad_files(tmp_path):
    with pytest.raises(MirageInputError, match="no such directory"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(MirageInputError, match="missing train-images"):
        load_mnist(tmp_path)
    images, labels = _write_mnist(tmp_path, gz=False)
    # truncated data: header promises more bytes than the file holds
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(MirageInputError, match="train-images-idx3-ubyte.*IDX header says"):
        load_mnist(tmp_path)
    path.write_bytes(b"garbage bytes here")
    with pytest.raises(MirageInputError, match="bad magic"):
        read_idx(path)
    # label count that does not match the images
    path.write_bytes(_idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:5]))
    with pytest.raises(MirageInputError, match="labels for 12 images"):
        load_mnist(tmp_path)
    (tmp_path / "t.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(MirageInputError, match="corrupt gzip"):
        read_idx(tmp_path / "t.gz")


def _cifar_batch(n, label_key, seed):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"batch",
        label_key: list(rng.integers(0, 10, n)),
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def test_cifar10_batches(tmp_path):
    for i in (1, 2):
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(4, b"labels", i), protocol=2))
    (tmp_path / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, b"labels", 9), protocol=2))
    train = load_cifar(tmp_path)
    assert train.name == "cifar10" and train.images.shape == (8, 32, 32, 3)
    first = _cifar_batch(4, b"labels", 1)
    # channel-planar rows: the first 1024 bytes are the red plane of image 0
    np.testing.assert_allclose(train.images[0, :, :, 0].ravel() * 255, first[b"data"][0, :1024], atol=1e-3)
    np.testing.assert_array_equal(train.labels[:4], first[b"labels"])
    assert load_cifar(tmp_path, "test").images.shape == (3, 32, 32, 3)


def test_cifar100_fine_labels(tmp_path):
    batch = _cifar_batch(5, b"fine_labels", 3)
    batch[b"coarse_labels"] = [0] * 5
    (tmp_path / "train").write_bytes(pickle.dumps(batch))
    data = load_cifar(tmp_path)
    assert data.name == "cifar100"
    np.testing.assert_array_equal(data.labels, batch[b"fine_labels"])


def test_cifar_bad_and_hostile_pickles(tmp_path):
    with pytest.raises(MirageInputError, match="no CIFAR train batches"):
        load_cifar(tmp_path)
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(MirageInputError, match="not a CIFAR python batch"):
        load_cifar(tmp_path)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(MirageInputError, match="must be \\(n, 3072\\)"):
        read_cifar_batch(bad)

    class Hostile:
        def __reduce__(self):
            return (print, ("pwned",))

    bad.write_bytes(pickle.dumps({b"data": Hostile()}))
    with pytest.raises(MirageInputError, match="refusing to load builtins.print"):
        read_cifar_batch(bad)


def test_omniglot_png_folders(tmp_path):
    from PIL import Image

    for alphabet, chars in (("Latin", ("character01", "character02")), ("Greek", ("character01",))):
        for c, char in enumerate(chars):
            folder = tmp_path / "images_background" / alphabet / char
            folder.mkdir(parents=True)
            for k in range(3):
                pixels = np.full((105, 105), 255, np.uint8)  # white paper
                pixels[10 * (c + 1) : 10 * (c + 1) + 20, 5 * k : 5 * k + 30] = 0  # black ink
                Image.fromarray(pixels).convert("1").save(folder / f"{c:04d}_{k:02d}.png")
    data = load_omniglot(tmp_path)
    assert data.images.shape == (9, 28, 28, 1) and data.n_classes == 3
    assert data.class_names[0] == "images_background/Greek/character01"
    assert np.bincount(data.labels).tolist() == [3, 3, 3]
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert 0.02 < data.images.mean() < 0.3  # inverted: ink (a small area) is 1
    assert load_omniglot(tmp_path, max_classes=2).n_classes == 2
    (tmp_path / "images_background" / "Greek" / "character01" / "broken.png").write_bytes(b"no png")
    with pytest.raises(MirageInputError, match="broken.png: unreadable PNG"):
        load_omniglot(tmp_path)


def test_omniglot_needs_images(tmp_path):
    with pytest.raises(MirageInputError, match="no .png images"):
        load_omniglot(tmp_path)


def test_builtin_sklearn_data():
    digits = load_sklearn_digits()
    assert digits.images.shape == (1797, 8, 8, 1) and digits.n_classes == 10
    assert digits.images.max() == 1.0 and digits.images.min() == 0.0
    patches = load_natural_patches()
    assert patches.images.shape[1:] == (16, 16, 3) and patches.labels is None
    # the low-contrast filter really removes patches, and the kept ones have contrast
    all_patches = load_natural_patches(min_std=0.0)
    assert len(all_patches.images) > len(patches.images) > 1000
    assert patches.images.reshape(len(patches.images), -1).std(axis=1).min() >= 0.02


def test_cut_patches_grid_and_split():
    photo = np.arange(5 * 9 * 3, dtype=np.uint8).reshape(5, 9, 3)
    patches = cut_patches([photo], 4)
    assert patches.shape == (2, 4, 4, 3)  # 1 x 2 grid; the ragged border is dropped
    np.testing.assert_allclose(patches[1] * 255, photo[:4, 4:8], atol=1e-4)
    train, test = train_test_split(100, 0.25, seed=3)
    assert len(test) == 25 and not set(train) & set(test) and len(train) + len(test) == 100
    assert np.array_equal(train_test_split(100, 0.25, seed=3)[1], test)
    assert not np.array_equal(train_test_split(100, 0.25, seed=4)[1], test)


def test_empty_and_non_finite_data_are_refused(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(_cifar_batch(0, b"labels", 0), protocol=2))
    with pytest.raises(MirageInputError, match="data_batch_1: holds no images"):
        load_cifar(tmp_path)
    header = bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *(65536,) * 4)
    (tmp_path / "huge").write_bytes(header)  # 2**64 bytes promised; np.prod would wrap to 0 and pass
    with pytest.raises(MirageInputError, match="IDX header says shape"):
        read_idx(tmp_path / "huge")
    images = np.full((3, 4, 4), 0.25, dtype=">f8")
    images[0, 0, 0] = np.inf
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    (mnist / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 3, 4, 4) + images.tobytes()
    )
    (mnist / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 1, 2], dtype=np.uint8)))
    with pytest.raises(MirageInputError, match="1 pixel values are NaN or infinite"):
        load_mnist(mnist)


def test_too_few_images_to_train_on_are_refused(tmp_path):
    from mirage import VisionSettings
    from mirage.vision.run import MIN_IMAGES, load_data

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(_cifar_batch(MIN_IMAGES - 1, b"labels", 0), protocol=2))
    with pytest.raises(MirageInputError, match=f"holds {MIN_IMAGES - 1} images; the autoencoder experiment needs"):
        load_data("autoencoder", VisionSettings(cifar=str(tmp_path)), seed=0)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(_cifar_batch(MIN_IMAGES, b"labels", 0), protocol=2))
    assert len(load_data("autoencoder", VisionSettings(cifar=str(tmp_path)), seed=0).images) == MIN_IMAGES
