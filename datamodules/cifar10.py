"""CIFAR-10 (Krizhevsky 2009) from the official "python version" pickle batches.

``root`` is the directory that holds ``cifar-10-batches-py/`` (what torchvision's
``CIFAR10(root)`` expects, and where ``download: true`` puts it) or that folder itself.
It contains ``data_batch_1`` ... ``data_batch_5`` (10,000 training images each),
``test_batch`` (the 10,000 test images) and ``batches.meta`` (the class names).  Each
batch is a pickled dict: ``data`` a uint8 array [10000, 3072] (per row the 32x32 red
plane, then green, then blue, each row-major), ``labels`` a list of ints in 0..9,
``batch_label`` and ``filenames``.

All 60,000 images are kept in memory as one uint8 tensor [N, 3, 32, 32] (180 MB), shared
by the splits (which hold indices) and, under ``fork``, by the loader workers.

Splits: ``test`` is the official test batch; ``val`` is ``val_fraction`` of the 50,000
training images, the same share of every class, fixed by ``seed``; ``train`` is the rest.
The default 0.1 is the usual 45k/5k split of classifier papers (He et al. 2016), which
the project's classifier uses for early stopping; GANs are conventionally trained (and
their FID computed) on all 50k: set ``val_fraction: 0``.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, InMemoryImageDataset, check_fractions, stratified_split
from datamodules.encoded import CorruptImageError

__all__ = ["CIFAR10DataModule", "load_cifar_batch"]

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FILES = (*TRAIN_BATCHES, TEST_BATCH, META)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle can otherwise run any code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a CIFAR batch holds only numpy arrays)")
        return super().find_class(module, name)


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


def load_cifar_batch(path: str) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys (Python 2's pickles are read as torchvision does).

    Raises :class:`~datamodules.encoded.CorruptImageError` naming the file when it is not
    a readable pickled dict (truncated, corrupt, or another file).
    """
    try:
        with open(path, "rb") as f:
            content = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise CorruptImageError(
            f"{path}: not a readable CIFAR pickle ({type(err).__name__}: {err}); the file is probably "
            f"truncated or corrupt -- delete {os.path.dirname(path)} and download it again"
        ) from None
    if not isinstance(content, dict):
        raise CorruptImageError(f"{path}: expected a pickled dict, found {type(content).__name__}")
    return {_text(k): v for k, v in content.items()}


def _read_images(path: str) -> tuple[np.ndarray, list[int]]:
    """The ``data`` (uint8 [n, 3, 32, 32]) and ``labels`` of one batch file, checked."""
    batch = load_cifar_batch(path)
    if "data" not in batch or "labels" not in batch:
        raise CorruptImageError(f"{path}: a CIFAR-10 batch has keys 'data' and 'labels', found {sorted(batch)}")
    data, labels = batch["data"], list(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise CorruptImageError(f"{path}: 'data' must be a uint8 array [n, 3072], found {type(data).__name__} {shape}")
    if len(labels) != len(data):
        raise CorruptImageError(f"{path}: {len(data)} images but {len(labels)} labels")
    if labels and not all(0 <= int(y) < 10 for y in labels):
        raise CorruptImageError(f"{path}: labels must be in 0..9")
    return data.reshape(-1, 3, 32, 32), [int(y) for y in labels]


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 50,000 training and 10,000 test RGB images, 32x32, 10 classes.

    Args:
        root: the directory holding ``cifar-10-batches-py/`` (as for torchvision), or
            that folder itself.
        resolution: image side; 32 keeps the images as stored, other sides are resized
            (bilinear, antialiased).
        val_fraction: share of each class of the 50,000 training images held out for
            validation (fixed by ``seed``); 0 trains on all of them, as GAN papers do.
        hflip: random horizontal flips of training images (off by default: most GAN
            papers train CIFAR-10 without them; StyleGAN2-ADA's ``--mirror=1`` turns them on).
        **kwargs: the shared arguments (channels, center_crop, batch_size, num_workers,
            pin_memory, persistent_workers, drop_last, seed, download); see
            :class:`~datamodules.base.ImageDataModule`.
    """

    native_channels = 3
    num_classes = 10
    source_url = "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, 163 MB)"

    def __init__(
        self,
        root: str,
        resolution: int = 32,
        val_fraction: float = 0.1,
        hflip: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(root=root, resolution=resolution, hflip=hflip, **kwargs)
        check_fractions(val_fraction)
        self.val_fraction = val_fraction
        self.classes: list[str] = list(CLASSES)

    @property
    def folder(self) -> str:
        """``root/cifar-10-batches-py`` or, when ``root`` is that folder, ``root``."""
        nested = os.path.join(self.root, FOLDER)
        if os.path.isdir(nested):
            return nested
        is_folder = os.path.basename(os.path.normpath(self.root)) == FOLDER
        if is_folder or os.path.exists(os.path.join(self.root, TRAIN_BATCHES[0])):
            return self.root
        return nested

    def expected_files(self) -> str:
        return f"{FOLDER}/ with {', '.join(FILES)} (the CIFAR-10 python version, extracted)"

    def missing_files(self) -> list[str]:
        return [
            os.path.join(self.folder, name) for name in FILES if not os.path.isfile(os.path.join(self.folder, name))
        ]

    def download_data(self) -> None:
        import torchvision.datasets

        root = self.root
        if os.path.basename(os.path.normpath(root)) == FOLDER:
            root = os.path.dirname(os.path.normpath(root)) or "."
        # torchvision downloads, md5-checks and extracts the archive into root/cifar-10-batches-py.
        torchvision.datasets.CIFAR10(root, train=True, download=True)

    def read_arrays(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (uint8 [N, 3, 32, 32]) and labels (int64 [N]) of the named batch files, in order."""
        images, labels = [], []
        for name in names:
            data, targets = _read_images(os.path.join(self.folder, name))
            images.append(data)
            labels.extend(targets)
        return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)

    def read_splits(self) -> dict[str, Dataset]:
        # torchvision's CIFAR10 is not used to read: it md5-checks every file against the
        # official archive, so it rejects anything but the exact release (our test fixtures,
        # a re-pickled copy), and its error does not say which file is wrong.
        meta = load_cifar_batch(os.path.join(self.folder, META))
        names = meta.get("label_names")
        if not isinstance(names, (list, tuple)) or len(names) != self.num_classes:
            raise CorruptImageError(
                f"{os.path.join(self.folder, META)}: 'label_names' must list {self.num_classes} class names"
            )
        self.classes = [str(_text(n)) for n in names]
        train_images, train_labels = self.read_arrays(TRAIN_BATCHES)
        test_images, test_labels = self.read_arrays([TEST_BATCH])
        train, val = stratified_split(train_labels, (self.val_fraction,), self.seed)
        return {
            "train": InMemoryImageDataset(train_images, train_labels, train),
            "val": InMemoryImageDataset(train_images, train_labels, val),
            "test": InMemoryImageDataset(test_images, test_labels),
        }
