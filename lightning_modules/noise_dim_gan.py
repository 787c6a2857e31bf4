"""NoiseDimGAN: a GAN whose input noise -- dimension, distribution, precision -- is the knob.

Seed paper "Noise dimension of GAN: an image compression perspective" (Zhu, Xu et al.).
With noise Z^n stored in a float format, the generator's output has entropy
H(G(Z)) <= H(Z^n) = n H(format) (Lemma 4.1, Eq. 7-8), so a perfect GAN needs
n >= H(X) / H(format) (Theorem 4.2, Eq. 9); with fewer noise bits the best reachable
divergence is d(eps) (Eq. 11).  This module trains a GAN with any ``NoiseSpec`` and logs
its entropy in bits with the hyperparameters.  Backbones: ``dcgan`` (here); BigGAN and
StyleGAN2-ADA come in later issues.

Recipe: non-saturating loss, Adam (lr 2e-4, betas (0.5, 0.999), as in DCGAN), one D
step then one G step per batch, EMA of G's weights for samples.
"""

from __future__ import annotations

from typing import Literal, Optional

from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LossName
from lightning_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_modules.noise import NoiseSpec

__all__ = ["NoiseDimGAN"]


class NoiseDimGAN(AdversarialModule):
    """GAN trained with a configurable noise spec (seed paper "Noise dimension of GAN").

    Args:
        noise: the generator's input noise (dimension n, distribution, format, bits).
        backbone: generator/discriminator architecture; ``dcgan``.
        resolution: image side in pixels (a power of two >= 8); must match the data.
        channels: image channels; must match the data.
        g_width: generator width (channels of its last hidden layer).
        d_width: discriminator width (channels of its first layer).
        loss: adversarial loss, ``non_saturating`` or ``hinge``.
        lr_g: generator Adam learning rate.
        lr_d: discriminator Adam learning rate.
        betas: Adam (beta1, beta2) for both networks.
        ema_kimg: half-life of the generator EMA in thousands of images (StyleGAN2-ADA's
            ``ema_kimg``); 0 makes the EMA a copy of the current weights.
        ema_rampup: cap the EMA half-life at this fraction of the images seen so far
            (StyleGAN2-ADA's ``ema_rampup``); ``null`` for no ramp-up.
    """

    def __init__(
        self,
        noise: NoiseSpec = NoiseSpec(dim=128),
        backbone: Literal["dcgan"] = "dcgan",
        resolution: int = 32,
        channels: int = 3,
        g_width: int = 64,
        d_width: int = 64,
        loss: LossName = "non_saturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        ema_kimg: float = 10.0,
        ema_rampup: Optional[float] = 0.05,
    ) -> None:
        super().__init__()
        noise = NoiseSpec.coerce(noise)
        self.save_hyperparameters(ignore=["noise"])
        self.hparams["noise"] = noise.to_dict()  # plain types: checkpoints load with weights_only
        if backbone != "dcgan":
            raise ValueError(f"unknown model.init_args.backbone {backbone!r}; expected 'dcgan'")
        self.generator = DCGANGenerator(noise.dim, resolution, channels, g_width)
        self.discriminator = DCGANDiscriminator(resolution, channels, d_width)
        self._init_adversarial(
            noise=noise,
            image_shape=(channels, resolution, resolution),
            loss=loss,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            ema_kimg=ema_kimg,
            ema_rampup=ema_rampup,
        )
