r"""RNIStyleGAN2: StyleGAN2 (or DCGAN) with no, Euclidean or Riemannian noise injection.

Seed paper "On noise injection in generative adversarial networks" (Feng, Zhao, Zha; ICML
2021).  The generator's layers become g(x) = mu(x) + sigma(x) eps (RNI Eq. 5): ENI takes
sigma = r, a learned scalar (RNI Eq. 18, StyleGAN2's own noise); RNI derives sigma from the
geometry of mu (RNI Eq. 13-17).  Networks: :mod:`lightning_modules.nets.stylegan2` (config-e,
Sec. 5) and :mod:`lightning_modules.nets.dcgan_noise` (the DCGAN rows); the injection
layer: :mod:`lightning_modules.nets.noise_injection`.

The recipe, StyleGAN2's (Karras et al. 2020, Sec. 3 and Appendix B, config-e; the
authors "apply the experimental settings from StyleGAN2"):

* non-saturating logistic loss; Adam with lr 0.002, betas (0, 0.99); minibatch 32;
* lazy R1 on reals every ``r1_interval`` = 16 D steps, weight gamma / 2 times the interval
  (:func:`lightning_modules.regularizers.r1_penalty`);
* path-length regulariser every ``pl_interval`` = 4 G steps on half the batch, weight 2
  times the interval (:class:`lightning_modules.regularizers.PathLengthPenalty`);
  ``pl_weight: 0`` turns it off (Table 1's "NoPathReg" rows);
* style mixing with probability 0.9 (two w's, a random crossover layer);
* EMA of G with a half-life of 10 kimg.

The regularisers and style mixing are the shared recipe's (:mod:`lightning_modules.adversarial`):
a lazy regulariser's loss, times its interval, joins the main loss in the same Adam step, so
``global_step`` still advances by exactly 2 per batch.

With ``backbone: dcgan`` there is no w: style mixing is off and ``pl_weight`` > 0 is a config
error; R1 stays available.  The DCGAN configs use DCGAN's recipe (Adam 2e-4, betas
(0.5, 0.999), no R1).

Sampling and measurement API (used by the callbacks):

* ``generate(z, ema=..., noise_mode=...)`` (the shared sampling API) -> images; ``noise_mode`` ``random``, ``const`` or ``none``;
* ``mapping(z, ema)`` -> w [N, num_ws, w_dim] and ``synthesize(ws, ema, noise_mode)`` ->
  images, for the StyleGAN2 backbone (PPL in W, the condition number in W, GAN inversion).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import Tensor

from core.noise import NoiseSpec
from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LossName
from lightning_modules.nets.dcgan import DCGANDiscriminator
from lightning_modules.nets.dcgan_noise import NoiseInjectedDCGANGenerator
from lightning_modules.nets.noise_injection import InjectionKind, NoiseInjection, NoiseMode, RNIOptions
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = ["RNIStyleGAN2"]


class RNIStyleGAN2(AdversarialModule):
    """StyleGAN2 / DCGAN with ``noise_injection`` none, eni or rni (see the module docstring).

    Args:
        noise: the generator's input noise z (dimension = z_dim; 512 in StyleGAN2, 100 in DCGAN).
        backbone: ``stylegan2`` (config-e) or ``dcgan``.
        noise_injection: ``none``, ``eni`` (RNI Eq. 18) or ``rni`` (RNI Eq. 13-17) in every synthesis layer.
        rni: RNI options; the paper's equations by default, the authors' code as options
            (:class:`~lightning_modules.nets.noise_injection.RNIOptions`).
        resolution: image side (power of two >= 8); must match the data.
        channels: image channels; must match the data.
        w_dim: StyleGAN2's intermediate latent size.
        channel_base: StyleGAN2 channels at resolution r are min(channel_base / r, channel_max).
        channel_max: cap on StyleGAN2's channels.
        mapping_layers: depth of StyleGAN2's mapping network.
        g_architecture: StyleGAN2 generator ``skip`` (config-e) or ``orig``.
        d_architecture: StyleGAN2 discriminator ``resnet`` (config-e) or ``orig``.
        mbstd_group_size: minibatch-stddev group size of StyleGAN2's D.
        dcgan_width: DCGAN width (channels of the last hidden block; the first has 8x).
        loss: adversarial loss (``non_saturating``: StyleGAN2's logistic loss).
        lr: Adam learning rate of G and D.
        betas: Adam betas of G and D.
        r1_gamma: R1 weight gamma (0 disables R1).
        r1_interval: apply R1 every this many iterations (lazy regularisation).
        pl_weight: path-length regulariser weight (0 disables it).
        pl_interval: apply it every this many iterations.
        pl_batch_shrink: it runs on batch_size / pl_batch_shrink samples.
        pl_decay: update rate of the path-length target a.
        style_mixing_prob: probability of mixing two w's in a training batch (StyleGAN2 backbone).
        ema_kimg: half-life of the generator EMA in thousands of images.
        ema_rampup: cap the EMA half-life at this fraction of the images seen (``null``: off).
    """

    def __init__(
        self,
        noise: NoiseSpec = NoiseSpec(dim=512),
        backbone: Literal["stylegan2", "dcgan"] = "stylegan2",
        noise_injection: InjectionKind = "rni",
        rni: RNIOptions = RNIOptions(),
        resolution: int = 128,
        channels: int = 3,
        w_dim: int = 512,
        channel_base: int = 16384,
        channel_max: int = 512,
        mapping_layers: int = 8,
        g_architecture: Literal["skip", "orig"] = "skip",
        d_architecture: Literal["resnet", "orig"] = "resnet",
        mbstd_group_size: int = 4,
        dcgan_width: int = 64,
        loss: LossName = "non_saturating",
        lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 2.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        style_mixing_prob: float = 0.9,
        ema_kimg: float = 10.0,
        ema_rampup: Optional[float] = None,
    ) -> None:
        super().__init__()
        noise = NoiseSpec.coerce(noise)
        rni = RNIOptions.coerce(rni)
        self.save_hyperparameters(ignore=["noise", "rni"])
        # plain types: checkpoints load with weights_only
        self.hparams["noise"], self.hparams["rni"] = noise.to_dict(), rni.to_dict()
        if backbone == "stylegan2":
            self.generator = StyleGAN2Generator(
                noise.dim, w_dim, resolution, channels, channel_base, channel_max, mapping_layers,
                g_architecture, noise_injection, rni,
            )  # fmt: skip
            self.discriminator = StyleGAN2Discriminator(
                resolution, channels, channel_base, channel_max, d_architecture, mbstd_group_size
            )
        elif backbone == "dcgan":
            self.generator = NoiseInjectedDCGANGenerator(noise.dim, resolution, channels, dcgan_width, noise_injection, rni)
            self.discriminator = DCGANDiscriminator(resolution, channels, dcgan_width)
        else:
            raise ValueError(f"unknown model.init_args.backbone {backbone!r}; expected stylegan2 or dcgan")
        self.backbone = backbone
        self._init_adversarial(
            noise=noise,
            image_shape=(channels, resolution, resolution),
            loss=loss,
            lr_g=lr,
            lr_d=lr,
            betas=betas,
            ema_kimg=ema_kimg,
            ema_rampup=ema_rampup,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
            pl_weight=pl_weight,
            pl_interval=pl_interval,
            pl_batch_shrink=pl_batch_shrink,
            pl_decay=pl_decay,
            style_mixing_prob=style_mixing_prob if backbone == "stylegan2" else 0.0,
        )

    session_keys = ("backbone", "noise_injection", "channel_base", "channel_max", "dcgan_width", "pl_weight",
                    "style_mixing_prob")  # fmt: skip

    # ------------------------------------------------------------------ sampling / measurement API
    @property
    def has_w_space(self) -> bool:
        return self.backbone == "stylegan2"

    def _net(self, ema: bool):
        return self.generator_ema.module if ema else self.generator

    def mapping(self, z: Tensor, ema: bool = True, truncation_psi: float = 1.0) -> Tensor:
        """w = f(z), broadcast to [N, num_ws, w_dim] (StyleGAN2 backbone only)."""
        self._require_w("mapping")
        return self._net(ema).mapping(z.to(self.device, self._compute_dtype), truncation_psi=truncation_psi)

    def synthesize(self, ws: Tensor, ema: bool = True, noise_mode: NoiseMode = "random") -> Tensor:
        """Images g(ws) from ws [N, num_ws, w_dim] (StyleGAN2 backbone only)."""
        self._require_w("synthesis")
        return self._net(ema).synthesis(ws, noise_mode=noise_mode)

    def _require_w(self, what: str) -> None:
        if not self.has_w_space:
            raise ValueError(f"{what} in w space needs backbone stylegan2; this model's backbone is {self.backbone}")

    def injection_layers(self, ema: bool = True) -> list[NoiseInjection]:
        """The generator's noise-injection layers, input to output."""
        return [m for m in self._net(ema).modules() if isinstance(m, NoiseInjection)]

    def custom_scalars(self) -> dict[str, Any]:
        layout = super().custom_scalars()
        page = layout[type(self).__name__]
        # Filled by callbacks.ConditionNumber and GenerativeMetrics(ppl_samples > 0): the paper's Tables 1-2.
        page["condition (Table 2)"] = ["Multiline", ["metrics/mc", "metrics/ttmc"]]
        page["PPL and FID (Table 1)"] = ["Multiline", ["metrics/ppl", "metrics/fid"]]
        return layout
