r"""RNIStyleGAN2: StyleGAN2 (or DCGAN) with no, Euclidean or Riemannian noise injection.

Seed paper "On noise injection in generative adversarial networks" (Feng, Zhao, Zha; ICML
2021).  The generator's layers become g(x) = mu(x) + sigma(x) eps (Eq. 5): ENI takes
sigma = r, a learned scalar (Eq. 18, StyleGAN2's own noise); RNI derives sigma from the
geometry of mu (Eq. 13-17).  Networks: :mod:`lightning_modules.nets.stylegan2` (config-e,
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

Lazy regularisation: on the iterations where it applies, the regulariser's loss (times the
interval) is added to the main loss and both take one Adam step.  The reference code takes
a separate Adam step for it and scales lr and betas by interval / (interval + 1) to
compensate; folding keeps one D step and one G step per iteration, so ``global_step`` still
advances by exactly 2 per batch as for every GAN here, and no compensation is needed.

With ``backbone: dcgan`` the regularisers and style mixing are off unless a config sets
them, and the DCGAN configs use DCGAN's Adam (2e-4, betas (0.5, 0.999)).

Sampling and measurement API (used by the callbacks):

* ``generate(z, ema, noise_mode)`` -> images; ``noise_mode`` ``random``, ``const`` or ``none``;
* ``mapping(z, ema)`` -> w [N, num_ws, w_dim] and ``synthesize(ws, ema, noise_mode)`` ->
  images, for the StyleGAN2 backbone (PPL in W, the condition number in W, GAN inversion).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import Tensor

from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LossName
from lightning_modules.nets.dcgan import DCGANDiscriminator
from lightning_modules.nets.dcgan_noise import NoiseInjectedDCGANGenerator
from lightning_modules.nets.noise_injection import InjectionKind, NoiseInjection, NoiseMode, RNIOptions
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from lightning_modules.noise import NoiseSpec
from lightning_modules.regularizers import PathLengthPenalty, r1_penalty

__all__ = ["RNIStyleGAN2"]


class RNIStyleGAN2(AdversarialModule):
    """StyleGAN2 / DCGAN with ``noise_injection`` none, eni or rni (see the module docstring).

    Args:
        noise: the generator's input noise z (dimension = z_dim; 512 in StyleGAN2, 100 in DCGAN).
        backbone: ``stylegan2`` (config-e) or ``dcgan``.
        noise_injection: ``none``, ``eni`` (Eq. 18) or ``rni`` (Eq. 13-17) in every synthesis layer.
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
        for key, value in {"r1_interval": r1_interval, "pl_interval": pl_interval, "pl_batch_shrink": pl_batch_shrink}.items():
            if value < 1:
                raise ValueError(f"model.init_args.{key} must be >= 1, got {value}")
        if r1_gamma < 0 or pl_weight < 0 or not 0 <= style_mixing_prob <= 1:
            raise ValueError(
                "model.init_args.r1_gamma and pl_weight must be >= 0 and style_mixing_prob in [0, 1]; "
                f"got {r1_gamma}, {pl_weight}, {style_mixing_prob}"
            )
        if backbone == "stylegan2":
            self.generator = StyleGAN2Generator(
                noise.dim, w_dim, resolution, channels, channel_base, channel_max, mapping_layers,
                g_architecture, noise_injection, rni,
            )  # fmt: skip
            self.discriminator = StyleGAN2Discriminator(
                resolution, channels, channel_base, channel_max, d_architecture, mbstd_group_size
            )
        elif backbone == "dcgan":
            if pl_weight > 0:
                raise ValueError(
                    "model.init_args.pl_weight must be 0 with backbone dcgan: the path-length regulariser "
                    "needs StyleGAN2's intermediate latent w"
                )
            self.generator = NoiseInjectedDCGANGenerator(noise.dim, resolution, channels, dcgan_width, noise_injection, rni)
            self.discriminator = DCGANDiscriminator(resolution, channels, dcgan_width)
        else:
            raise ValueError(f"unknown model.init_args.backbone {backbone!r}; expected stylegan2 or dcgan")
        self.backbone = backbone
        self.r1_gamma, self.r1_interval = float(r1_gamma), int(r1_interval)
        self.pl_weight, self.pl_interval, self.pl_batch_shrink = float(pl_weight), int(pl_interval), int(pl_batch_shrink)
        self.style_mixing_prob = float(style_mixing_prob) if backbone == "stylegan2" else 0.0
        self.path_length = PathLengthPenalty(pl_decay)
        self._init_adversarial(
            noise=noise,
            image_shape=(channels, resolution, resolution),
            loss=loss,
            lr_g=lr,
            lr_d=lr,
            betas=betas,
            ema_kimg=ema_kimg,
            ema_rampup=ema_rampup,
        )
        self.iterations = 0  # GAN iterations done (D step + G step); decides the lazy regularisers

    # ------------------------------------------------------------------ sampling / measurement API
    @property
    def has_w_space(self) -> bool:
        return self.backbone == "stylegan2"

    def _net(self, ema: bool):
        return self.generator_ema.module if ema else self.generator

    @torch.no_grad()
    def generate(
        self, z: Optional[Tensor] = None, batch_size: int = 64, ema: bool = True, noise_mode: NoiseMode = "random"
    ) -> Tensor:
        """Images from noise ``z`` (or ``batch_size`` fresh draws), EMA weights by default."""
        if z is None:
            z = self.sample_noise(batch_size)
        return self._net(ema)(z.to(self.device, self._compute_dtype), noise_mode=noise_mode)

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

    # ------------------------------------------------------------------ training
    def _train_forward(self, z: Tensor, return_ws: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """G(z) as in training: random injected noise, style mixing (StyleGAN2)."""
        z = z.to(self._compute_dtype)
        if self.backbone != "stylegan2":
            return self.generator(z), None
        g = self.generator
        ws = g.mapping(z)
        if self.style_mixing_prob > 0 and torch.rand([]).item() < self.style_mixing_prob:
            cutoff = int(torch.randint(1, ws.shape[1], []).item()) if ws.shape[1] > 1 else ws.shape[1]
            mixed = g.mapping(self.sample_noise(z.shape[0]).to(z.dtype))
            ws = torch.cat([ws[:, :cutoff], mixed[:, cutoff:]], dim=1)
        images = g.synthesis(ws)
        return images, (ws if return_ws else None)

    def discriminator_step(self, real: Tensor) -> dict[str, Tensor]:
        """D's logistic loss, plus gamma / 2 * R1 * r1_interval on every r1_interval-th iteration."""
        opt_d = self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        do_r1 = self.r1_gamma > 0 and self.iterations % self.r1_interval == 0
        with torch.no_grad():
            fake, _ = self._train_forward(self.sample_noise(real.shape[0]))
        real_in = real.detach().requires_grad_(do_r1)
        real_logits, fake_logits = self.discriminate(real_in, fake)
        loss = self.d_loss(real_logits, fake_logits)
        logs = {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if do_r1:
            penalty = r1_penalty(real_in, real_logits)
            loss = loss + penalty * (self.r1_gamma / 2) * self.r1_interval
            logs["r1_penalty"] = penalty.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        return logs

    def generator_step(self, batch_size: int) -> dict[str, Tensor]:
        """G's non-saturating loss, plus pl_weight * PL * pl_interval on every pl_interval-th iteration."""
        opt_g = self.optimizers()[0]
        self.toggle_optimizer(opt_g)
        fake, _ = self._train_forward(self.sample_noise(batch_size))
        loss = self.g_loss(self.discriminator(fake))
        logs = {"loss_g": loss.detach()}
        if self.pl_weight > 0 and self.iterations % self.pl_interval == 0:
            pl_batch = max(1, batch_size // self.pl_batch_shrink)
            images, ws = self._train_forward(self.sample_noise(pl_batch), return_ws=True)
            penalty = self.path_length(images, ws)
            loss = loss + penalty * self.pl_weight * self.pl_interval
            logs.update(pl_penalty=penalty.detach(), pl_mean=self.path_length.pl_mean.detach().clone())
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        return logs

    def training_step(self, batch: Any, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        self.iterations += 1

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_iterations"] = self.iterations

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.iterations = int(checkpoint.get("gan_iterations", 0))

    def custom_scalars(self) -> dict[str, Any]:
        layout = super().custom_scalars()
        page = layout[type(self).__name__]
        page["regularisers"] = ["Multiline", ["train/r1_penalty", "train/pl_penalty", "train/pl_mean"]]
        # Filled by callbacks.ConditionNumber and GenerativeMetrics(ppl_samples > 0): the paper's Tables 1-2.
        page["condition (Table 2)"] = ["Multiline", ["metrics/mc", "metrics/ttmc"]]
        page["PPL and FID (Table 1)"] = ["Multiline", ["metrics/ppl", "metrics/fid"]]
        return layout
