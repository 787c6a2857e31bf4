"""One LightningDataModule per dataset."""

from datamodules.digits import DigitsDataModule

__all__ = ["DigitsDataModule"]
