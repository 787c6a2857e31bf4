"""MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017) from the official IDX files.

``root`` is laid out as torchvision's ``MNIST(root)`` / ``FashionMNIST(root)`` expect (and
as ``download: true`` leaves it): ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``) holding
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``, as distributed); the four
files may also sit directly in ``root``.

IDX: a big-endian int32 magic number (2051 for images: unsigned bytes, 3 dimensions;
2049 for labels: unsigned bytes, 1 dimension), the dimensions as big-endian int32
(n, rows, cols / n), then the bytes.  Digits are white (255) on black (0).

``pad`` adds background (0) pixels on each side, before any resize: ``pad: 2`` gives the
32x32 images of LeNet-5 and of most GAN code that feeds MNIST to CIFAR-sized networks
(the other way there, ``resolution: 32`` with ``pad: 0``, stretches the digits instead).

Splits: ``test`` is the official 10,000 (t10k); ``val`` is ``val_fraction`` of the 60,000
training images, the same share of every class, fixed by ``seed``; ``train`` the rest.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Literal, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, InMemoryImageDataset, check_fractions, stratified_split
from datamodules.encoded import CorruptImageError

__all__ = ["MNISTDataModule", "read_idx"]

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VARIANTS = {
    "mnist": {
        "folder": "MNIST",
        "torchvision": "MNIST",
        "url": "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
        "classes": [
            "0 - zero",
            "1 - one",
            "2 - two",
            "3 - three",
            "4 - four",
            "5 - five",
            "6 - six",
            "7 - seven",
            "8 - eight",
            "9 - nine",
        ],
    },
    "fashion": {
        "folder": "FashionMNIST",
        "torchvision": "FashionMNIST",
        "url": "https://github.com/zalandoresearch/fashion-mnist (http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/)",
        "classes": [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    },
}


def read_idx(path: str, magic: int) -> np.ndarray:
    """An IDX file (plain, or gzipped when the name ends in ``.gz``) as a uint8 array.

    Raises :class:`~datamodules.encoded.CorruptImageError` naming the file when the magic
    number is not ``magic`` or the size does not match the header.
    """
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise CorruptImageError(
            f"{path}: cannot read ({type(err).__name__}: {err}); the file is truncated or corrupt"
        ) from None
    ndim = magic & 0xFF
    if len(data) < 4 + 4 * ndim:
        raise CorruptImageError(f"{path}: {len(data)} bytes is too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "images (idx3-ubyte)" if magic == IMAGES_MAGIC else "labels (idx1-ubyte)"
        raise CorruptImageError(
            f"{path}: not an IDX file of {kind}: magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x})"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    header = 4 + 4 * ndim
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise CorruptImageError(
            f"{path}: the header says {' x '.join(map(str, dims))} bytes of data ({expected} bytes in all), "
            f"the file has {len(data)}; it is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class MNISTDataModule(ImageDataModule):
    """MNIST or Fashion-MNIST: 60,000 training and 10,000 test grey 28x28 images, 10 classes.

    Args:
        root: the directory holding ``MNIST/raw/`` (``FashionMNIST/raw/``), as for
            torchvision, or the four IDX files directly.
        resolution: image side after padding; ``None`` keeps the padded size,
            ``28 + 2 * pad``; other sides are resized (bilinear, antialiased).
        pad: background pixels (value 0, i.e. -1 after scaling) added on each side
            before resizing; 2 gives LeNet-5's 32x32.
        variant: ``mnist`` (handwritten digits) or ``fashion`` (Zalando's Fashion-MNIST,
            the same format in ``FashionMNIST/raw/``).
        val_fraction: share of each class of the 60,000 training images held out for
            validation (fixed by ``seed``); 0 trains on all of them.
        **kwargs: the shared arguments (channels, center_crop, hflip, batch_size,
            num_workers, pin_memory, persistent_workers, drop_last, seed, download); see
            :class:`~datamodules.base.ImageDataModule`.
    """

    native_channels = 1
    num_classes = 10
    source_url = VARIANTS["mnist"]["url"]

    def __init__(
        self,
        root: str,
        resolution: Optional[int] = None,
        pad: int = 0,
        variant: Literal["mnist", "fashion"] = "mnist",
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        if pad < 0:
            raise ValueError(f"data.init_args.pad must be >= 0, got {pad}")
        if variant not in VARIANTS:
            raise ValueError(f"data.init_args.variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        check_fractions(val_fraction)
        super().__init__(root=root, resolution=28 + 2 * pad if resolution is None else resolution, **kwargs)
        self.pad, self.variant, self.val_fraction = pad, variant, val_fraction
        self.classes: list[str] = list(VARIANTS[variant]["classes"])
        self.source_url = VARIANTS[variant]["url"]

    @property
    def raw_folder(self) -> str:
        """``root/MNIST/raw`` (``root/FashionMNIST/raw``), where torchvision keeps the files."""
        return os.path.join(self.root, VARIANTS[self.variant]["folder"], "raw")

    def find(self, name: str) -> Optional[str]:
        """The path of IDX file ``name``: plain or ``.gz``, in the raw folder or in ``root``."""
        for folder in (self.raw_folder, self.root):
            for candidate in (name, name + ".gz"):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    return path
        return None

    def expected_files(self) -> str:
        folder = os.path.join(VARIANTS[self.variant]["folder"], "raw")
        return f"{folder}/ with {', '.join(FILES.values())} (each plain or .gz)"

    def missing_files(self) -> list[str]:
        return [os.path.join(self.raw_folder, n + "[.gz]") for n in FILES.values() if self.find(n) is None]

    def download_data(self) -> None:
        import torchvision.datasets

        # torchvision downloads and md5-checks the .gz files and unzips them in root/<MNIST|FashionMNIST>/raw.
        getattr(torchvision.datasets, VARIANTS[self.variant]["torchvision"])(self.root, train=True, download=True)

    def read_split(self, images_name: str, labels_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (uint8 [N, 1, 28, 28]) and labels (int64 [N]) of one official split, checked."""
        images_path, labels_path = self.find(images_name), self.find(labels_name)
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise CorruptImageError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
            )
        if len(labels) and labels.max() >= self.num_classes:
            raise CorruptImageError(f"{labels_path}: labels must be in 0..{self.num_classes - 1}, found {labels.max()}")
        return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))

    def read_splits(self) -> dict[str, Dataset]:
        # torchvision's MNIST is not used to read: it only reads the unzipped files in
        # root/MNIST/raw (not the .gz as distributed, nor files directly in root), and a bad
        # file fails with a bare assertion or reshape error that does not name it.
        train_images, train_labels = self.read_split(FILES["train_images"], FILES["train_labels"])
        test_images, test_labels = self.read_split(FILES["test_images"], FILES["test_labels"])
        train, val = stratified_split(train_labels, (self.val_fraction,), self.seed)
        return {
            "train": InMemoryImageDataset(train_images, train_labels, train, pad=self.pad),
            "val": InMemoryImageDataset(train_images, train_labels, val, pad=self.pad),
            "test": InMemoryImageDataset(test_images, test_labels, pad=self.pad),
        }
