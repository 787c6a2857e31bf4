"""One LightningDataModule per dataset; ``base`` holds the shared recipe.

Every image DataModule yields ``(images, labels)`` batches, images float32 in [-1, 1]
(label -1 where the dataset has none); the paired ones yield ``(input, target)``.
"""

from datamodules.base import DatasetNotFoundError, ImageDataModule
from datamodules.celeba import CelebADataModule
from datamodules.cifar10 import CIFAR10DataModule
from datamodules.degradations import DEGRADATIONS, build_degradation
from datamodules.digits import DigitsDataModule
from datamodules.encoded import CorruptImageError
from datamodules.image_folder import FFHQDataModule, ImageFolderDataModule
from datamodules.known_source import KnownSourceDataModule
from datamodules.lsun import LSUNDataModule
from datamodules.mnist import MNISTDataModule
from datamodules.paired import AlignedPairsDataModule, PairedI2IDataModule

__all__ = [
    "DEGRADATIONS",
    "AlignedPairsDataModule",
    "CIFAR10DataModule",
    "CelebADataModule",
    "CorruptImageError",
    "DatasetNotFoundError",
    "DigitsDataModule",
    "FFHQDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "KnownSourceDataModule",
    "LSUNDataModule",
    "MNISTDataModule",
    "PairedI2IDataModule",
    "build_degradation",
]
