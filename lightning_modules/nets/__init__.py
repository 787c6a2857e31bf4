"""Plain ``torch.nn`` architectures and building blocks; no Lightning inside."""

from lightning_modules.nets.classifier import ConvClassifier
from lightning_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_modules.nets.ema import EMA, ema_beta

__all__ = ["ConvClassifier", "DCGANDiscriminator", "DCGANGenerator", "EMA", "ema_beta"]
