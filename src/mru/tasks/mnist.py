"""Sequential and permuted MNIST (DESIGN §7; Le, Jaitly & Hinton 2015, arXiv 1504.00941): the 28×28 MNIST
digits read one pixel per step, 784 steps of 1 feature scaled from 0 … 255 to [0, 1].

- ``smnist``: pixels in row-major order;
- ``psmnist``: pixels in a fixed order, ``numpy.random.default_rng(permutation_seed).permutation(784)``
  (``permutation_seed`` 0 by default; step t shows pixel ``permutation[t]``).

Data come from the four IDX files of the standard MNIST distribution (LeCun, Cortes & Burges), found in the
folder given by the option ``data_dir`` or, when it is unset, the environment variable ``MRU_DATA_DIR``;
in that folder itself or in its ``mnist/`` or ``MNIST/raw/`` subfolder (the layout torchvision leaves).
Each file may be gzipped (``.gz``). mru never downloads them. The test split is the 10,000 ``t10k`` images;
val is the last ``val_size`` (default 5,000) images of the training file, train the rest (55,000). Splits
are fixed (the seed has no effect); ``dataset(split, n)`` is the first ``n`` images of a split in file order.
Classification over 10 classes from the last step; metric accuracy, chance 0.1; length fixed at 784.

:func:`read_idx` is a strict reader of the IDX format: a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``,
``ndim`` big-endian uint32 dimensions, then the data, big-endian, whose size must match the header exactly.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .base import DataNotFoundError, Task, TaskData

__all__ = ["PermutedMNISTTask", "SequentialMNISTTask", "read_idx", "MNIST_FILES"]

#: IDX type code -> element type (big-endian on disk)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: the four files of the MNIST distribution, by role
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: the most dimensions an IDX header may declare (numpy's limit is 32 in 1.x; MNIST files have 1 or 3)
_MAX_DIMS = 32

_SUBFOLDERS = ("", "mnist", os.path.join("MNIST", "raw"))
_WHERE_TO_GET = (
    "they are the four files of the standard MNIST distribution (the MNIST database of LeCun, Cortes and "
    "Burges, also mirrored by torchvision and other libraries); mru never downloads data"
)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"IDX file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{str(path)!r} is a folder, expected an IDX file") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic; an IDX file starts with two zero bytes
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{str(path)!r} is a corrupt or truncated gzip file: {e}") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzipped or not), in native byte order.

    Raises ``ValueError`` naming the file when the magic number, type code or dimensions are invalid or the
    file size does not match its header (truncated or trailing data); ``FileNotFoundError`` when it is absent.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_idx: path must be a file path (str or os.PathLike), got {path!r}")
    path = Path(path)
    raw = _read_bytes(path)
    name = repr(str(path))
    if len(raw) < 4:
        raise ValueError(f"{name} is not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{name} is not an IDX file: magic number 0x{raw[:4].hex()} should start with two zero bytes "
            f"(0x0000<type><ndim>)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X}; expected one of {known}")
    if ndim == 0 or ndim > _MAX_DIMS:
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions; expected 1 to {_MAX_DIMS}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{name}: truncated header: {ndim} dimensions need {header} header bytes, the file has {len(raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    count = math.prod(dims)  # Python integers: a lying header cannot overflow the size check
    expected = count * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{name}: file size does not match its header ({problem}): dimensions {dims} of {dtype.name} "
            f"need {expected} data bytes after the {header}-byte header, the file holds {actual}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def _candidates(stem: str) -> list[str]:
    """File names a stem may appear under: as distributed, gzipped, and with the '.idx' spelling."""
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


class SequentialMNISTTask(Task):
    name = "smnist"
    description = "sequential MNIST: 28x28 digits pixel by pixel (784 steps), classify at the end (accuracy)"
    input_kind = "float"
    input_size = 1
    output_size = 10
    target = "classification"
    readout = "last"
    metric_name = "accuracy"
    higher_is_better = True
    default_length = 784
    supports_length_override = False
    generated = False
    permuted = False
    option_defaults = {"data_dir": None, "val_size": 5000}

    def _configure(self) -> None:
        self.val_size = self._int_option("val_size", minimum=1)
        self.permutation: np.ndarray | None = None
        self.files = self._find_files()
        self._arrays: dict[str, np.ndarray] | None = None

    def _find_files(self) -> dict[str, Path]:
        data_dir = self.options["data_dir"]
        source = "option data_dir"
        if data_dir is None or data_dir == "":
            data_dir, source = os.environ.get("MRU_DATA_DIR"), "MRU_DATA_DIR"
        expected = ", ".join(MNIST_FILES.values())
        if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError(f"{self.name}: option data_dir must be a folder path, got {data_dir!r}")
        if not data_dir:
            raise DataNotFoundError(
                f"{self.name} needs the MNIST IDX files ({expected}; optionally .gz): pass "
                f"data_dir=FOLDER or set MRU_DATA_DIR=FOLDER; {_WHERE_TO_GET}"
            )
        root = Path(os.fspath(data_dir)).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(
                f"{self.name}: MNIST folder {str(root)!r} (from {source}) does not exist or is not a folder; "
                f"it should hold {expected} (optionally .gz); {_WHERE_TO_GET}"
            )
        missing: list[str] = []
        for sub in _SUBFOLDERS:
            folder = root / sub
            found = {}
            for role, stem in MNIST_FILES.items():
                hits = [folder / c for c in _candidates(stem) if (folder / c).is_file()]
                if hits:
                    found[role] = hits[0]
            if len(found) == len(MNIST_FILES):
                return found
            if not missing:  # report what the folder itself lacks
                missing = [stem for role, stem in MNIST_FILES.items() if role not in found]
        raise DataNotFoundError(
            f"{self.name}: {str(root)!r} (from {source}) lacks the MNIST IDX file(s) "
            f"{', '.join(missing)} (optionally .gz; also looked in its mnist/ and MNIST/raw/ subfolders); "
            f"expected {expected}; {_WHERE_TO_GET}"
        )

    def _load_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            arrays = {}
            for kind in ("train", "test"):
                img_path, lab_path = self.files[f"{kind}_images"], self.files[f"{kind}_labels"]
                images, labels = read_idx(img_path), read_idx(lab_path)
                if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
                    raise ValueError(
                        f"{self.name}: {str(img_path)!r} should hold uint8 images of shape (N, 28, 28), "
                        f"holds {images.dtype.name} of shape {images.shape}"
                    )
                if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
                    raise ValueError(
                        f"{self.name}: {str(lab_path)!r} should hold {len(images)} uint8 labels (one per image "
                        f"of {str(img_path)!r}), holds {labels.dtype.name} of shape {labels.shape}"
                    )
                if labels.size and labels.max() > 9:
                    raise ValueError(f"{self.name}: {str(lab_path)!r} holds label {labels.max()}; expected 0 … 9")
                arrays[f"{kind}_images"] = images.reshape(len(images), 784)
                arrays[f"{kind}_labels"] = labels.astype(np.int64)
            n_train = len(arrays["train_images"])
            if self.val_size >= n_train:
                raise ValueError(
                    f"{self.name}: val_size={self.val_size} leaves no training images: "
                    f"{str(self.files['train_images'])!r} holds {n_train}"
                )
            self._arrays = arrays
        return self._arrays

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        a = self._load_arrays()
        if split == "test":
            return a["test_images"], a["test_labels"]
        cut = len(a["train_images"]) - self.val_size
        part = slice(None, cut) if split == "train" else slice(cut, None)
        return a["train_images"][part], a["train_labels"][part]

    @property
    def default_sizes(self) -> dict[str, int]:  # type: ignore[override]
        """The actual split sizes (55,000 / 5,000 / 10,000 for the standard files); reads the files."""
        return {split: len(self._split(split)[1]) for split in ("train", "val", "test")}

    def _load(self, split: str, n: int | None, length: int) -> TaskData:
        images, labels = self._split(split)
        if n is not None:
            if n > len(labels):
                raise ValueError(f"{self.name}: the {split} split has {len(labels)} images, asked for n={n}")
            images, labels = images[:n], labels[:n]
        if self.permutation is not None:
            images = images[:, self.permutation]
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(-1)
        return TaskData(x, torch.from_numpy(labels.copy()))

    def baseline_metric(self, length: int | None = None) -> float:
        return 0.1


class PermutedMNISTTask(SequentialMNISTTask):
    name = "psmnist"
    description = "permuted sequential MNIST: a fixed pixel permutation (784 steps), classify at the end (accuracy)"
    permuted = True
    option_defaults = {"data_dir": None, "val_size": 5000, "permutation_seed": 0}

    def _configure(self) -> None:
        super()._configure()
        self.permutation = np.random.default_rng(self._int_option("permutation_seed", minimum=0)).permutation(784)
