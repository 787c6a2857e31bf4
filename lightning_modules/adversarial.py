"""The shared adversarial training recipe: one template training step that every GAN method fits.

Two classes, one loop:

* :class:`AdversarialLoop` owns the loop, with Lightning manual optimisation
  (``automatic_optimization = False``): per batch, :meth:`~AdversarialLoop.prepare_batch`, one
  discriminator update on :meth:`~AdversarialLoop.d_loss`, and every ``d_steps_per_g``-th batch
  one generator update on :meth:`~AdversarialLoop.g_loss` followed by the EMA update; then
  :meth:`~AdversarialLoop.on_iteration_end`.  Each update toggles its optimiser, backpropagates
  with ``manual_backward``, averages the gradients of the network it steps under DDP
  (:mod:`lightning_modules.distributed`: no ``find_unused_parameters``; the EMA copy and frozen
  networks never take part) and steps.  It also counts the real images shown to D
  (``images_seen``, logged as ``train/kimg``) and the D steps (``d_steps``, which places the G
  steps and the lazy regularisers; both saved in checkpoints), checks the data's image shape
  against the model's, builds the two Adam optimisers and logs every loss term under ``train/``.
* :class:`AdversarialModule` adds what the noise-to-image GANs share: the noise z from the run's
  :class:`~core.noise.NoiseSpec` (its entropy joins the hyperparameters), the
  min-max game of the seed paper "Noise dimension of GAN", Eq. 2, as the default ``d_loss`` /
  ``g_loss`` (a loss from :mod:`lightning_modules.losses`), the optional regularisers -- lazy R1
  on D (every ``r1_interval`` D steps) and, for style-based generators (``mapping`` +
  ``synthesis``, StyleGAN2), the path-length regulariser (every ``pl_interval`` G steps) and
  style mixing (:mod:`lightning_modules.regularizers`) -- and one sampling API,
  ``generate(z=None, *, labels=None, batch_size=64, ema=True, noise_mode=None)``.

A lazy regulariser's loss, times its interval (StyleGAN2 Sec. 3.1), joins the main loss in the
same Adam step; NVlabs' code takes a separate step and rescales lr and betas by
interval / (interval + 1) instead.  Folding keeps one D and one G step per iteration, so
``global_step`` still advances by 2 per batch.

A method supplies its networks and losses, never the loop:

* ``d_loss(batch) -> (loss, logs)`` and ``g_loss(batch) -> (loss, logs)``: the scalar to
  minimise and the detached terms to log (``logs`` without the ``train/`` prefix);
* optionally ``prepare_batch(batch)`` (once per iteration, before D's update: e.g. NoisyI2I's
  noisy inputs, shared by both updates), ``on_iteration_end(batch, logs)`` (after both: e.g.
  GANZ's k_t controller, ADA's p) and the sampling hooks of :class:`AdversarialModule`
  (``generator_input``, ``fake_images``, ``critic``, ``discriminate``);
* frozen pretrained networks go in a :class:`~lightning_modules.frozen.Frozen` wrapper.

What a run registers.  At the start of every ``fit`` and ``test`` the loop logs the generator's
randomness budget (:meth:`AdversarialLoop.randomness_budget`: bits per generated sample of each
random input at sampling time; ``noise/budget_bits`` and ``noise/budget/<part>``, with the noise
entropy ``noise/entropy_bits`` / ``noise/entropy_bits_ideal``) into ``hparams.yaml`` and as
scalars, and registers one TensorBoard hparams session per run
(:func:`register_hparams_session`): the method's key settings (:meth:`AdversarialLoop.session_hparams`)
as hyperparameters, and the final metrics the run logs (the module's
:meth:`AdversarialLoop.session_metrics` plus every callback's ``hparams_metrics()``) as its metrics.

Step counting.  Lightning's ``trainer.global_step`` counts *optimiser* steps, so one GAN
iteration (D step + G step) advances it by 2: ``--trainer.max_steps`` and the ``step=``
in checkpoint names are optimiser steps.  TensorBoard's x-axis and ``log_every_n_steps``
count iterations (batches).  ``train/kimg`` logs thousands of real images shown to D.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from core.noise import NoiseSpec
from lightning_modules.distributed import backward_and_step, take_over_gradient_sync
from lightning_modules.losses import d_loss_fn, g_loss_fn
from lightning_modules.nets.ema import EMA, ema_beta
from lightning_modules.nets.noise_injection import NoiseInjection
from lightning_modules.regularizers import PathLengthPenalty, r1_penalty

__all__ = ["AdversarialLoop", "AdversarialModule", "Losses", "gaussian_bits", "register_hparams_session"]

Losses = tuple[torch.Tensor, dict[str, torch.Tensor]]
"""What ``d_loss`` and ``g_loss`` return: the loss to minimise and the detached terms to log."""


#: The dtype a layer computes in under each mixed precision (its outputs, and noise drawn like them).
_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def gaussian_bits(values: int, dtype: torch.dtype, device: str = "cpu") -> float:
    """Entropy in bits, as drawn on ``device``, of ``values`` N(0, 1) scalars drawn in ``dtype`` by one call per sample.

    Computed by the noise spec (``NoiseSpec(dim=values, distribution="gaussian").entropy_bits(device)``),
    so it counts what torch draws exactly as the spec counts z (0 for no values).
    """
    if values <= 0:
        return 0.0
    fmt = str(dtype).removeprefix("torch.")
    spec = NoiseSpec(dim=int(values), distribution="gaussian", format=fmt)  # type: ignore[arg-type]
    return spec.entropy_bits(device)


def register_hparams_session(logger: TensorBoardLogger, params: dict[str, Any], metrics: list[str]) -> None:
    """Write one TensorBoard hparams session into ``logger``'s run: ``params``, and ``metrics`` as its metric tags.

    What ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes (the experiment, the
    session start and end), without logging placeholder values for the metrics: the HPARAMS tab
    shows, for each metric tag, the last scalar the run logs under it.  ``None`` values are
    left out; values that are not numbers, strings or booleans are written as strings.
    """
    from torch.utils.tensorboard.summary import hparams

    clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items() if v is not None}
    writer = logger.experiment._get_file_writer()
    for summary in hparams(clean, dict.fromkeys(metrics, 0.0)):
        writer.add_summary(summary)
    writer.flush()


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.init_args.{key} must be an integer >= 1, got {value!r}")
    return value


class AdversarialLoop(LightningModule):
    """The template training step of every GAN method (see the module docstring).

    A subclass builds ``self.generator`` and ``self.discriminator`` (plain ``torch.nn``), calls
    :meth:`_init_loop` once, and implements :meth:`d_loss` and :meth:`g_loss`.
    """

    generator: nn.Module
    discriminator: nn.Module
    generator_ema: Optional[EMA]
    progress_bar_keys: tuple[str, ...] = ("loss_d", "loss_g")
    """The logged terms also shown in the progress bar."""
    session_keys: tuple[str, ...] = ()
    """The ``__init__`` arguments (``hparams`` keys) registered as hyperparameters of the run's TensorBoard session."""

    def _init_loop(
        self,
        *,
        image_shape: tuple[int, int, int],
        lr_g: float,
        lr_d: float,
        betas: tuple[float, float],
        d_steps_per_g: int = 1,
        ema_kimg: Optional[float] = None,
        ema_rampup: Optional[float] = None,
    ) -> None:
        """Set up the loop; call after ``self.generator`` / ``self.discriminator`` exist.

        Args:
            image_shape: (channels, height, width) of the images D sees; checked against the
                data's ``image_shape`` in :meth:`setup`.
            lr_g: generator Adam learning rate.
            lr_d: discriminator Adam learning rate.
            betas: Adam (beta1, beta2) for both networks.
            d_steps_per_g: discriminator steps per generator step.  Each batch is one D step;
                the G step (and the EMA update) follows every ``d_steps_per_g``-th of them.
            ema_kimg: half-life of the generator EMA (``generator_ema``) in thousands of
                images; ``None`` keeps no EMA copy (``generator_ema`` is ``None``).
            ema_rampup: cap the EMA half-life at this fraction of the images seen.
        """
        self.automatic_optimization = False
        self.image_shape = tuple(image_shape)
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, tuple(betas)
        self.d_steps_per_g = _positive_int("d_steps_per_g", d_steps_per_g)
        if ema_kimg is not None and ema_kimg < 0:
            raise ValueError(f"model.init_args.ema_kimg must be >= 0, got {ema_kimg}")
        self.ema_kimg, self.ema_rampup = ema_kimg, ema_rampup
        self.generator_ema = EMA(self.generator) if ema_kimg is not None else None
        self.d_steps = 0  # D steps taken so far (saved in checkpoints): places the G steps
        # Real images shown to D so far, all processes together. A plain int (no device sync
        # per step), saved in checkpoints by on_save_checkpoint.
        self.images_seen = 0

    # ------------------------------------------------------------------ what a method supplies
    def d_loss(self, batch: Any) -> Losses:
        """D's loss on one (prepared) batch and the terms to log; ``loss_d`` among them."""
        raise NotImplementedError(f"{type(self).__name__} must implement d_loss(batch)")

    def g_loss(self, batch: Any) -> Losses:
        """G's loss on one (prepared) batch, against the current D, and the terms to log."""
        raise NotImplementedError(f"{type(self).__name__} must implement g_loss(batch)")

    def prepare_batch(self, batch: Any) -> Any:
        """The batch both updates of this iteration see (called once, before D's update)."""
        return batch

    def on_iteration_end(self, batch: Any, logs: dict[str, torch.Tensor]) -> None:
        """After the iteration's updates (and the EMA's); may add terms to ``logs``."""

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    @staticmethod
    def _labels(batch: Any) -> Optional[torch.Tensor]:
        """The batch's class labels (``(images, labels)`` batches), else ``None``."""
        if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
            return batch[1]
        return None

    # ------------------------------------------------------------------ the loop
    def _update(self, optimizer: Any, loss_fn: Callable[[Any], Losses], batch: Any) -> dict[str, torch.Tensor]:
        """One optimiser step of one network on ``loss_fn(batch)``; returns the terms to log."""
        self.toggle_optimizer(optimizer)
        loss, logs = loss_fn(batch)
        backward_and_step(self, optimizer, loss)
        self.untoggle_optimizer(optimizer)
        return logs

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One GAN iteration; methods change it through the hooks, never by overriding it."""
        opt_g, opt_d = self.optimizers()
        batch = self.prepare_batch(batch)
        logs = self._update(opt_d, self.d_loss, batch)
        self.d_steps += 1
        global_batch = self._images(batch).shape[0] * self.trainer.world_size
        self.images_seen += global_batch
        if self.d_steps % self.d_steps_per_g == 0:
            logs.update(self._update(opt_g, self.g_loss, batch))
            if self.generator_ema is not None:
                beta = ema_beta(global_batch * self.d_steps_per_g, self.ema_kimg, self.images_seen, self.ema_rampup)
                self.generator_ema.update(self.generator, beta)
        self.on_iteration_end(batch, logs)
        shown = {f"train/{k}": v for k, v in logs.items() if k in self.progress_bar_keys}
        self.log_dict(shown, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in logs.items() if k not in self.progress_bar_keys})
        self.log("train/kimg", self.images_seen / 1000.0)

    # ------------------------------------------------------------------ randomness budget
    @property
    def _compute_dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype

    @property
    def _activation_dtype(self) -> torch.dtype:
        """The dtype of the generator's activations: the autocast dtype under mixed precision."""
        precision = str(self.trainer.precision) if self._trainer is not None else ""
        return _AUTOCAST_DTYPES.get(precision, self._compute_dtype)

    @property
    def sampling_network(self) -> nn.Module:
        """The network ``generate`` samples by default: the EMA copy where there is one, else G."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    def randomness_budget(self) -> dict[str, float]:
        """Bits of randomness a generated sample receives, per random input of the generator, at sampling time.

        The parts (entropy per sample, bits; each an upper bound on what it adds to H(G)):

        * ``z``: the noise z (the noise spec's entropy as drawn; 0 without one);
        * ``injected``: per-layer injected Gaussian noise (StyleGAN2, RNI) in the layers' own
          noise mode: in ``random`` mode the values one sample draws (an H x W map per layer)
          times the entropy of one value as drawn; ``const`` and ``none`` draw nothing;
        * ``labels``: class labels a conditional generator is fed (0 here);
        * ``dropout``: Bernoulli draws of dropout active at sampling time, times H(p).  Sampling
          (``generate`` in the evaluation loops and the callbacks, NoisyI2I's ``translate``)
          runs the generator in eval mode, where ``torch.nn.Dropout`` draws nothing: 0.

        Methods add their own stochastic inputs (DE-GAN's encoder sample, NoisyI2I's
        evaluation noise).  Logged as ``noise/budget_bits`` (the sum) and ``noise/budget/<part>``.
        """
        return {"z": 0.0, "injected": self._injected_bits(), "labels": 0.0, "dropout": 0.0}

    def _injected_bits(self) -> float:
        """Entropy of the per-layer noise one sample draws in the sampling network's default noise modes."""
        return sum(
            gaussian_bits(m.resolution**2, self._activation_dtype, self.device.type)  # one [N, 1, H, W] draw per layer
            for m in self.sampling_network.modules()
            if isinstance(m, NoiseInjection) and m.kind != "none" and m.noise_mode == "random"
        )

    def noise_hparams(self) -> dict[str, float]:
        """The randomness figures logged with the hyperparameters: the budget's total and its parts."""
        budget = self.randomness_budget()
        return {"noise/budget_bits": math.fsum(budget.values()), **{f"noise/budget/{k}": v for k, v in budget.items()}}

    # ------------------------------------------------------------------ the TensorBoard hparams session
    def session_hparams(self) -> dict[str, Any]:
        """The run's key settings, registered as the hyperparameters of its TensorBoard hparams session.

        The method, the data, the run seed (``seed_everything``'s) and the ``session_keys`` of the
        model's ``__init__`` arguments; the session adds the randomness figures (:meth:`noise_hparams`).
        """
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        seed = os.environ.get("PL_GLOBAL_SEED")
        params: dict[str, Any] = {
            "method": type(self).__name__,
            "data": type(datamodule).__name__ if datamodule is not None else None,
            "seed": int(seed) if seed is not None else None,
        }
        params.update({key: self.hparams.get(key) for key in self.session_keys})
        return params

    def session_metrics(self, stage: str) -> list[str]:
        """The metric tags of the run's hparams session: the module's own (none here) and the callbacks'.

        A callback that logs final metrics lists their tags in ``hparams_metrics()``
        (``callbacks.GenerativeMetrics``: ``metrics/fid``, ...).  ``stage`` is ``fit`` or ``test``.
        """
        names: list[str] = []
        for callback in self.trainer.callbacks if self._trainer is not None else []:
            listed = getattr(callback, "hparams_metrics", None)
            if callable(listed):
                names.extend(listed())
        return list(dict.fromkeys(names))

    def _register_run(self, stage: str) -> None:
        """Log the randomness figures (hparams.yaml, scalars) and register the run's one hparams session."""
        figures = self.noise_hparams()
        for logger in self.loggers:
            if not isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(figures)
                continue
            # Into hparams.yaml (written by logger.save()); not through log_hyperparams, which would
            # register a session of its own under default_hp_metric: true.
            logger.hparams.update(figures)
            if self.trainer.is_global_zero:
                logger.log_metrics(figures, step=0)
                params = {**self.session_hparams(), **figures}
                register_hparams_session(logger, params, self.session_metrics(stage))

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr_g, betas=self.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr_d, betas=self.betas)
        return [opt_g, opt_d]

    def data_shapes(self) -> dict[str, tuple[int, ...]]:
        """The datamodule attributes :meth:`setup` checks, with the shapes this model is built for."""
        return {"image_shape": self.image_shape}

    def setup(self, stage: str) -> None:
        if self._trainer is None:
            return
        dm = getattr(self.trainer, "datamodule", None)
        for name, ours in self.data_shapes().items():
            theirs = getattr(dm, name, None) if dm is not None else None
            if theirs is not None and tuple(theirs) != tuple(ours):
                raise ValueError(
                    f"the data gives images of shape {tuple(theirs)} (channels, height, width; {name}) but the "
                    f"model is built for {tuple(ours)}: set model.init_args.resolution / channels to match the data"
                )

    def on_fit_start(self) -> None:
        take_over_gradient_sync(self)  # DDP: each step averages its own network's gradients
        if isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero:
            self.logger.experiment.add_custom_scalars(self.custom_scalars())
        self._register_run("fit")

    def on_test_start(self) -> None:
        self._register_run("test")

    def custom_scalars(self) -> dict[str, Any]:
        """TensorBoard custom-scalars layout: the method's curves grouped on one page."""
        return {type(self).__name__: {"losses": ["Multiline", ["train/loss_d", "train/loss_g"]]}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["images_seen"] = self.images_seen
        checkpoint["d_steps"] = self.d_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.images_seen = int(checkpoint.get("images_seen", 0))
        self.d_steps = int(checkpoint.get("d_steps", 0))


class AdversarialModule(AdversarialLoop):
    """Base class of the noise-to-image GANs (see the module docstring)."""

    generator_ema: EMA
    #: classes of a conditional model (its ``__init__`` sets it); 0: unconditional.
    num_classes: int = 0

    def _init_adversarial(
        self,
        *,
        noise: NoiseSpec,
        image_shape: tuple[int, int, int],
        lr_g: float,
        lr_d: float,
        betas: tuple[float, float],
        ema_kimg: float,
        ema_rampup: Optional[float],
        loss: Optional[str] = None,
        d_steps_per_g: int = 1,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        style_mixing_prob: float = 0.0,
    ) -> None:
        """Set up the loop and the shared recipe; call after ``self.generator``/``self.discriminator`` exist.

        ``loss`` names the adversarial loss of the default :meth:`d_loss` / :meth:`g_loss`
        (:func:`~lightning_modules.losses.d_loss_fn`); ``None`` for a method that replaces
        both with its own (GANZ's BEGAN losses).  The other arguments are
        :meth:`AdversarialLoop._init_loop`'s and the regularisers' (R1: ``r1_gamma``,
        ``r1_interval``; path length: ``pl_*``; ``style_mixing_prob``).
        """
        self.noise = noise
        self.adversarial_d_loss = d_loss_fn(loss) if loss is not None else None
        self.adversarial_g_loss = g_loss_fn(loss) if loss is not None else None
        self._init_regularizers(r1_gamma, r1_interval, pl_weight, pl_interval, pl_batch_shrink, pl_decay,
                                style_mixing_prob)  # fmt: skip
        self._init_loop(
            image_shape=image_shape, lr_g=lr_g, lr_d=lr_d, betas=betas, d_steps_per_g=d_steps_per_g,
            ema_kimg=ema_kimg, ema_rampup=ema_rampup,
        )  # fmt: skip
        # generate(noise_mode=...) reaches generators with per-layer injected noise only.
        self.injects_noise = any(isinstance(m, NoiseInjection) for m in self.generator.modules())

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
            _positive_int(key, value)
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
    def generator_input(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's input for noise ``z`` as the spec draws it (identity; DE-GAN preconditions it)."""
        return z

    def sample_noise(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The generator's input for ``batch_size`` fresh noise draws, on this module's device."""
        return self.generator_input(self.noise.sample(batch_size, device=self.device, generator=generator))

    def run_generator(
        self, net: nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor], noise_mode: Optional[str]
    ) -> torch.Tensor:
        """``net`` (G or its EMA copy) on generator input ``z``; conditional methods feed ``labels`` too."""
        return net(z, noise_mode=noise_mode) if noise_mode is not None and self.injects_noise else net(z)

    # ------------------------------------------------------------------ labels (conditional models)
    def default_labels(self, batch_size: int) -> Optional[torch.Tensor]:
        """Labels ``i mod num_classes`` of sample i (conditional models), else None."""
        if not self.num_classes:
            return None
        return torch.arange(batch_size, device=self.device) % self.num_classes

    def _check_labels(self, labels: Optional[torch.Tensor], batch_size: int) -> Optional[torch.Tensor]:
        """The labels a conditional network takes (``labels``, else the defaults); None when unconditional."""
        if not self.num_classes:
            return None
        if labels is None:
            return self.default_labels(batch_size)
        labels = labels.to(self.device).long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"model.init_args.num_classes is {self.num_classes}, but the data gives labels in "
                f"[{int(labels.min())}, {int(labels.max())}] (-1: a dataset without labels); "
                "set num_classes: 0 for the unconditional model or match the data's classes"
            )
        return labels

    @torch.no_grad()
    def generate(
        self,
        z: Optional[torch.Tensor] = None,
        *,
        labels: Optional[torch.Tensor] = None,
        batch_size: int = 64,
        ema: bool = True,
        noise_mode: Optional[str] = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] from noise ``z`` (or ``batch_size`` fresh draws); the one sampling API of every method.

        Args:
            z: noise as ``self.noise.sample`` draws it (the raw z; methods that transform it,
                like DE-GAN's preconditioner, do so here); ``None`` draws ``batch_size``.
            labels: class labels for conditional models (default: ``i mod num_classes``);
                ignored by unconditional ones.
            batch_size: the number of draws when ``z`` is ``None``.
            ema: use the EMA weights (default) or the current ones.
            noise_mode: ``random`` / ``const`` / ``none`` for generators with per-layer injected
                noise (StyleGAN2, RNI); ``None`` keeps their layers' default; generators
                without injected noise have nothing to hold and ignore it.

        The images come in the generator's dtype (float64 under ``--trainer.precision 64-true``).
        """
        if z is None:
            z = self.noise.sample(batch_size, device=self.device)
        net = self.generator_ema if ema else self.generator
        z = self.generator_input(z.to(self.device)).to(self.device, self._compute_dtype)
        return self.run_generator(net, z, labels, noise_mode)

    # ------------------------------------------------------------------ Lightning hooks
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.noise.format == "float64" and self._compute_dtype != torch.float64:
            rank_zero_warn(
                f"noise.format is float64 but the generator computes in {self._compute_dtype}: its first layer "
                "rounds the noise, so the output carries at most the entropy of that format. "
                "Use --trainer.precision 64-true to keep float64 noise."
            )
        self._warn_if_autocast_rounds_the_noise()

    # ------------------------------------------------------------------ randomness budget and session
    def randomness_budget(self) -> dict[str, float]:
        """The shared parts (:meth:`AdversarialLoop.randomness_budget`); ``z`` is the noise spec's entropy as drawn."""
        budget = super().randomness_budget()
        budget["z"] = self.noise.entropy_bits(self.device.type)  # as drawn where sample_noise draws it
        return budget

    def noise_hparams(self) -> dict[str, float]:
        """The noise entropy as drawn and ideal (Noise-dim Eq. 7), then the budget: H(G(Z)) <= H(Z) meets training."""
        return {"noise/entropy_bits": self.noise.entropy_bits(self.device.type),
                "noise/entropy_bits_ideal": self.noise.entropy_bits_ideal(), **super().noise_hparams()}  # fmt: skip

    def session_hparams(self) -> dict[str, Any]:
        """The shared settings plus the noise: dimension, distribution, and format (``bits`` for discrete noise)."""
        params = super().session_hparams()
        params.update({"noise/dim": self.noise.dim, "noise/distribution": self.noise.distribution,
                       "noise/format": self.noise.format})  # fmt: skip
        if self.noise.distribution == "discrete":
            params["noise/bits"] = self.noise.bits
        return params

    def _warn_if_autocast_rounds_the_noise(self) -> None:
        """Under ``bf16-mixed`` / ``16-mixed`` the generator's first layer rounds the noise to the autocast format."""
        autocast = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}.get(str(self.trainer.precision))
        if autocast is None:
            return
        kept = self.noise.entropy_bits_per_dim_in(autocast)  # the ideal noise rounded to the autocast format
        logged = self.noise.entropy_bits_per_dim(self.device.type)
        if kept < logged - 1e-3:  # the as-drawn bound of a format the autocast keeps exceeds it by < 1e-3 bits
            rank_zero_warn(
                f"--trainer.precision {self.trainer.precision}: the generator's first layer computes in {autocast} "
                f"and rounds the {self.noise.format} noise to it, so the noise carries at most {kept:.4f} bits per "
                f"dimension ({self.noise.dim * kept:.1f} per sample), not the {logged:.4f} "
                f"({self.noise.entropy_bits(self.device.type):.1f}) logged as noise/entropy_bits. "
                f"Use noise.format: {autocast} to "
                "make the logged entropy the run's, or --trainer.precision 32-true to keep the noise's."
            )

    def custom_scalars(self) -> dict[str, Any]:
        layout = super().custom_scalars()
        layout[type(self).__name__].update(
            {
                "discriminator logits": ["Multiline", ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"]],
                # Filled when the run has a callbacks.GenerativeMetrics.
                "FID and KID": ["Multiline", ["metrics/fid", "metrics/kid_mean"]],
                "precision and recall": ["Multiline", ["metrics/precision", "metrics/recall"]],
                "regularisers": ["Multiline", ["train/r1_penalty", "train/pl_penalty", "train/pl_mean"]],
            }
        )
        return layout

    # ------------------------------------------------------------------ the game (Noise-dim Eq. 2)
    def fake_images(self, batch_size: int, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """G's images from ``batch_size`` fresh noise draws, as in training (style mixing included)."""
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

    @property
    def r1_due(self) -> bool:
        """Whether this D step takes the lazy R1 penalty (every ``r1_interval``-th D step)."""
        return self.r1_gamma > 0 and self.d_steps % self.r1_interval == 0

    @property
    def path_length_due(self) -> bool:
        """Whether this G step takes the lazy path-length penalty (every ``pl_interval``-th G step, the first included).

        Asked in :meth:`g_loss`, when ``d_steps`` already counts this iteration's D step, so
        this G step's index is ``d_steps // d_steps_per_g - 1``.
        """
        g_step = self.d_steps // self.d_steps_per_g - 1
        return self.path_length is not None and g_step % self.pl_interval == 0

    def _require_loss(self, hook: str) -> None:
        if self.adversarial_d_loss is None:
            raise NotImplementedError(f"{type(self).__name__} was built without a loss: it must implement {hook}(batch)")

    def d_loss(self, batch: Any) -> Losses:
        """D's loss on a real batch and as many fakes (Noise-dim Eq. 2, the max over f), plus the lazy R1 penalty."""
        self._require_loss("d_loss")
        real, labels = self._images(batch), self._labels(batch)
        r1 = self.r1_due
        with torch.no_grad():
            fake = self.fake_images(real.shape[0], labels)
        real = real.detach().requires_grad_(r1)
        real_logits, fake_logits = self.discriminate(real, fake, labels)
        loss = self.adversarial_d_loss(real_logits, fake_logits)
        logs = {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if r1:  # gamma / 2 * E|grad_x D(x)|^2, times the interval (lazy regularisation)
            penalty = r1_penalty(real, real_logits, self._penalty_grad_scale())
            loss = loss + penalty * (self.r1_gamma / 2) * self.r1_interval
            logs["r1_penalty"] = penalty.detach()
        return loss, logs

    def g_loss(self, batch: Any) -> Losses:
        """G's loss against the current D (Noise-dim Eq. 2, the min over theta), plus the lazy path-length penalty."""
        self._require_loss("g_loss")
        batch_size, labels = self._images(batch).shape[0], self._labels(batch)
        loss = self.adversarial_g_loss(self.critic(self.fake_images(batch_size, labels), labels))
        logs = {"loss_g": loss.detach()}
        if self.path_length_due:
            loss, logs = self.add_path_length(loss, logs, batch_size)
        return loss, logs

    def add_path_length(self, loss: torch.Tensor, logs: dict[str, torch.Tensor], batch_size: int) -> Losses:
        """``loss`` plus the path-length penalty (StyleGAN2 Eq. 4) times its weight and interval."""
        assert self.path_length is not None
        images, ws = self.generator_forward(self.sample_noise(max(1, batch_size // self.pl_batch_shrink)), True)
        penalty = self.path_length(images, ws, self._penalty_grad_scale())
        logs.update(pl_penalty=penalty.detach(), pl_mean=self.path_length.pl_mean.detach().clone())
        return loss + penalty * self.pl_weight * self.pl_interval, logs

    # ------------------------------------------------------------------ evaluation
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
