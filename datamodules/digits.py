"""The embedded default dataset: scikit-learn's handwritten digits (no download).

1,797 real 8x8 grey images of the digits 0-9 (the UCI "Optical Recognition of
Handwritten Digits" test set, bundled with scikit-learn as ``load_digits``), 16 grey
levels.  They are upsampled (bilinear) to ``resolution`` and scaled to [-1, 1]; labels
are kept.  The train/val/test split is stratified by class and fixed by ``seed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import TensorDataset

from datamodules.base import TensorSplitLoaders, check_fractions, stratified_split

__all__ = ["DigitsDataModule", "load_digits_tensors"]


def load_digits_tensors(resolution: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as images [N, 1, R, R] in [-1, 1] and labels [N] (int64)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div_(16.0)[:, None]  # grey levels 0..16 -> [0, 1]
    if resolution != 8:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    images = images.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)
    return images, torch.from_numpy(digits.target).long()


class DigitsDataModule(TensorSplitLoaders, LightningDataModule):
    """scikit-learn's 8x8 handwritten digits, upsampled; batches are ``(images, labels)``.

    Args:
        resolution: image side after bilinear upsampling (8 keeps the originals).
        batch_size: the global batch of every loader, split evenly over the DDP processes.
        val_fraction: share of each class held out for validation.
        test_fraction: share of each class held out for testing.
        seed: fixes the split.
        num_workers: loader worker processes (the data is in memory; 0 is fastest here).
    """

    num_classes = 10

    def __init__(
        self,
        resolution: int = 32,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if resolution < 1:
            raise ValueError(f"data.init_args.resolution must be positive, got {resolution}")
        check_fractions(val_fraction, test_fraction)
        self.save_hyperparameters()
        self.resolution, self.batch_size, self.num_workers = resolution, batch_size, num_workers
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.train_set = self.val_set = self.test_set = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.resolution, self.resolution)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_digits_tensors(self.resolution)
        train, val, test = stratified_split(labels, (self.val_fraction, self.test_fraction), self.seed)
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])
        self.test_set = TensorDataset(images[test], labels[test])
