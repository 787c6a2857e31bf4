"""Plain ``torch.nn`` architectures and building blocks; no Lightning inside."""

from lightning_modules.nets.classifier import ConvClassifier
from lightning_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_modules.nets.dcgan_noise import NoiseInjectedDCGANGenerator
from lightning_modules.nets.ema import EMA, ema_beta
from lightning_modules.nets.noise_injection import NoiseInjection, RNIOptions, set_noise_mode
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = [
    "ConvClassifier",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EMA",
    "NoiseInjectedDCGANGenerator",
    "NoiseInjection",
    "RNIOptions",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "ema_beta",
    "set_noise_mode",
]
