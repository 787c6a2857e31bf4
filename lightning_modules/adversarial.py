"""The shared adversarial training recipe: one discriminator step, then one generator step.

Every GAN method here subclasses :class:`AdversarialModule`: it builds ``self.generator``
and ``self.discriminator`` (plain ``torch.nn``) and calls :meth:`AdversarialModule.
_init_adversarial` once; this class does the rest with Lightning manual optimisation
(``automatic_optimization = False``, ``self.optimizers()``, ``self.toggle_optimizer``,
``self.manual_backward``):

* noise from the run's :class:`~lightning_modules.noise.NoiseSpec`;
* the min-max game of the seed paper "Noise dimension of GAN", Eq. 2, with a loss from
  :mod:`lightning_modules.losses`; ``d_steps_per_g`` D steps (one per batch) per G step;
* an EMA of the generator's weights (``generator_ema``), used for samples and metrics;
* optional regularisers: lazy R1 on D (every ``r1_interval`` D steps) and, for style-based
  generators (``mapping`` + ``synthesis``, StyleGAN2), the path-length regulariser (every
  ``pl_interval`` G steps) and style mixing (:mod:`lightning_modules.regularizers`).  A lazy
  regulariser's loss, times its interval (StyleGAN2 Sec. 3.1), joins the main loss in the same
  Adam step; the reference code takes a separate step and rescales lr and betas by
  interval / (interval + 1) instead.  Folding keeps one D and one G step per iteration, so
  ``global_step`` still advances by 2 per batch;
* logging under ``train/`` and ``val/``; a TensorBoard custom-scalars layout;
* under DDP, each update averages the gradients of the network it steps
  (:mod:`lightning_modules.distributed`): no ``find_unused_parameters``, and the EMA copy
  never takes part in the synchronisation.

Hooks a method overrides instead of the steps: :meth:`AdversarialModule.fake_images` (G on
fresh noise), :meth:`AdversarialModule.critic` (D's logits on one batch) and
:meth:`AdversarialModule.discriminate` (on a real and a fake batch).  Each takes the
batch's class ``labels`` (``None`` for unlabelled batches), which unconditional methods
ignore and conditional ones (BigGAN) feed to G and D.

Step counting.  Lightning's ``trainer.global_step`` counts *optimiser* steps, so one GAN
iteration (D step + G step) advances it by 2: ``--trainer.max_steps`` and the ``step=``
in checkpoint names are optimiser steps.  TensorBoard's x-axis and ``log_every_n_steps``
count iterations (batches).  ``train/kimg`` logs thousands of real images shown to D.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from core.noise import NoiseSpec
from lightning_modules.distributed import backward_and_step, take_over_gradient_sync
from lightning_modules.losses import d_loss_fn, g_loss_fn
from lightning_modules.nets.ema import EMA, ema_beta
from lightning_modules.regularizers import PathLengthPenalty, r1_penalty

__all__ = ["AdversarialModule"]


class AdversarialModule(LightningModule):
    """Base class of the GAN methods (see the module docstring)."""

    generator: nn.Module
    discriminator: nn.Module
    generator_ema: EMA

    def _init_adversarial(
        self,
        *,
        noise: NoiseSpec,
        image_shape: tuple[int, int, int],
        loss: str,
        lr_g: float,
        lr_d: float,
        betas: tuple[float, float],
        ema_kimg: float,
        ema_rampup: Optional[float],
        d_steps_per_g: int = 1,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        style_mixing_prob: float = 0.0,
    ) -> None:
        """Set up the shared recipe; call after ``self.generator``/``self.discriminator`` exist.

        ``d_steps_per_g``: discriminator steps per generator step.  Each batch is one D step;
        the G step (and the EMA update) follows every ``d_steps_per_g``-th of them.
        """
        self.automatic_optimization = False
        self.noise = noise
        self.image_shape = tuple(image_shape)
        self.d_loss, self.g_loss = d_loss_fn(loss), g_loss_fn(loss)
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, tuple(betas)
        if ema_kimg < 0:
            raise ValueError(f"ema_kimg must be >= 0, got {ema_kimg}")
        self.ema_kimg, self.ema_rampup = ema_kimg, ema_rampup
        if isinstance(d_steps_per_g, bool) or not isinstance(d_steps_per_g, int) or d_steps_per_g < 1:
            raise ValueError(f"model.init_args.d_steps_per_g must be an integer >= 1, got {d_steps_per_g!r}")
        self.d_steps_per_g = d_steps_per_g
        self.d_steps = 0  # D steps taken so far (saved in checkpoints): places the G steps
        self._init_regularizers(r1_gamma, r1_interval, pl_weight, pl_interval, pl_batch_shrink, pl_decay,
                                style_mixing_prob)  # fmt: skip
        self.generator_ema = EMA(self.generator)
        # Real images shown to D so far, all processes together. A plain int (no device sync
        # per step), saved in checkpoints by on_save_checkpoint.
        self.images_seen = 0

    def _init_regularizers(
        self,
        r1_gamma: float,
        r1_interval: int,
        pl_weight: float,
        pl_interval: int,
        pl_batch_shrink: int,
        pl_decay: float,
        style_mixing_prob: float,
    ) -> None:
        for key, value in {"r1_interval": r1_interval, "pl_interval": pl_interval, "pl_batch_shrink": pl_batch_shrink}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.init_args.{key} must be an integer >= 1, got {value!r}")
        if r1_gamma < 0 or pl_weight < 0 or not 0 <= style_mixing_prob <= 1:
            raise ValueError(
                "model.init_args.r1_gamma and pl_weight must be >= 0 and style_mixing_prob in [0, 1]; "
                f"got {r1_gamma}, {pl_weight}, {style_mixing_prob}"
            )
        if (pl_weight > 0 or style_mixing_prob > 0) and not self.style_based:
            raise ValueError(
                "model.init_args.pl_weight and style_mixing_prob must be 0 for this generator: the path-length "
                "regulariser and style mixing need a style-based generator (w space), e.g. backbone stylegan2"
            )
        self.r1_gamma, self.r1_interval = float(r1_gamma), r1_interval
        self.pl_weight, self.pl_interval, self.pl_batch_shrink = float(pl_weight), pl_interval, pl_batch_shrink
        self.style_mixing_prob = float(style_mixing_prob)
        self.path_length = PathLengthPenalty(pl_decay) if pl_weight > 0 else None

    @property
    def style_based(self) -> bool:
        """Whether the generator is style-based: ``mapping`` (z -> ws) and ``synthesis`` (ws -> images)."""
        return hasattr(self.generator, "mapping") and hasattr(self.generator, "synthesis")

    def generator_forward(self, z: torch.Tensor, return_ws: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """G(z) as in training, and the ws it used (style-based generators; else None).

        With ``style_mixing_prob`` > 0, a batch takes, with that probability, the ws of a second
        z from a random layer on (StyleGAN Sec. 3.1, "mixing regularization").
        """
        z = z.to(self._compute_dtype)
        if not self.style_based:
            return self.generator(z), None
        g = self.generator
        ws = g.mapping(z)
        if self.style_mixing_prob > 0 and ws.shape[1] > 1 and torch.rand([]).item() < self.style_mixing_prob:
            cutoff = int(torch.randint(1, ws.shape[1], []).item())
            mixed = g.mapping(self.sample_noise(z.shape[0]).to(z.dtype))
            ws = torch.cat([ws[:, :cutoff], mixed[:, cutoff:]], dim=1)
        return g.synthesis(ws), (ws if return_ws else None)

    # ------------------------------------------------------------------ sampling API
    @property
    def _compute_dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype

    def sample_noise(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Noise for ``batch_size`` samples on this module's device, in the spec's format."""
        return self.noise.sample(batch_size, device=self.device, generator=generator)

    @torch.no_grad()
    def generate(self, z: Optional[torch.Tensor] = None, batch_size: int = 64, ema: bool = True) -> torch.Tensor:
        """Images in [-1, 1] from noise ``z`` (or ``batch_size`` fresh draws); EMA weights by default.

        The images come in the generator's dtype (float64 under ``--trainer.precision 64-true``).
        """
        if z is None:
            z = self.sample_noise(batch_size)
        net = self.generator_ema if ema else self.generator
        return net(z.to(self.device, self._compute_dtype))

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr_g, betas=self.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr_d, betas=self.betas)
        return [opt_g, opt_d]

    def setup(self, stage: str) -> None:
        if self._trainer is None:
            return
        data_shape = getattr(getattr(self.trainer, "datamodule", None), "image_shape", None)
        if data_shape is not None and tuple(data_shape) != self.image_shape:
            raise ValueError(
                f"the data gives images of shape {tuple(data_shape)} (channels, height, width) but the model "
                f"is built for {self.image_shape}: set model.init_args.resolution / channels to match the data"
            )

    def on_fit_start(self) -> None:
        take_over_gradient_sync(self)  # DDP: each step averages its own network's gradients
        if self.noise.format == "float64" and self._compute_dtype != torch.float64:
            rank_zero_warn(
                f"noise.format is float64 but the generator computes in {self._compute_dtype}: its first layer "
                "rounds the noise, so the output carries at most the entropy of that format. "
                "Use --trainer.precision 64-true to keep float64 noise."
            )
        self._warn_if_autocast_rounds_the_noise()
        # The noise entropy joins the run's hyperparameters (hparams.yaml, TensorBoard's HPARAMS
        # tab): the bridge between the theory (H(G(Z)) <= H(Z)) and training.
        entropy = {
            "noise/entropy_bits": self.noise.entropy_bits(),
            "noise/entropy_bits_per_dim": self.noise.entropy_bits_per_dim(),
        }
        for logger in self.loggers:
            logger.log_hyperparams(entropy, metrics=entropy if isinstance(logger, TensorBoardLogger) else None)
        if isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero:
            self.logger.experiment.add_custom_scalars(self.custom_scalars())

    def _warn_if_autocast_rounds_the_noise(self) -> None:
        """Under ``bf16-mixed`` / ``16-mixed`` the generator's first layer rounds the noise to the autocast format."""
        autocast = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}.get(str(self.trainer.precision))
        if autocast is None:
            return
        kept, logged = self.noise.entropy_bits_per_dim_in(autocast), self.noise.entropy_bits_per_dim()
        if kept < logged:
            rank_zero_warn(
                f"--trainer.precision {self.trainer.precision}: the generator's first layer computes in {autocast} "
                f"and rounds the {self.noise.format} noise to it, so the noise carries at most {kept:.4f} bits per "
                f"dimension ({self.noise.dim * kept:.1f} per sample), not the {logged:.4f} "
                f"({self.noise.entropy_bits():.1f}) logged as noise/entropy_bits. Use noise.format: {autocast} to "
                "make the logged entropy the run's, or --trainer.precision 32-true to keep the noise's."
            )

    def custom_scalars(self) -> dict[str, Any]:
        """TensorBoard custom-scalars layout: the method's curves grouped on one page."""
        name = type(self).__name__
        return {
            name: {
                "losses": ["Multiline", ["train/loss_d", "train/loss_g"]],
                "discriminator logits": ["Multiline", ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"]],
                # Filled when the run has a callbacks.GenerativeMetrics.
                "FID and KID": ["Multiline", ["metrics/fid", "metrics/kid_mean"]],
                "precision and recall": ["Multiline", ["metrics/precision", "metrics/recall"]],
                "regularisers": ["Multiline", ["train/r1_penalty", "train/pl_penalty", "train/pl_mean"]],
            }
        }

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    @staticmethod
    def _labels(batch: Any) -> Optional[torch.Tensor]:
        """The batch's class labels (``(images, labels)`` batches), else ``None``."""
        if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
            return batch[1]
        return None

    def fake_images(self, batch_size: int, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """G's images from ``batch_size`` fresh noise draws (``labels``: for conditional methods)."""
        return self.generator_forward(self.sample_noise(batch_size))[0]

    def critic(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """D's logits on one batch (``labels``: for conditional methods)."""
        return self.discriminator(images)

    def discriminate(
        self, real: torch.Tensor, fake: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on a real and a generated batch (two forward passes; methods may batch them)."""
        return self.critic(real, labels), self.critic(fake, labels)

    def _penalty_grad_scale(self) -> float:
        """The loss scale of ``16-mixed`` (1 otherwise), for the inner gradients of R1 and path length."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0

    def discriminator_step(self, real: torch.Tensor, labels: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Update D on a real batch and as many fakes (Eq. 2, the max over f), with lazy R1."""
        opt_d = self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        do_r1 = self.r1_gamma > 0 and self.d_steps % self.r1_interval == 0
        with torch.no_grad():
            fake = self.fake_images(real.shape[0], labels)
        real = real.detach().requires_grad_(do_r1)
        real_logits, fake_logits = self.discriminate(real, fake, labels)
        loss = self.d_loss(real_logits, fake_logits)
        logs = {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if do_r1:  # gamma / 2 * E|grad_x D(x)|^2, times the interval (lazy regularisation)
            penalty = r1_penalty(real, real_logits, self._penalty_grad_scale())
            loss = loss + penalty * (self.r1_gamma / 2) * self.r1_interval
            logs["r1_penalty"] = penalty.detach()
        backward_and_step(self, opt_d, loss)
        self.untoggle_optimizer(opt_d)
        return logs

    def generator_step(self, batch_size: int, labels: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Update G against the current D (Eq. 2, the min over theta), with the lazy path-length penalty."""
        opt_g = self.optimizers()[0]
        self.toggle_optimizer(opt_g)
        fake = self.fake_images(batch_size, labels)
        loss = self.g_loss(self.critic(fake, labels))
        logs = {"loss_g": loss.detach()}
        g_steps_before = self.d_steps // self.d_steps_per_g - 1  # this G step's index (d_steps counts this batch)
        if self.path_length is not None and g_steps_before % self.pl_interval == 0:
            images, ws = self.generator_forward(self.sample_noise(max(1, batch_size // self.pl_batch_shrink)), True)
            penalty = self.path_length(images, ws, self._penalty_grad_scale())
            loss = loss + penalty * self.pl_weight * self.pl_interval
            logs.update(pl_penalty=penalty.detach(), pl_mean=self.path_length.pl_mean.detach().clone())
        backward_and_step(self, opt_g, loss)
        self.untoggle_optimizer(opt_g)
        return logs

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, labels = self._images(batch), self._labels(batch)
        logs = self.discriminator_step(real, labels)
        self.d_steps += 1
        global_batch = real.shape[0] * self.trainer.world_size
        self.images_seen += global_batch
        if self.d_steps % self.d_steps_per_g == 0:
            logs.update(self.generator_step(real.shape[0], labels))
            beta = ema_beta(global_batch * self.d_steps_per_g, self.ema_kimg, self.images_seen, self.ema_rampup)
            self.generator_ema.update(self.generator, beta)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=True)
        self.log("train/kimg", self.images_seen / 1000.0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["images_seen"] = self.images_seen
        checkpoint["d_steps"] = self.d_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.images_seen = int(checkpoint.get("images_seen", 0))
        self.d_steps = int(checkpoint.get("d_steps", 0))

    def _evaluate(self, batch: Any, split: str) -> None:
        """D's mean logits on held-out reals and on EMA samples: a growing gap shows D overfitting."""
        real, labels = self._images(batch), self._labels(batch)
        fake = self.generate(batch_size=real.shape[0])
        self.log_dict(
            {f"{split}/d_real": self.critic(real, labels).mean(), f"{split}/d_fake": self.critic(fake).mean()},
            sync_dist=True,
        )

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """As many EMA samples (images in [-1, 1]) as the batch has images."""
        return self.generate(batch_size=self._images(batch).shape[0])
