"""One LightningModule per method (the training recipe); plain networks live in ``nets``."""

from core.noise import NoiseSpec
from lightning_modules.adversarial import AdversarialModule
from lightning_modules.classifier import Classifier
from lightning_modules.de_gan import DEGAN
from lightning_modules.ganz import GANZ
from lightning_modules.noise_dim_gan import NoiseDimGAN
from lightning_modules.noisy_i2i import NoisyI2I
from lightning_modules.rni_stylegan2 import RNIStyleGAN2
from lightning_modules.vae import VAE

__all__ = ["DEGAN", "GANZ", "VAE", "AdversarialModule", "Classifier", "NoiseDimGAN", "NoiseSpec", "NoisyI2I", "RNIStyleGAN2"]
