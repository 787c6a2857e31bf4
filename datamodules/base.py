"""The shared recipe of every on-disk image DataModule.

A dataset class only knows its files: it checks they are there (:meth:`ImageDataModule.
missing_files`), says what it expected (:meth:`ImageDataModule.expected_files`) and reads
its splits as *raw* items ``(uint8 image [C, H, W], label)`` (:meth:`ImageDataModule.
read_splits`).  This class does the rest, the same way for every dataset:

1. **pixels** -- :class:`ImageTransform`: channels (grey <-> RGB), center crop (to the
   short side when the image is not square and no crop is given), resize to
   ``resolution`` (bilinear with antialiasing), horizontal flip (training only), then
   x / 127.5 - 1, so every image is float32 in [-1, 1];
2. **splits** -- official splits where the dataset has them, otherwise a random split
   fixed by ``seed`` (:func:`split_indices`, or :func:`stratified_split` when there are
   labels), identical on every process and every run;
3. **loaders** -- the global batch size (``batch_size``, split evenly over the DDP
   processes: :func:`process_batch_size`), workers, pinned memory, persistent workers, ``drop_last``
   for training; batches are ``(images, labels)`` with label ``-1`` where the dataset has
   none; the training loader (:class:`~datamodules.resumable.ResumableLoader`) shuffles by
   ``(seed, epoch)``, deals the data out to DDP processes, and resumes mid-epoch;
4. **errors** -- missing data is a :class:`DatasetNotFoundError` that names the directory
   it looked in, the files it expected and where they come from, raised in
   ``prepare_data``/``setup`` (never inside a loader worker); the first training image is
   decoded and transformed in ``setup`` so a bad crop or resolution fails there too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from core.errors import UserError
from datamodules.resumable import ResumableLoader

__all__ = [
    "DatasetNotFoundError",
    "ImageDataModule",
    "ImageTransform",
    "InMemoryImageDataset",
    "TensorSplitLoaders",
    "TransformedDataset",
    "check_fractions",
    "process_batch_size",
    "split_indices",
    "stratified_split",
]

SPLITS = ("train", "val", "test")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is not where the config says; the message says what to put there."""


def process_batch_size(batch_size: int, world_size: int, key: str = "data.init_args.batch_size") -> int:
    """Each process's share of the global batch ``batch_size`` split over ``world_size`` processes.

    ``batch_size`` in a config is the global batch, a paper's minibatch: a run on 8 GPUs sees
    the same images per optimiser step as a run on one, so learning rates, ``train/kimg``
    and the EMA half-life (``lightning_modules/adversarial.py``) mean the same on both.
    A batch that does not divide evenly is an error naming ``key``.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if batch_size % world_size:
        raise UserError(
            f"{key}={batch_size} is the global batch of all processes and does not divide evenly over "
            f"{world_size} processes (trainer.devices x trainer.num_nodes); use a multiple of {world_size}"
        )
    return batch_size // world_size


class GlobalBatch:
    """``batch_size`` is the global batch; the loaders use :attr:`process_batch_size`."""

    batch_size: int

    @property
    def process_batch_size(self) -> int:
        """This process's share of ``batch_size`` (all of it without a trainer or DDP)."""
        trainer = getattr(self, "trainer", None)
        world_size = trainer.world_size if trainer is not None else 1
        return process_batch_size(self.batch_size, world_size)


def check_fractions(val_fraction: float, test_fraction: float = 0.0) -> None:
    """Raise a ValueError naming the keys unless both shares are >= 0 and sum to less than 1."""
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(
            f"data.init_args.val_fraction ({val_fraction}) and test_fraction ({test_fraction}) "
            "must be >= 0 and sum to less than 1"
        )


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    """Split ``range(n)`` at random into ``len(fractions) + 1`` sorted parts, fixed by ``seed``.

    Part ``i + 1`` holds ``round(fractions[i] * n)`` indices; part 0 holds the rest.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts, start = [], 0
    for f in fractions:
        size = round(f * n)
        parts.append(order[start : start + size])
        start += size
    return [torch.sort(p).values for p in [order[start:], *parts]]


def stratified_split(labels: torch.Tensor, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    """As :func:`split_indices`, with the same share of every class in each part."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        start = 0
        for part, f in zip(parts[1:], fractions):
            size = round(f * len(idx))
            part.append(idx[start : start + size])
            start += size
        parts[0].append(idx[start:])
    return [torch.sort(torch.cat(p)).values for p in parts]


class ImageTransform:
    """uint8 image [C, H, W] -> float32 [channels, resolution, resolution] in [-1, 1].

    Args:
        resolution: output side in pixels.
        channels: 1 (grey, ITU-R 601 luma) or 3 (grey is repeated); ``None`` keeps the input's.
        center_crop: side of the square center crop taken before resizing; ``None`` crops
            non-square images to their short side and leaves square ones whole.
        hflip: flip horizontally with probability 1/2 (training only).
    """

    def __init__(
        self, resolution: int, channels: Optional[int] = None, center_crop: Optional[int] = None, hflip: bool = False
    ) -> None:
        self.resolution, self.channels, self.center_crop, self.hflip = resolution, channels, center_crop, hflip

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8 or image.ndim != 3:
            raise TypeError(f"ImageTransform expects a uint8 [C, H, W] tensor, got {image.dtype} {tuple(image.shape)}")
        c, h, w = image.shape
        if c == 4:  # RGBA: drop alpha
            image, c = image[:3], 3
        if self.channels == 1 and c == 3:
            image = TF.rgb_to_grayscale(image, num_output_channels=1)
        elif self.channels == 3 and c == 1:
            image = image.expand(3, h, w)
        crop = self.center_crop if self.center_crop is not None else (min(h, w) if h != w else None)
        if crop is not None and (crop, crop) != (h, w):
            if crop > min(h, w):
                raise ValueError(
                    f"data.init_args.center_crop={crop} is larger than the image ({h}x{w} pixels); "
                    f"use at most {min(h, w)}"
                )
            image = TF.center_crop(image, [crop, crop])
        if image.shape[-1] != self.resolution or image.shape[-2] != self.resolution:
            image = TF.resize(image.contiguous(), [self.resolution, self.resolution], antialias=True)
        if self.hflip and torch.rand(()) < 0.5:
            image = TF.horizontal_flip(image)
        return image.float().div_(127.5).sub_(1.0)


class InMemoryImageDataset(Dataset):
    """``(images[indices[i]], labels[indices[i]])`` from one uint8 tensor [N, C, H, W], without copying.

    Args:
        images: uint8 [N, C, H, W].
        labels: int64 [N].
        indices: the items of this split (all when ``None``).
        pad: pixels of value 0 added on each side of every image (MNIST's ``pad``).
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, indices: Optional[torch.Tensor] = None, pad: int = 0
    ) -> None:
        self.images, self.labels, self.pad = images, labels, pad
        self.indices = torch.arange(len(images)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = int(self.indices[index])
        image = self.images[i]
        if self.pad:
            image = torch.nn.functional.pad(image, (self.pad,) * 4, value=0)
        return image, int(self.labels[i])


class TransformedDataset(Dataset):
    """``raw[i] = (uint8 image, label)`` -> ``(float image in [-1, 1], label)``."""

    def __init__(self, raw: Dataset, transform: ImageTransform) -> None:
        self.raw, self.transform = raw, transform

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.raw[index]
        return self.transform(image), label


class ImageDataModule(GlobalBatch, LightningDataModule, ABC):
    """Base of the on-disk image datasets (see the module docstring).

    Args:
        root: directory holding the dataset (each subclass says which files it expects).
        resolution: image side after cropping and resizing.
        channels: 1 or 3 to convert; ``None`` keeps the dataset's own (``native_channels``).
        center_crop: side of a square center crop applied before resizing (e.g. CelebA's
            108 or 140); ``None`` crops non-square images to their short side.
        hflip: random horizontal flips of training images.
        batch_size: the global batch of every loader: the sum over all DDP processes, each of
            which loads ``batch_size / processes`` (an error unless it divides evenly).
        num_workers: loader worker processes.
        pin_memory: page-locked host memory for faster copies to a GPU.
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        drop_last: drop the last incomplete training batch (never for val/test).
        seed: fixes the random parts of the split, the same on every process.
        download: let ``prepare_data`` fetch the dataset where torchvision has a downloader.
    """

    #: channels of the images as stored (1 grey, 3 RGB).
    native_channels: int = 3
    #: number of classes, or ``None`` for unlabelled datasets (labels are then -1).
    num_classes: Optional[int] = None
    #: where the data comes from, for error messages.
    source_url: str = ""

    def __init__(
        self,
        root: str,
        resolution: int,
        channels: Optional[int] = None,
        center_crop: Optional[int] = None,
        hflip: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        # All __init__ arguments, subclasses' included: in checkpoints, and the key of cached
        # real-image statistics (callbacks.GenerativeMetrics).  logger=False: Lightning would
        # otherwise merge them with the model's hparams and stop on any shared key with another
        # value (e.g. channels: null here, 3 in the model); config.yaml records them anyway.
        self.save_hyperparameters(logger=False)
        if resolution < 1:
            raise ValueError(f"data.init_args.resolution must be positive, got {resolution}")
        if channels not in (None, 1, 3):
            raise ValueError(f"data.init_args.channels must be 1, 3 or null, got {channels}")
        if center_crop is not None and center_crop < 1:
            raise ValueError(f"data.init_args.center_crop must be positive or null, got {center_crop}")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"data.init_args.batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}"
            )
        self.root = str(root)
        self.resolution, self.channels, self.center_crop, self.hflip = resolution, channels, center_crop, hflip
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.persistent_workers, self.drop_last, self.seed, self.download = (
            persistent_workers,
            drop_last,
            seed,
            download,
        )
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self.test_set: Optional[Dataset] = None
        self._raw_splits: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ what a dataset defines
    @abstractmethod
    def expected_files(self) -> str:
        """What should be under ``root`` (one or a few lines, for error messages)."""

    @abstractmethod
    def missing_files(self) -> list[str]:
        """The expected paths that are not there (empty when the dataset is complete)."""

    @abstractmethod
    def read_splits(self) -> dict[str, Dataset]:
        """Raw datasets ``{"train", "val", "test"}`` of ``(uint8 image [C, H, W], label)``."""

    def download_data(self) -> None:
        """Fetch the dataset into ``root`` (``download: true``); not every dataset can."""
        raise DatasetNotFoundError(f"{type(self).__name__} cannot download its data; {self._where()}")

    # ------------------------------------------------------------------ shared recipe
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the loaders yield."""
        return (self.channels or self.native_channels, self.resolution, self.resolution)

    def _where(self) -> str:
        text = f"expected under {self.root}: {self.expected_files()}"
        return text + (f" (from {self.source_url})" if self.source_url else "")

    def check_files(self) -> None:
        """Raise :class:`DatasetNotFoundError` naming what is missing, where and how to get it."""
        missing = self.missing_files()
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            can_download = type(self).download_data is not ImageDataModule.download_data
            hint = "; or set data.init_args.download: true" if can_download else ""
            raise DatasetNotFoundError(
                f"{type(self).__name__}: dataset not found (data.init_args.root = {self.root}). "
                f"Missing: {shown}. {self._where()}{hint}"
            )

    def prepare_data(self) -> None:
        if self.download and self.missing_files():
            self.download_data()
        self.check_files()

    def transform(self, split: str) -> ImageTransform:
        return ImageTransform(self.resolution, self.channels, self.center_crop, hflip=self.hflip and split == "train")

    def wrap_split(self, raw: Dataset, split: str) -> Dataset:
        """The dataset ``split``'s loader reads: ``raw`` through :meth:`transform` (override for other items)."""
        return TransformedDataset(raw, self.transform(split))

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        self.check_files()
        raw = self.read_splits()
        sets = {split: self.wrap_split(raw[split], split) for split in SPLITS}
        probe = next((sets[s] for s in SPLITS if len(sets[s])), None)
        if probe is None:
            raise DatasetNotFoundError(f"{type(self).__name__}: no images found; {self._where()}")
        with torch.random.fork_rng(devices=[]):  # the probe's random flip must not shift the seeded stream
            image = probe[0][0]  # fail here, not in a worker, on a bad crop/resolution/file
        if tuple(image.shape) != self.image_shape:
            raise RuntimeError(
                f"{type(self).__name__}: got an image of shape {tuple(image.shape)}, expected {self.image_shape}"
            )
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        self._raw_splits = raw

    def unaugmented(self, split: str) -> Dataset:
        """The ``split`` without random augmentation (no x-flips): what metrics compare against."""
        if self.train_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before unaugmented({split!r})")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.wrap_split(self._raw_splits[split], "eval")

    def _loader(self, dataset: Optional[Dataset], split: str) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its {split} loader is asked for")
        train = split == "train"
        options = dict(
            batch_size=self.process_batch_size,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )
        if train:  # shuffled by (seed, epoch), resumable mid-epoch
            return ResumableLoader(dataset, seed=self.seed, **options)
        return DataLoader(dataset, shuffle=False, **options)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is not None and len(self.train_set) < self.batch_size and self.drop_last:
            raise ValueError(
                f"{type(self).__name__}: the train split has {len(self.train_set)} images, fewer than "
                f"data.init_args.batch_size={self.batch_size} with drop_last: true, so an epoch would be empty"
            )
        return self._loader(self.train_set, "train")

    def val_dataloader(self) -> Any:
        # An empty val split (val_fraction: 0) means no validation, which Lightning accepts as [].
        return [] if self.val_set is not None and len(self.val_set) == 0 else self._loader(self.val_set, "val")

    def test_dataloader(self) -> DataLoader:
        if self.test_set is not None and len(self.test_set) == 0:
            raise ValueError(
                f"{type(self).__name__}: the test split is empty; give the dataset test images "
                "(test_fraction > 0 where it has no official test split)"
            )
        return self._loader(self.test_set, "test")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class TensorSplitLoaders(GlobalBatch):
    """Loaders of a DataModule whose splits live in memory (``train_set``, ``val_set``, ``test_set``).

    Training batches are shuffled (a :class:`~datamodules.resumable.ResumableLoader`) and the last
    incomplete one dropped; the others keep order.
    Predict uses the test split.  Needs ``batch_size`` (global, as in :class:`GlobalBatch`) and
    ``num_workers`` attributes.
    """

    batch_size: int
    num_workers: int = 0
    train_set: Optional[Dataset]
    val_set: Optional[Dataset]
    test_set: Optional[Dataset]

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        options = dict(
            batch_size=self.process_batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )
        if train:  # shuffled by (seed, epoch), resumable mid-epoch
            return ResumableLoader(dataset, seed=getattr(self, "seed", 0), drop_last=True, **options)
        return DataLoader(dataset, shuffle=False, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
