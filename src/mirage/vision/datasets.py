"""Real image data for the vision experiments: built-in scikit-learn sets and on-disk datasets.

Nothing is downloaded. Two real datasets ship with scikit-learn (``load_digits``: 1,797 8x8
handwritten digits; ``load_sample_images``: two photographs, cut here into small patches as
natural images). When a user has them on disk, MNIST (IDX files, gzipped or not), CIFAR-10/100
(the python pickle batches) and Omniglot (PNG folders) are read too.

Every loader returns an :class:`ImageSet` with pixels scaled to [0, 1], or raises
:class:`~mirage.errors.MirageInputError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MirageInputError


@dataclass(frozen=True)
class ImageSet:
    """Images ``(n, height, width, channels)`` as float32 in [0, 1], integer labels or None."""

    name: str
    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError("images must be (n, height, width, channels)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("one label per image")

    @property
    def n_classes(self) -> int:
        """Classes in the labels (0 for unlabelled images)."""
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def subset(self, index: np.ndarray) -> "ImageSet":
        """The images (and labels) at ``index``."""
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.name, self.images[index], labels, self.class_names)


def train_test_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (train, test) index arrays, each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# ----------------------------------------------------------------------------- scikit-learn


def load_sklearn_digits() -> ImageSet:
    """The 1,797 real 8x8 handwritten digits of scikit-learn (UCI), pixels 0..16 -> [0, 1]."""
    from sklearn.datasets import load_digits  # optional heavy dependency (mirage[vision])

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]
    return ImageSet("digits", images, bunch.target.astype(np.int64), tuple(str(i) for i in range(10)))


def load_natural_patches(patch: int = 16, min_std: float = 0.02) -> ImageSet:
    """Non-overlapping ``patch`` x ``patch`` colour patches of scikit-learn's two photographs.

    Patches whose pixel standard deviation is below ``min_std`` (flat sky, blurred background)
    are dropped, as is usual for natural-patch data: every model reconstructs them, so they add
    a constant floor to thresholded metrics and no information. 16x16 rather than 8x8: the
    error of a larger patch averages over more structure, so patches differ less in difficulty
    (on 8x8 patches the thresholded metric's comparison with MSE flipped between seeds).
    """
    from sklearn.datasets import load_sample_images  # optional heavy dependency (mirage[vision])

    photos = load_sample_images().images
    return ImageSet("natural_patches", cut_patches(photos, patch, min_std), None)


def cut_patches(photos: Sequence[np.ndarray], patch: int, min_std: float = 0.0) -> np.ndarray:
    """Cut each (h, w, c) uint8 photo into a grid of non-overlapping patches scaled to [0, 1]."""
    out = []
    for photo in photos:
        arr = np.asarray(photo, dtype=np.float32) / 255.0
        h, w, c = arr.shape
        gh, gw = h // patch, w // patch
        grid = arr[: gh * patch, : gw * patch].reshape(gh, patch, gw, patch, c).swapaxes(1, 2)
        out.append(grid.reshape(gh * gw, patch, patch, c))
    patches = np.concatenate(out)
    keep = patches.reshape(len(patches), -1).std(axis=1) >= min_std
    return np.ascontiguousarray(patches[keep])


# ----------------------------------------------------------------------------- MNIST (IDX)

_IDX_DTYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not; the array has the header's shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise MirageInputError(f"corrupt gzip data: {exc}", str(path)) from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise MirageInputError("not an IDX file (bad magic number)", str(path))
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MirageInputError("truncated IDX header", str(path))
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(shape) * dtype.itemsize  # exact: np.prod would wrap around at 2**63
    if len(raw) - header != expected:
        raise MirageInputError(
            f"IDX header says shape {shape} ({expected} bytes of data) but the file holds {len(raw) - header}",
            str(path),
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def load_mnist(directory: str | Path, split: str = "train") -> ImageSet:
    """MNIST (or Fashion-MNIST, same layout) from ``train-images-idx3-ubyte[.gz]`` and labels."""
    directory = _existing_dir(directory)
    stem = {"train": "train", "test": "t10k"}.get(split)
    if stem is None:
        raise MirageInputError(f"split must be 'train' or 'test', got {split!r}", "--split")
    images_path = _find_one(directory, [f"{stem}-images-idx3-ubyte", f"{stem}-images.idx3-ubyte"])
    labels_path = _find_one(directory, [f"{stem}-labels-idx1-ubyte", f"{stem}-labels.idx1-ubyte"])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise MirageInputError(f"expected a 3-d image array, got shape {images.shape}", str(images_path))
    if images.size == 0:
        raise MirageInputError(f"holds no images (shape {images.shape})", str(images_path))
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise MirageInputError(
            f"{int((~np.isfinite(images)).sum())} pixel values are NaN or infinite", str(images_path)
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise MirageInputError(f"{labels.shape} labels for {len(images)} images", str(labels_path))
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() > 9:
        raise MirageInputError("MNIST labels must be 0..9", str(labels_path))
    return ImageSet("mnist", (images.astype(np.float32) / 255.0)[..., None], labels, tuple(str(i) for i in range(10)))


# ----------------------------------------------------------------------------- CIFAR (pickles)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a CIFAR batch needs nothing else, and a
    pickle that asks for anything else (arbitrary code) is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("builtins", "bytes"), ("__builtin__", "bytes")):
            return _empty_bytes  # an empty array's buffer is pickled as bytes()
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _empty_bytes(*args: object) -> bytes:
    """``bytes()`` for the unpickler, refusing arguments (``bytes(10**12)`` would allocate)."""
    if args:
        raise pickle.UnpicklingError("refusing bytes() with arguments")
    return b""


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch -> (images (n, 32, 32, 3) uint8, labels int64).

    CIFAR-10 batches carry ``labels``; CIFAR-100 files carry ``fine_labels`` (used here).
    """
    path = Path(path)
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means "not a CIFAR batch"
        raise MirageInputError(f"not a CIFAR python batch ({type(exc).__name__}: {exc})", str(path)) from None
    if not isinstance(batch, dict):
        raise MirageInputError("not a CIFAR python batch (expected a dict)", str(path))
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    labels = batch.get("fine_labels", batch.get("labels"))
    data = batch.get("data")
    if data is None or labels is None:
        raise MirageInputError("CIFAR batch lacks 'data' or 'labels'/'fine_labels'", str(path))
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise MirageInputError(f"CIFAR 'data' must be (n, 3072) uint8, got {data.shape} {data.dtype}", str(path))
    if len(data) == 0:
        raise MirageInputError("holds no images", str(path))
    if labels.shape != (len(data),) or labels.min(initial=0) < 0:
        raise MirageInputError(f"{labels.shape} labels for {len(data)} images", str(path))
    # rows are 1024 red, 1024 green, 1024 blue values of a 32x32 image
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar(directory: str | Path, split: str = "train") -> ImageSet:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``, ``test``)."""
    directory = _existing_dir(directory)
    if split not in ("train", "test"):
        raise MirageInputError(f"split must be 'train' or 'test', got {split!r}", "--split")
    if split == "train":
        files = sorted(directory.glob("data_batch_*")) or [p for p in [directory / "train"] if p.is_file()]
    else:
        files = [p for p in (directory / "test_batch", directory / "test") if p.is_file()][:1]
    if not files:
        raise MirageInputError(f"no CIFAR {split} batches (data_batch_*, test_batch, train or test)", str(directory))
    parts = [read_cifar_batch(f) for f in files]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    name = "cifar100" if files[0].name in ("train", "test") else "cifar10"
    return ImageSet(name, images, np.concatenate([p[1] for p in parts]))


# ----------------------------------------------------------------------------- Omniglot (PNG)


def load_omniglot(directory: str | Path, size: int = 28, max_classes: int | None = None) -> ImageSet:
    """Omniglot-style folders ``ALPHABET/CHARACTER/*.png``; one class per character folder.

    Images are resized to ``size`` x ``size`` and inverted so ink is 1 and paper 0. With
    ``max_classes`` only the first classes in sorted order are kept.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow (a matplotlib dependency), for Omniglot PNGs only

    directory = _existing_dir(directory)
    files = sorted(p for p in directory.rglob("*.png") if p.is_file())
    if not files:
        raise MirageInputError("no .png images found", str(directory))
    class_of: dict[str, list[Path]] = {}
    for f in files:
        class_of.setdefault(str(f.parent.relative_to(directory)), []).append(f)
    names = sorted(class_of)[: max_classes or None]
    if len(names) < 2:
        raise MirageInputError("need at least two character folders (classes)", str(directory))
    images, labels = [], []
    for label, name in enumerate(names):
        for f in class_of[name]:
            try:
                with Image.open(f) as img:
                    gray = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
            except (UnidentifiedImageError, OSError) as exc:
                raise MirageInputError(f"unreadable PNG ({exc})", str(f)) from None
            images.append(1.0 - np.asarray(gray, dtype=np.float32) / 255.0)
            labels.append(label)
    return ImageSet("omniglot", np.stack(images)[..., None], np.asarray(labels, dtype=np.int64), tuple(names))


# ----------------------------------------------------------------------------- helpers


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise MirageInputError("no such file", str(path))
    return path.read_bytes()


def _existing_dir(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise MirageInputError("no such directory", str(directory))
    return directory


def _find_one(directory: Path, stems: list[str]) -> Path:
    for stem in stems:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise MirageInputError(f"missing {stems[0]}[.gz]", str(directory))
