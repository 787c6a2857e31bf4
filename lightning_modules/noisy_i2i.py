r"""NoisyI2I: paired image-to-image translation (pix2pix) trained with Gaussian noise injection.

Seed poster "On the analysis of GAN-based image-to-image translation using Gaussian noise
injection" (Shi et al.).  The translator G maps a source image x to a target y; the
conditional GAN objective is the poster's

    min_G max_D  E_y[log D(y)] + E_{x,y}[log(1 - D(G(x)))]

(conditioned on x as in pix2pix, Isola et al. 2017, Eq. 1) plus pix2pix's L1 term
lambda_L1 E||y - G(x)||_1 (pix2pix Eq. 3-4).  **Noise injection**: in training the source is
replaced by

    x_bar = x + sigma_t N,   N ~ N(0, I) per pixel,

on the project's **[-1, 1] image scale** (a variance sigma_t^2 here is sigma_t^2 / 4 on
[0, 1] and sigma_t^2 * 127.5^2 on [0, 255]); x_bar is not clipped, as in the theory.
``sigma_t2 = 0`` is the baseline: no noise is drawn at all, so training is exactly
pix2pix's.  The poster's Theorem 1 says aligning the noise-perturbed joint distributions
also aligns the clean ones for small sigma_t; the corollary "Training Noise Intensity"
picks sigma_t^2 = lambda_max / 2 for inference noise of power up to lambda_max
(:mod:`analysis.i2i_noise`, :class:`callbacks.NoiseRobustness`).

Optionally (``feature_noise``) Gaussian noise also enters the generator's encoder
features (the poster's "G Noise Injection" figure leaves the place open; see
:mod:`lightning_modules.nets.pix2pix`).

Noise draws come from a generator of their own, reseeded every optimiser step from
(``noise_seed``, global step, global rank): ranks draw different noise, the global random
stream (dropout, data order) is the same with or without injection, and a resumed run
draws exactly the noise an uninterrupted one would.  In evaluation (``translate``, val,
test, predict) no training noise is added unless ``eval_noise`` is set (then x_bar, and
the feature noise, are used there too, drawn from a generator seeded once per evaluation
loop); robustness to inference noise is measured by :class:`callbacks.NoiseRobustness`.

Recipe (pix2pix, Sec. 3.3 and App. 6.2): one D step then one G step per batch, D's loss
halved, Adam lr 2e-4, betas (0.5, 0.999), lambda_L1 = 100; G has dropout in training and
is run in eval mode (dropout off, BatchNorm running statistics) at evaluation.  The loop is
the shared :class:`~lightning_modules.adversarial.AdversarialLoop` (no noise z and no EMA
copy): :meth:`NoisyI2I.prepare_batch` draws the noisy inputs once per iteration, and
:meth:`NoisyI2I.d_loss` / :meth:`NoisyI2I.g_loss` are pix2pix's losses.  A translator has
no ``generate``; :meth:`NoisyI2I.translate` is its sampling API.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from core.seeding import seeded_generator
from lightning_modules.adversarial import AdversarialLoop, Losses, gaussian_bits
from lightning_modules.losses import LossName, d_loss_fn, g_loss_fn
from lightning_modules.nets.pix2pix import (
    FeatureNoise,
    FeatureNoiseSite,
    NormName,
    PatchGANDiscriminator,
    UNetGenerator,
)
from lightning_modules.reconstruction import ReconstructionMetrics

__all__ = ["NoisyI2I"]


class NoisyI2I(AdversarialLoop):
    """pix2pix trained on source images with additive Gaussian noise of variance ``sigma_t2``.

    Batches are ``(input, target)`` pairs in [-1, 1] (:mod:`datamodules.paired`).

    Args:
        channels: channels of the input (source) images.
        out_channels: channels of the target images; ``null`` for the same as ``channels``.
        resolution: image side (a power of two >= 4); must match the data.
        sigma_t2: training-noise variance sigma_t^2 on the [-1, 1] scale; 0 is the baseline.
        noise_seed: seeds the training-noise draws (see the module docstring).
        feature_noise: Gaussian noise in G's encoder features too: ``none``, ``bottleneck``
            (the innermost code) or ``encoder`` (every encoder output).
        feature_noise_sigma2: its variance (features, not pixels).
        eval_noise: add the training noise (sigma_t2 and the feature noise) in validation,
            test, predict and ``translate`` too; off (the default) evaluates G on the
            inputs as given.
        g_width: first-layer channels of the U-Net (pix2pix ``ngf`` 64).
        g_max_width: channel cap of the U-Net (512).
        dropout: dropout rate in the U-Net's three innermost decoder layers (pix2pix 0.5).
        d_width: first-layer channels of the PatchGAN (pix2pix ``ndf`` 64).
        d_max_width: channel cap of the PatchGAN (512).
        d_layers: PatchGAN depth (3: the 70x70 PatchGAN; 2 suits 32 px images).
        norm: ``batch`` (pix2pix), ``instance`` or ``none`` in both networks.
        loss: adversarial loss on D's patch logits: ``non_saturating`` (pix2pix's
            "vanilla" GAN loss) or ``hinge``.
        lambda_adv: weight of G's adversarial loss.
        lambda_l1: weight of the L1 reconstruction loss (pix2pix 100).
        d_loss_weight: factor on D's loss (pix2pix 0.5, "slows down the rate at which D
            learns relative to G").
        lr_g: generator Adam learning rate.
        lr_d: discriminator Adam learning rate.
        betas: Adam (beta1, beta2) for both.
        val_examples: image triplets (input | output | target) logged to TensorBoard at
            each validation; 0 for none.
    """

    def __init__(
        self,
        channels: int = 3,
        out_channels: Optional[int] = None,
        resolution: int = 256,
        sigma_t2: float = 0.0,
        noise_seed: int = 0,
        feature_noise: FeatureNoiseSite = "none",
        feature_noise_sigma2: float = 0.0,
        eval_noise: bool = False,
        g_width: int = 64,
        g_max_width: int = 512,
        dropout: float = 0.5,
        d_width: int = 64,
        d_max_width: int = 512,
        d_layers: int = 3,
        norm: NormName = "batch",
        loss: LossName = "non_saturating",
        lambda_adv: float = 1.0,
        lambda_l1: float = 100.0,
        d_loss_weight: float = 0.5,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        val_examples: int = 8,
    ) -> None:
        super().__init__()
        for key, value in (("sigma_t2", sigma_t2), ("feature_noise_sigma2", feature_noise_sigma2)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"model.init_args.{key} must be a variance >= 0, got {value}")
        self.save_hyperparameters()
        out_channels = channels if out_channels is None else out_channels
        self.input_shape = (channels, resolution, resolution)
        self.image_shape = (out_channels, resolution, resolution)
        self.sigma_t2 = float(sigma_t2)
        self.generator = UNetGenerator(
            channels,
            out_channels,
            resolution,
            g_width,
            g_max_width,
            norm,
            dropout,
            feature_noise=feature_noise,
            feature_noise_sigma=math.sqrt(feature_noise_sigma2),
        )
        self.discriminator = PatchGANDiscriminator(channels, out_channels, d_width, d_max_width, d_layers, norm)
        self.adversarial_d_loss, self.adversarial_g_loss = d_loss_fn(loss), g_loss_fn(loss)
        self._init_loop(image_shape=self.image_shape, lr_g=lr_g, lr_d=lr_d, betas=betas)
        self.val_metrics = ReconstructionMetrics(prefix="val/")
        self.test_metrics = ReconstructionMetrics(prefix="test/")
        self._noise_rng: Optional[torch.Generator] = None
        self._eval_rng: Optional[torch.Generator] = None
        self._val_batch: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    session_keys = ("sigma_t2", "feature_noise", "feature_noise_sigma2", "eval_noise", "dropout", "g_width", "d_width",
                    "norm", "lambda_l1")  # fmt: skip

    # ------------------------------------------------------------------ randomness budget
    def randomness_budget(self) -> dict[str, float]:
        """What a translation receives beside x: the shared parts and the evaluation noise.

        ``z`` is 0 (a translator has no noise z) and so is ``dropout``: ``translate`` and the
        val/test/predict loops run G in eval mode, where its dropout draws nothing (pix2pix
        keeps dropout on at test time; this project does not).  With ``eval_noise`` the
        evaluation path receives the training noise: ``input_noise``, sigma_t N on every input
        value (C x H x W Gaussian values per image; sigma_t2 > 0), and ``feature_noise``, one
        Gaussian value per encoder feature it perturbs (feature_noise_sigma2 > 0).  Without
        ``eval_noise`` both are 0: G(x) is a function of x.
        """
        budget = super().randomness_budget()
        evaluated = bool(self.hparams.eval_noise)
        inputs = math.prod(self.input_shape) if evaluated and self.sigma_t2 > 0 else 0
        features = self._feature_noise_values() if evaluated else 0
        # drawn in the input's dtype
        budget["input_noise"] = gaussian_bits(inputs, self._compute_dtype, self.device.type)
        budget["feature_noise"] = gaussian_bits(features, self._activation_dtype, self.device.type)
        return budget

    def _feature_noise_values(self) -> int:
        """Values of the encoder features :class:`FeatureNoise` perturbs, per image (0 when its sigma is 0)."""
        if self.hparams.feature_noise_sigma2 == 0:
            return 0
        side = self.input_shape[-1]  # encoder level i outputs side / 2^(i + 1)
        return sum(self.generator.down[int(i)].conv.out_channels * (side >> (int(i) + 1)) ** 2
                   for i in self.generator.feature_noise)  # fmt: skip

    def session_metrics(self, stage: str) -> list[str]:
        """PSNR and SSIM of the translations (``val/`` in a fit, ``test/`` in a test), then the callbacks'."""
        split = "test" if stage == "test" else "val"
        return [f"{split}/psnr", f"{split}/ssim", *super().session_metrics(stage)]

    # ------------------------------------------------------------------ noise injection
    _seeded = staticmethod(seeded_generator)

    def _feature_noise(self, generator: Optional[torch.Generator], force: bool) -> None:
        for module in self.generator.modules():
            if isinstance(module, FeatureNoise):
                module.generator, module.force = generator, force

    def _rank(self) -> int:
        return self.trainer.global_rank if self._trainer is not None else 0

    def _training_noise_generator(self) -> torch.Generator:
        """The training-noise generator, reseeded from (noise_seed, global step, rank)."""
        step = self.trainer.global_step if self._trainer is not None else 0
        self._noise_rng = self._seeded(self._noise_rng, self.device, self.hparams.noise_seed, step, self._rank())
        self._feature_noise(self._noise_rng, force=False)
        return self._noise_rng

    def noisy_input(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """x_bar = x + sigma_t N; ``x`` itself (nothing drawn) when sigma_t^2 = 0."""
        if self.sigma_t2 == 0.0:
            return x
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + math.sqrt(self.sigma_t2) * noise

    def _start_eval_noise(self, stage: int) -> None:
        """Seed the evaluation-noise generator for one val/test/predict loop (``eval_noise`` only)."""
        if self.hparams.eval_noise:
            self._eval_rng = self._seeded(
                self._eval_rng, self.device, self.hparams.noise_seed, 1 << 32, stage, self._rank()
            )
            self._feature_noise(self._eval_rng, force=True)

    def _eval_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.hparams.eval_noise:
            return x
        if self._eval_rng is None:
            self._start_eval_noise(0)
        return self.noisy_input(x, self._eval_rng)

    # ------------------------------------------------------------------ translation API
    @torch.no_grad()
    def translate(
        self, x: torch.Tensor, noise: Optional[bool] = None, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """G(x) in eval mode (dropout off, BatchNorm running statistics), images in [-1, 1].

        Args:
            x: source images ``[N, C, H, W]`` in [-1, 1].
            noise: add the training noise (sigma_t2 and feature noise) first; ``None``
                follows ``eval_noise``.
            generator: draws that noise (default: the global random stream).
        """
        noise = self.hparams.eval_noise if noise is None else noise
        was_training = self.generator.training
        self.generator.eval()
        x = x.to(self.device)
        try:
            self._feature_noise(generator if noise else None, force=bool(noise))
            if noise:
                x = self.noisy_input(x, generator)
            return self.generator(x)
        finally:
            self._feature_noise(None, force=False)
            self.generator.train(was_training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    # ------------------------------------------------------------------ Lightning hooks
    def data_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"image_shape": self.image_shape, "input_shape": self.input_shape}

    def custom_scalars(self) -> dict[str, Any]:
        """TensorBoard custom-scalars layout: losses, D's logits, reconstruction quality."""
        return {
            type(self).__name__: {
                "losses": ["Multiline", ["train/loss_d", "train/loss_g_adv", "train/loss_l1"]],
                "discriminator logits": ["Multiline", ["train/d_real", "train/d_fake"]],
                "PSNR": ["Multiline", ["val/psnr", "test/psnr"]],
                "SSIM": ["Multiline", ["val/ssim", "test/ssim"]],
            }
        }

    progress_bar_keys = ("loss_d", "loss_g", "loss_g_adv", "loss_l1", "d_real", "d_fake")

    def prepare_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_bar, y)``: the source with this step's training noise, shared by D's and G's update."""
        x, y = batch
        return self.noisy_input(x, self._training_noise_generator()), y

    def d_loss(self, batch: Any) -> Losses:
        """D's loss on real pairs (x_bar, y) against translated ones (x_bar, G(x_bar)), times ``d_loss_weight``."""
        x_bar, y = batch
        with torch.no_grad():
            fake = self.generator(x_bar)
        real_logits, fake_logits = self.discriminator(x_bar, y), self.discriminator(x_bar, fake)
        loss = self.hparams.d_loss_weight * self.adversarial_d_loss(real_logits, fake_logits)
        logs = {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        return loss, logs

    def g_loss(self, batch: Any) -> Losses:
        """G's loss: fool the updated D and stay close to the target in L1 (pix2pix Eq. 4)."""
        x_bar, y = batch
        fake = self.generator(x_bar)
        loss_adv = self.adversarial_g_loss(self.discriminator(x_bar, fake))
        loss_l1 = F.l1_loss(fake, y)
        loss = self.hparams.lambda_adv * loss_adv + self.hparams.lambda_l1 * loss_l1
        return loss, {"loss_g": loss.detach(), "loss_g_adv": loss_adv.detach(), "loss_l1": loss_l1.detach()}

    def on_validation_epoch_start(self) -> None:
        self._start_eval_noise(1)

    def on_test_epoch_start(self) -> None:
        self._start_eval_noise(2)

    def on_predict_epoch_start(self) -> None:
        self._start_eval_noise(3)

    def _evaluate(self, batch: Any, metrics: ReconstructionMetrics, prefix: str) -> torch.Tensor:
        x, y = batch
        out = self.generator(self._eval_input(x))  # eval mode: Lightning puts the module in eval for val/test
        metrics.update(out, y)
        self.log(f"{prefix}/l1", F.l1_loss(out, y), sync_dist=True)
        self.log_dict(metrics, sync_dist=True)
        return out

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")
        if batch_idx == 0 and self.hparams.val_examples > 0:
            self._val_batch = tuple(t[: self.hparams.val_examples] for t in batch)  # type: ignore[assignment]

    def _end_eval_noise(self) -> None:
        """After a val/test/predict loop the generator is clean again (eval mode adds nothing)."""
        self._feature_noise(None, force=False)

    def on_test_epoch_end(self) -> None:
        self._end_eval_noise()

    def on_predict_epoch_end(self) -> None:
        self._end_eval_noise()

    def on_validation_epoch_end(self) -> None:
        self._end_eval_noise()
        if self._val_batch is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        x, y = self._val_batch
        out = self.generator(x)  # the clean input, so the grid shows the same inputs every epoch
        # One row per example: input | output | target (grey inputs repeated to the output's channels).
        rows = torch.stack([x.expand_as(out) if x.shape[1] == 1 else x, out, y], dim=1).flatten(0, 1)
        grid = make_grid(rows.float().clamp(-1, 1), nrow=3, normalize=True, value_range=(-1, 1))
        if isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_image("i2i/val_input_output_target", grid, self.trainer.global_step)
        self._val_batch = None

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Translations of the batch's inputs (images in [-1, 1])."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.generator(self._eval_input(x))
