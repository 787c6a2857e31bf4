"""NoiseDimGAN: a GAN whose input noise -- dimension, distribution, precision -- is the knob.

Seed paper "Noise dimension of GAN: an image compression perspective" (Zhu, Xu et al.).
With noise Z^n stored in a float format, the generator's output has entropy
H(G(Z)) <= H(Z^n) = n H(format) (Noise-dim Lemma 4.1, Eq. 7-8), so a perfect GAN needs
n >= H(X) / H(format) (Noise-dim Theorem 4.2, Eq. 9); with fewer noise bits the best reachable
divergence is d(eps) (Noise-dim Eq. 11).  This module trains a GAN with any ``NoiseSpec`` and logs
its entropy eps = H(Z^n) in bits with the hyperparameters (``noise/entropy_bits``).

Backbones (Sec. 5.1 of the paper trains BigGAN and StyleGAN2-ADA):

* ``dcgan`` -- the small DCGAN of :mod:`lightning_modules.nets.dcgan` (non-saturating
  loss, Adam 2e-4, betas (0.5, 0.999));
* ``biggan`` -- :mod:`lightning_modules.nets.biggan` (hierarchical latent over any n,
  shared class embedding with ``num_classes`` > 0, self-attention, spectral norm, capacity
  ``ch``).  BigGAN's CIFAR recipe is a config: hinge loss, Adam 2e-4 / 2e-4 with betas
  (0, 0.999), ``d_steps_per_g: 4``, EMA (``configs/noise_dim/cifar10_biggan.yaml``);
* ``stylegan2_ada`` -- the StyleGAN2 networks of :mod:`lightning_modules.nets.stylegan2` with
  ADA (``augment: ada``), R1 (``r1_gamma``), optional path length and style mixing: the
  shared recipe of :mod:`lightning_modules.adversarial`.  Unconditional.  Widths follow
  StyleGAN2-ADA's ``channel_base`` / ``channel_max``; ``ch`` (when set) scales both,
  channel_base = 512 ch and channel_max = 8 ch, so ``ch: 64`` is ADA's CIFAR width (fmaps 1)
  and every layer's width is proportional to ``ch``.  StyleGAN normalises z before the
  mapping network, which keeps only its direction: ``normalize_z: false`` keeps |z| too
  (with n = 1 the normalised z has two values).  ADA's CIFAR recipe is a config
  (``configs/noise_dim/cifar10_stylegan2_ada.yaml``).  ``layer_noise`` is the noise mode of
  StyleGAN2's per-layer noise injection in training and sampling: ``random`` (NVlabs' ADA, the
  default: H x W fresh Gaussian values per layer and sample, 2,704 at 32 px) or ``const`` /
  ``none``, which leave z the generator's only randomness (the noise-dimension configs:
  ``none``).

Conditional training (``num_classes`` > 0) takes the labels of each real batch: D scores
the real images with their labels, and G draws as many fakes *with the same labels*, so
the fakes follow the data's class frequencies.  ``generate(z)`` without labels (sample
grids, FID) uses labels ``i mod num_classes`` for the i-th sample: uniform class frequencies,
log2(num_classes) bits per sample in the randomness budget (``labels``).

``augment: ada`` puts ADA's augmentation (:mod:`lightning_modules.nets.ada`) in front of
D in training steps: D sees augment(real) and augment(fake) in the D step and
augment(fake) in the G step; p follows the overfitting heuristic r_t (``ada_target``) or
stays at ``augment_p`` (``ada_target: null``).  p is a buffer of ``augment_pipe``, so it is
in every checkpoint; ``train/ada_p`` and ``train/ada_rt`` log it.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
from lightning.pytorch.utilities import rank_zero_warn

from core.noise import NoiseSpec
from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import LossName
from lightning_modules.nets.ada import AdaptiveAugment, AugmentPipe
from lightning_modules.nets.biggan import BigGANDiscriminator, BigGANGenerator
from lightning_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_modules.nets.noise_injection import NoiseMode, set_noise_mode
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = ["NoiseDimGAN"]

BACKBONES = ("dcgan", "biggan", "stylegan2_ada")


class NoiseDimGAN(AdversarialModule):
    """GAN trained with a configurable noise spec (seed paper "Noise dimension of GAN").

    Args:
        noise: the generator's input noise (dimension n, distribution, format, bits).
        backbone: generator/discriminator architecture: ``dcgan``, ``biggan`` or ``stylegan2_ada``.
        resolution: image side in pixels; must match the data (DCGAN, StyleGAN2: a power of
            two >= 8; BigGAN: 32, 64 or 128).
        channels: image channels; must match the data.
        g_width: generator width (DCGAN: channels of its last hidden layer; BigGAN: G_ch).
        d_width: discriminator width (DCGAN: channels of its first layer; BigGAN: D_ch).
        ch: capacity multiplier; when set, it replaces both ``g_width`` and ``d_width``
            (the capacity the paper's Fig. 2(a) varies); for StyleGAN2 it sets channel_base =
            512 ch and channel_max = 8 ch. ``null`` keeps them.
        num_classes: classes of a conditional BigGAN (shared embedding in G, projection
            in D); 0 trains an unconditional GAN.  The data's labels must lie in
            [0, num_classes).
        shared_dim: width of BigGAN's shared class embedding.
        attn_resolution: resolution of BigGAN's self-attention block (in G and D); 0 for none.
        hierarchical: BigGAN's hierarchical latent (z split over the G blocks).
        loss: adversarial loss, ``non_saturating`` or ``hinge``.
        lr_g: generator Adam learning rate.
        lr_d: discriminator Adam learning rate.
        betas: Adam (beta1, beta2) for both networks.
        d_steps_per_g: discriminator steps (one per batch) per generator step.
        ema_kimg: half-life of the generator EMA in thousands of images (StyleGAN2-ADA's
            ``ema_kimg``); 0 makes the EMA a copy of the current weights.
        ema_rampup: cap the EMA half-life at this fraction of the images seen so far
            (StyleGAN2-ADA's ``ema_rampup``); ``null`` for no ramp-up.
        augment: ``none``, or ``ada`` (ADA's bgc augmentation of everything D sees).
        augment_p: initial augmentation probability (the fixed one when ``ada_target`` is null).
        ada_target: target of the overfitting heuristic r_t = E[sign(D(real))] (0.6 in the
            ADA paper); ``null`` keeps p fixed at ``augment_p``.
        ada_kimg: thousands of images for p to go from 0 to 1 (500 in the ADA paper).
        ada_interval: training steps between adjustments of p (4 in the ADA paper).
        w_dim: StyleGAN2's intermediate latent size.
        mapping_layers: StyleGAN2's mapping depth (2 in ADA's CIFAR config, 8 otherwise).
        channel_base: StyleGAN2 channels at resolution r are min(channel_base / r, channel_max).
        channel_max: cap on StyleGAN2's channels.
        mbstd_group_size: StyleGAN2 D's minibatch-stddev group (32 in ADA's CIFAR config).
        d_architecture: StyleGAN2 D: ``resnet`` or ``orig`` (ADA's CIFAR config).
        normalize_z: StyleGAN2: normalise z before the mapping network.
        layer_noise: StyleGAN2: noise mode of the per-layer noise injection, in training and
            sampling alike: ``random`` (NVlabs' ADA: a fresh N(0, 1) map per layer and sample),
            ``const`` (a fixed map per layer, drawn at construction and kept in the checkpoint)
            or ``none`` (no per-layer noise).  ``const`` and ``none`` leave z the generator's
            only randomness; ``generate(noise_mode=...)`` still overrides it per call.
        r1_gamma: R1 weight (StyleGAN2-ADA: 0.01 on CIFAR); 0 disables it.
        r1_interval: lazy R1 every this many D steps.
        pl_weight: path-length weight (StyleGAN2 backbone; ADA's CIFAR config: 0).
        pl_interval: lazy path length every this many G steps.
        style_mixing_prob: style mixing probability (StyleGAN2 backbone; ADA's CIFAR config: 0).
    """

    def __init__(
        self,
        noise: NoiseSpec = NoiseSpec(dim=128),
        backbone: Literal["dcgan", "biggan", "stylegan2_ada"] = "dcgan",
        resolution: int = 32,
        channels: int = 3,
        g_width: int = 64,
        d_width: int = 64,
        ch: Optional[int] = None,
        num_classes: int = 0,
        shared_dim: int = 128,
        attn_resolution: int = 0,
        hierarchical: bool = True,
        loss: LossName = "non_saturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        d_steps_per_g: int = 1,
        ema_kimg: float = 10.0,
        ema_rampup: Optional[float] = 0.05,
        augment: Literal["none", "ada"] = "none",
        augment_p: float = 0.0,
        ada_target: Optional[float] = 0.6,
        ada_kimg: float = 500.0,
        ada_interval: int = 4,
        w_dim: int = 512,
        mapping_layers: int = 8,
        channel_base: int = 16384,
        channel_max: int = 512,
        mbstd_group_size: int = 4,
        d_architecture: Literal["resnet", "orig"] = "resnet",
        normalize_z: bool = True,
        layer_noise: NoiseMode = "random",
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        style_mixing_prob: float = 0.0,
    ) -> None:
        super().__init__()
        noise = NoiseSpec.coerce(noise)
        self.save_hyperparameters(ignore=["noise"])
        self.hparams["noise"] = noise.to_dict()  # plain types: checkpoints load with weights_only
        if backbone not in BACKBONES:
            raise ValueError(f"unknown model.init_args.backbone {backbone!r}; expected one of: {', '.join(BACKBONES)}")
        if ch is not None:
            if ch < 1:
                raise ValueError(f"model.init_args.ch must be >= 1, got {ch}")
            g_width = d_width = ch
            channel_base, channel_max = 512 * ch, 8 * ch
        if num_classes < 0:
            raise ValueError(f"model.init_args.num_classes must be >= 0 (0: unconditional), got {num_classes}")
        self.num_classes = num_classes
        if layer_noise not in ("random", "const", "none"):
            raise ValueError(f"unknown model.init_args.layer_noise {layer_noise!r}; expected random, const or none")
        if layer_noise != "random" and backbone != "stylegan2_ada":
            raise ValueError(
                f"model.init_args.layer_noise {layer_noise!r} needs backbone: stylegan2_ada (the only backbone with "
                f"per-layer noise); backbone {backbone} takes z alone"
            )
        # The widths the networks are built with (after ch), registered in the run's hparams session.
        self.widths = (
            {"channel_base": channel_base, "channel_max": channel_max}
            if backbone == "stylegan2_ada"
            else {"g_width": g_width, "d_width": d_width}
        )
        if backbone == "dcgan":
            if num_classes:
                raise ValueError("model.init_args.num_classes > 0 needs backbone: biggan (the DCGAN is unconditional)")
            self.generator = DCGANGenerator(noise.dim, resolution, channels, g_width)
            self.discriminator = DCGANDiscriminator(resolution, channels, d_width)
        elif backbone == "stylegan2_ada":
            if num_classes:
                raise ValueError("model.init_args.num_classes > 0 needs backbone: biggan (StyleGAN2 here is unconditional)")
            self.generator = StyleGAN2Generator(
                noise.dim, w_dim, resolution, channels, channel_base, channel_max, mapping_layers,
                noise_injection="eni", normalize_z=normalize_z,
            )  # fmt: skip
            set_noise_mode(self.generator, layer_noise)  # before the EMA copy, which inherits it
            self.discriminator = StyleGAN2Discriminator(
                resolution, channels, channel_base, channel_max, d_architecture, mbstd_group_size
            )
        else:
            self.generator = BigGANGenerator(
                noise.dim, resolution, channels, g_width, num_classes, shared_dim, attn_resolution, hierarchical
            )
            self.discriminator = BigGANDiscriminator(resolution, channels, d_width, num_classes, attn_resolution)
        if augment not in ("none", "ada"):
            raise ValueError(f"unknown model.init_args.augment {augment!r}; expected none or ada")
        if not 0.0 <= augment_p <= 1.0:
            raise ValueError(f"model.init_args.augment_p must be in [0, 1], got {augment_p}")
        self.augment_pipe: Optional[AugmentPipe] = AugmentPipe(p=augment_p) if augment == "ada" else None
        self.ada: Optional[AdaptiveAugment] = None
        if self.augment_pipe is not None and ada_target is not None:
            self.ada = AdaptiveAugment(self.augment_pipe, ada_target, ada_kimg, ada_interval)
        self._init_adversarial(
            noise=noise,
            image_shape=(channels, resolution, resolution),
            loss=loss,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            ema_kimg=ema_kimg,
            ema_rampup=ema_rampup,
            d_steps_per_g=d_steps_per_g,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
            pl_weight=pl_weight,
            pl_interval=pl_interval,
            style_mixing_prob=style_mixing_prob,
        )

    session_keys = ("backbone", "ch", "num_classes", "augment", "loss")

    # ------------------------------------------------------------------ randomness budget
    def randomness_budget(self) -> dict[str, float]:
        """The shared parts; a conditional BigGAN adds ``labels``: log2(num_classes) bits.

        ``generate`` without labels feeds sample i the class ``i mod num_classes``: uniform
        frequencies (exactly, for batches that are multiples of ``num_classes``).  In training G
        takes the labels of the real batch instead, so its fakes carry the data's class entropy,
        at most log2(num_classes).
        """
        budget = super().randomness_budget()
        if self.hparams.backbone == "biggan" and self.num_classes > 1:
            budget["labels"] = math.log2(self.num_classes)
        return budget

    def session_hparams(self) -> dict[str, Any]:
        """The shared settings, the widths the networks were built with, and StyleGAN2's ``layer_noise``."""
        params = {**super().session_hparams(), **self.widths}
        if self.hparams.backbone == "stylegan2_ada":
            params["layer_noise"] = self.hparams.layer_noise
        return params

    # ------------------------------------------------------------------ conditioning
    def run_generator(
        self, net: torch.nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor], noise_mode: Optional[str]
    ) -> torch.Tensor:
        """BigGAN takes the labels (default ``i mod num_classes``); StyleGAN2 its noise mode."""
        if self.hparams.backbone != "biggan":
            return super().run_generator(net, z, labels, noise_mode)
        return net(z, self._check_labels(labels, z.shape[0]))

    def fake_images(self, batch_size: int, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.hparams.backbone != "biggan":  # the shared path: style mixing for StyleGAN2
            return super().fake_images(batch_size, labels)
        return self.run_generator(self.generator, self.sample_noise(batch_size).to(self._compute_dtype), labels, None)

    def critic(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """D's logits; in training, on ADA-augmented images when ``augment: ada``."""
        if self.training and self.augment_pipe is not None:
            images = self.augment_pipe(images)
        if self.hparams.backbone != "biggan":
            return self.discriminator(images)
        return self.discriminator(images, self._check_labels(labels, images.shape[0]))

    def discriminate(
        self, real: torch.Tensor, fake: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        real_logits, fake_logits = super().discriminate(real, fake, labels)
        if self.ada is not None:
            self.ada.accumulate(real_logits)  # r_t = E[sign(D(real))] (ADA Eq. 1), on augmented reals
        return real_logits, fake_logits

    # ------------------------------------------------------------------ ADA's p
    def _reduce_sum(self, sign_sum: float, count: int) -> tuple[float, int]:
        if self.trainer.world_size == 1:
            return sign_sum, count
        both = torch.tensor([sign_sum, float(count)], device=self.device, dtype=torch.float64)
        both = self.trainer.strategy.reduce(both, reduce_op="sum")
        return float(both[0]), int(both[1])

    def on_iteration_end(self, batch: Any, logs: dict[str, torch.Tensor]) -> None:
        """ADA's controller adjusts p every ``ada_interval`` iterations (ADA Sec. 2.3)."""
        if self.augment_pipe is None:
            return
        # Inside the step, not in on_train_batch_end: a checkpoint saved after this batch (callbacks
        # run before the module's on_train_batch_end) then holds the controller's state after it.
        if self.ada is not None:
            global_batch = self._images(batch).shape[0] * self.trainer.world_size
            if self.ada.step(global_batch, reduce=self._reduce_sum):
                logs["ada_rt"] = torch.tensor(self.ada.rt)
        logs["ada_p"] = torch.tensor(float(self.augment_pipe.p))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.ada is not None:
            checkpoint["ada_controller"] = self.ada.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.ada is not None and "ada_controller" in checkpoint:
            # The checkpoint holds rank 0's partial sums of r_t; other ranks restart theirs.
            rank = self.trainer.global_rank if self._trainer is not None else 0
            self.ada.load_state_dict(checkpoint["ada_controller"], keep_partial_sums=rank == 0)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.hparams.backbone == "biggan" and self.hparams.loss != "hinge":
            rank_zero_warn(f"BigGAN is trained with the hinge loss; this run uses model.init_args.loss={self.hparams.loss}")

    def custom_scalars(self) -> dict[str, Any]:
        layout = super().custom_scalars()
        if self.augment_pipe is not None:
            layout[type(self).__name__]["ADA (p and r_t)"] = ["Multiline", ["train/ada_p", "train/ada_rt"]]
        return layout
