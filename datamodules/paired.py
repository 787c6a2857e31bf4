"""Paired data for image-to-image translation: batches ``(input, target)``, both in [-1, 1].

Two ways to get pairs:

* :class:`PairedI2IDataModule` makes them from any image DataModule (``source``): the
  target is the source's image, the input a deterministic degradation of it
  (:mod:`datamodules.degradations`: ``downsample`` for super-resolution, ``blur``,
  ``grey``, ``edges`` for photo -> sketch, ``none``).  Labels are dropped.
* :class:`AlignedPairsDataModule` reads pairs stored on disk, in the pix2pix layout
  (``root/train/1.jpg`` holding A|B side by side) or as two folders ``A/`` and ``B/`` of
  images with the same names; the same crop, resize and random flip are applied to both.

Both give ``image_shape`` (the target's ``(C, H, W)``) and ``input_shape`` (the same: a
pix2pix generator maps same-size images).
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional, Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from datamodules.base import SPLITS, ImageTransform
from datamodules.degradations import Degradation, build_degradation
from datamodules.encoded import CorruptImageError, EncodedImageDataModule, FolderSource, ImageSource, decode_image

__all__ = [
    "AlignedPairDataset",
    "AlignedPairsDataModule",
    "DegradedPairs",
    "PairTransform",
    "PairedI2IDataModule",
    "TransformedPairs",
]

PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/"


# ---------------------------------------------------------------------------- pairs made by degrading
class DegradedPairs(Dataset):
    """``source[i] = (image, label)`` (or just ``image``) -> ``(degradation(image), image)``.

    The image is taken as it comes (float in [-1, 1], after the source's own transform,
    random flip included, so input and target always share it); the label is dropped.
    """

    def __init__(self, source: Dataset, degradation: Degradation) -> None:
        self.source, self.degradation = source, degradation

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.source[index]
        target = item[0] if isinstance(item, (tuple, list)) else item
        return self.degradation(target), target


class PairedI2IDataModule(LightningDataModule):
    """Pairs ``(degradation(y), y)`` from the images ``y`` of another DataModule (labels dropped).

    In a config the source is a nested ``class_path``::

        data:
          class_path: datamodules.paired.PairedI2IDataModule
          init_args:
            source:
              class_path: datamodules.ImageFolderDataModule
              init_args: {root: data/faces, resolution: 128, batch_size: 16}
            degradation: downsample
            scale: 4

    The source keeps its own settings (resolution, channels, crop, flips, splits, batch
    size, workers ...): this module calls its ``prepare_data``/``setup``/``teardown`` (Lightning
    only calls the outer DataModule's), wraps its ``train_set``/``val_set``/``test_set`` in
    :class:`DegradedPairs`, and builds the loaders with the source's own loader methods
    (the source's datasets are swapped for the paired ones during the call), so batch size,
    shuffling, ``drop_last``, workers and its checks are exactly the source's.
    ``batch_size`` reads and sets the source's.  The source's batch hooks
    (``on_before_batch_transfer`` etc.) are not used: batches are pairs here.

    Args:
        source: the DataModule whose images are the targets; after its ``setup`` it must
            have ``train_set``/``val_set``/``test_set`` of ``(image, label)`` or images,
            float in [-1, 1] (every DataModule of this project does).
        degradation: how the input is made from the target (see
            :mod:`datamodules.degradations`): ``downsample`` (super-resolution), ``blur``,
            ``grey``, ``edges`` (photo -> sketch) or ``none`` (identity).
        scale: ``downsample`` factor k (the image side must be a multiple of k).
        upsample_mode: ``downsample``: how the H/k image is brought back to H
            (``bicubic``, ``bilinear`` or ``nearest``).
        downsample_mode: ``downsample``: ``bicubic`` (antialiased, as PIL/MATLAB ``imresize``)
            or ``area`` (exact k x k block means).
        blur_sigma: ``blur``: Gaussian standard deviation in pixels.
        edge_threshold: ``edges``: ``null`` for grey-level lines, or a threshold in [0, 1)
            on the normalised gradient for binary lines.
    """

    def __init__(
        self,
        source: LightningDataModule,
        degradation: Literal["downsample", "blur", "grey", "edges", "none"] = "downsample",
        scale: int = 4,
        upsample_mode: Literal["bicubic", "bilinear", "nearest"] = "bicubic",
        downsample_mode: Literal["bicubic", "area"] = "bicubic",
        blur_sigma: float = 2.0,
        edge_threshold: Optional[float] = None,
    ) -> None:
        super().__init__()
        if not isinstance(source, LightningDataModule):
            raise TypeError(f"data.init_args.source must be a LightningDataModule, got {type(source).__name__}")
        params = {
            "downsample": {"scale": scale, "down_mode": downsample_mode, "up_mode": upsample_mode},
            "blur": {"sigma": blur_sigma},
            "edges": {"threshold": edge_threshold},
        }
        try:
            self.degradation: Degradation = build_degradation(degradation, **params.get(degradation, {}))
        except ValueError as err:
            raise ValueError(f"data.init_args: {err}") from None
        self.save_hyperparameters(ignore=["source"], logger=False)  # logger=False: see ImageDataModule
        # The source as text (class and arguments): checkpoints and metric caches tell sources apart.
        self.hparams["source"] = f"{type(source).__qualname__}({dict(getattr(source, 'hparams', {}))})"
        self.source = source
        self.prepare_data_per_node = source.prepare_data_per_node
        self.train_set: Optional[DegradedPairs] = None
        self.val_set: Optional[DegradedPairs] = None
        self.test_set: Optional[DegradedPairs] = None
        self._target_shape: Optional[tuple[int, ...]] = None

    # ------------------------------------------------------------------ shapes and settings
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the targets (the source's images)."""
        if self._target_shape is not None:
            return self._target_shape  # type: ignore[return-value]
        shape = getattr(self.source, "image_shape", None)
        if shape is None:
            raise AttributeError(f"{type(self.source).__name__} has no image_shape; call setup() first")
        return tuple(shape)  # type: ignore[return-value]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the inputs: the targets' (every degradation keeps the shape)."""
        return self.image_shape

    @property
    def batch_size(self) -> int:
        return self.source.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:  # e.g. Lightning's batch-size finder
        self.source.batch_size = value

    # ------------------------------------------------------------------ hooks, forwarded to the source
    def prepare_data(self) -> None:
        self.source.prepare_data()

    def setup(self, stage: Optional[str] = None) -> None:
        self.source.trainer = self.trainer
        self.source.setup(stage)
        found = False
        for split in SPLITS:
            raw = getattr(self.source, f"{split}_set", None)
            found = found or raw is not None
            current = getattr(self, f"{split}_set")
            if raw is not None and (current is None or current.source is not raw):
                setattr(self, f"{split}_set", DegradedPairs(raw, self.degradation))
        if not found:
            raise TypeError(
                f"{type(self).__name__}: the source {type(self.source).__name__} has no train_set/val_set/test_set "
                "after setup(); the source must keep its datasets in those attributes"
            )
        self._check_probe()

    def _check_probe(self) -> None:
        """Degrade the first image now, so a bad scale or image fails in ``setup``, not in a worker."""
        probe = next((s for s in (self.train_set, self.val_set, self.test_set) if s is not None and len(s)), None)
        if probe is None or self._target_shape is not None:
            return
        item = probe.source[0]
        target = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(target, torch.Tensor) or target.ndim != 3 or not target.is_floating_point():
            raise TypeError(
                f"{type(self).__name__}: the source {type(self.source).__name__} gives "
                f"{type(target).__name__} items; expected float images [C, H, W] in [-1, 1]"
            )
        try:
            source = self.degradation(target)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}: {err} (data.init_args)") from None
        if source.shape != target.shape:
            raise RuntimeError(f"{self.degradation} changed the shape {tuple(target.shape)} to {tuple(source.shape)}")
        self._target_shape = tuple(target.shape)

    def teardown(self, stage: Optional[str] = None) -> None:
        self.source.teardown(stage)

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.source.load_state_dict(state_dict)

    # ------------------------------------------------------------------ loaders: the source's, on the pairs
    def _source_loader(self, hook: str) -> Any:
        if self.train_set is None and self.val_set is None and self.test_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its loaders are asked for")
        names = [f"{split}_set" for split in SPLITS]
        saved = {name: getattr(self.source, name, None) for name in names}
        try:
            for name in names:
                setattr(self.source, name, getattr(self, name))
            return getattr(self.source, hook)()
        finally:
            for name, value in saved.items():
                setattr(self.source, name, value)

    def train_dataloader(self) -> Any:
        return self._source_loader("train_dataloader")

    def val_dataloader(self) -> Any:
        return self._source_loader("val_dataloader")

    def test_dataloader(self) -> Any:
        return self._source_loader("test_dataloader")

    def predict_dataloader(self) -> Any:
        return self._source_loader("predict_dataloader")


# ---------------------------------------------------------------------------- pairs stored on disk
class PairTransform:
    """One :class:`~datamodules.base.ImageTransform` applied to both images of a pair, one flip for both.

    The channel conversion, center crop and resize are deterministic, so they are applied
    to each image as they are; the random horizontal flip is drawn *once* per pair and
    applied to both, so input and target always stay aligned.
    """

    def __init__(self, transform: ImageTransform) -> None:
        self.image = ImageTransform(transform.resolution, transform.channels, transform.center_crop, hflip=False)
        self.hflip = transform.hflip

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.image(a), self.image(b)
        if self.hflip and torch.rand(()) < 0.5:
            a, b = TF.horizontal_flip(a), TF.horizontal_flip(b)
        return a, b


class TransformedPairs(Dataset):
    """``raw[i] = (uint8 input, uint8 target)`` -> ``(float input, float target)`` in [-1, 1]."""

    def __init__(self, raw: Dataset, transform: PairTransform) -> None:
        self.raw, self.transform = raw, transform

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*self.raw[index])


class AlignedPairDataset(Dataset):
    """Raw pairs ``(uint8 input [C, H, W], uint8 target [C, H', W'])`` read from encoded files.

    Args:
        sources: one source of side-by-side A|B images (A the left half, B the right half;
            an odd last column is dropped), or two sources (A, B) whose image ``i`` is a pair.
        indices: which source indices form this split.
        channels: decode to 1 or 3 channels.
        swap: return ``(B, A)`` instead of ``(A, B)`` (direction BtoA).
        skip_corrupt: replace a pair with an unreadable file by the next pair, with a warning,
            instead of raising (both images are skipped together, so pairs stay aligned).
    """

    def __init__(
        self,
        sources: Sequence[ImageSource],
        indices: Sequence[int],
        channels: int = 3,
        swap: bool = False,
        skip_corrupt: bool = False,
    ) -> None:
        if len(sources) not in (1, 2):
            raise ValueError(f"AlignedPairDataset takes one side-by-side source or two (A, B), got {len(sources)}")
        self.sources, self.indices = list(sources), [int(i) for i in indices]
        self.channels, self.swap, self.skip_corrupt = channels, swap, skip_corrupt

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, source: ImageSource, index: int) -> torch.Tensor:
        try:
            return decode_image(source.read(index), self.channels)
        except (CorruptImageError, OSError) as err:
            raise CorruptImageError(f"cannot decode {source.name(index)} in {source.location}: {err}") from None

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of source index ``index`` (no direction, no skipping)."""
        if len(self.sources) == 2:
            return self._read(self.sources[0], index), self._read(self.sources[1], index)
        source = self.sources[0]
        image = self._read(source, index)
        half = image.shape[-1] // 2
        if half == 0:
            raise CorruptImageError(
                f"{source.name(index)} in {source.location} is {image.shape[-1]} pixel(s) wide; "
                "a side-by-side pair needs A|B, at least 2 pixels"
            )
        return image[..., :half], image[..., half : 2 * half]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        from lightning.pytorch.utilities import rank_zero_warn

        for attempt in range(len(self.indices)):
            index = self.indices[(position + attempt) % len(self.indices)]
            try:
                a, b = self.pair(index)
            except CorruptImageError as err:
                if not self.skip_corrupt:
                    raise CorruptImageError(
                        f"{err}. Set data.init_args.skip_corrupt: true to skip such pairs, or verify: full to "
                        "find them all before training"
                    ) from None
                rank_zero_warn(f"skipping an unreadable pair: {err}")
                continue
            return (b, a) if self.swap else (a, b)
        raise CorruptImageError(f"no pair in {self.sources[0].location} could be decoded")


class AlignedPairsDataModule(EncodedImageDataModule):
    """Aligned image pairs from disk: the pix2pix datasets, or two folders A/ and B/.

    Layouts (``root`` holds ``train/`` and optionally ``val/`` and ``test/``; each split
    is read from its own subfolder, no random split):

    * ``side_by_side`` -- pix2pix's datasets (facades, edges2shoes, maps, cityscapes,
      night2day ..., from http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/):
      ``root/train/1.jpg`` is A and B concatenated horizontally, A the left half;
    * ``folders`` -- ``root/<split>/A/<name>`` and ``root/<split>/B/<name>`` with the same
      file names (nested folders allowed); a name in one folder only is an error.

    Batches are ``(input, target)``: ``(A, B)`` for ``direction: AtoB``, ``(B, A)`` for
    ``BtoA`` (pix2pix's facades are trained BtoA, label map -> photo; edges2shoes AtoB).
    Both images get the shared recipe (channels, center crop, resize to ``resolution``)
    and, for training with ``hflip``, the *same* random flip (:class:`PairTransform`).
    The crop is in each image's own pixels: for pairs of different sizes (a low-res A, a
    high-res B) leave ``center_crop`` null and they are both resized to ``resolution``.
    pix2pix's extra jitter (resize to 286, random 256 crop) is not applied.

    Args:
        root: the dataset directory, e.g. ``data/facades``.
        layout: ``side_by_side`` (pix2pix) or ``folders`` (A/ and B/).
        direction: ``AtoB`` (input A, target B) or ``BtoA``.
        resolution: side of both images after cropping and resizing (pix2pix: 256).
        hflip: the same random horizontal flip of input and target in training (pix2pix
            flips by default).
        test_folder: the subfolder the test split is read from; edges2shoes, maps and
            cityscapes ship only ``train/`` and ``val/``: set ``val`` to test on it.
        **kwargs: the shared arguments (channels, center_crop, batch_size, num_workers,
            pin_memory, persistent_workers, drop_last, seed, verify, skip_corrupt); see
            :class:`~datamodules.base.ImageDataModule` and
            :class:`~datamodules.encoded.EncodedImageDataModule`.
    """

    source_url = f"pix2pix datasets: {PIX2PIX_URL} (e.g. facades.tar.gz), or any aligned pairs in the folders layout"

    def __init__(
        self,
        root: str,
        layout: Literal["side_by_side", "folders"] = "side_by_side",
        direction: Literal["AtoB", "BtoA"] = "AtoB",
        resolution: int = 256,
        hflip: bool = True,
        test_folder: str = "test",
        **kwargs,
    ) -> None:
        super().__init__(root=root, resolution=resolution, hflip=hflip, **kwargs)
        if layout not in ("side_by_side", "folders"):
            raise ValueError(f"data.init_args.layout must be side_by_side or folders, got {layout!r}")
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"data.init_args.direction must be AtoB or BtoA, got {direction!r}")
        self.layout, self.direction, self.test_folder = layout, direction, test_folder

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the inputs: the same as the targets' (``image_shape``)."""
        return self.image_shape

    def split_folders(self) -> dict[str, str]:
        return {"train": "train", "val": "val", "test": self.test_folder}

    def expected_files(self) -> str:
        if self.layout == "side_by_side":
            return (
                "train/ (and optionally val/, test/) holding images with A and B side by side, A the left half "
                "(pix2pix's layout, e.g. train/1.jpg)"
            )
        return (
            "train/A/ and train/B/ (and optionally val/A, val/B, test/A, test/B) holding images with the same "
            "file names in A and B (e.g. train/A/0001.png and train/B/0001.png)"
        )

    def _required(self, split: str) -> bool:
        return split == "train" or (split == "test" and self.test_folder != "test")

    def missing_files(self) -> list[str]:
        if not os.path.isdir(self.root):
            return [self.root]
        missing = []
        for split, folder in self.split_folders().items():
            path = os.path.join(self.root, folder)
            if not os.path.isdir(path):
                if self._required(split):
                    missing.append(path)
            elif self.layout == "folders":
                missing += [os.path.join(path, s) for s in ("A", "B") if not os.path.isdir(os.path.join(path, s))]
        return missing

    def _folder_sources(self, path: str) -> tuple[FolderSource, FolderSource]:
        a, b = FolderSource(os.path.join(path, "A")), FolderSource(os.path.join(path, "B"))
        only_a, only_b = sorted(set(a.files) - set(b.files)), sorted(set(b.files) - set(a.files))
        if only_a or only_b:

            def listing(names: list[str], folder: str) -> str:
                shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                return f"{len(names)} only in {os.path.join(path, folder)}: {shown}" if names else ""

            raise ValueError(
                f"{type(self).__name__}: the A and B folders must hold the same file names, but "
                + "; ".join(t for t in (listing(only_a, "A"), listing(only_b, "B")) if t)
            )
        return a, b

    def read_splits(self) -> dict[str, Dataset]:
        splits: dict[str, Dataset] = {}
        swap = self.direction == "BtoA"
        for split, folder in self.split_folders().items():
            path = os.path.join(self.root, folder)
            if not os.path.isdir(path):
                splits[split] = AlignedPairDataset([FolderSource(path, [])], [], self.decode_channels, swap)
                continue
            if self.layout == "side_by_side":
                sources: list[ImageSource] = [FolderSource(path)]
                keep = self.readable(sources[0])
            else:
                sources = list(self._folder_sources(path))
                readable_b = set(self.readable(sources[1]))
                keep = [i for i in self.readable(sources[0]) if i in readable_b]
            splits[split] = AlignedPairDataset(sources, keep, self.decode_channels, swap, self.skip_corrupt)
        return splits

    def wrap_split(self, raw: Dataset, split: str) -> Dataset:
        return TransformedPairs(raw, PairTransform(self.transform(split)))
