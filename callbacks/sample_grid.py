"""A grid of samples from fixed noise, every k validation epochs: TensorBoard and PNG.

The noise is drawn once from the model's noise spec with a fixed seed and kept in the
callback's state (so it is saved in checkpoints and a resumed run keeps showing the same
latents), which makes successive grids show how the same z evolve.

Works with any LightningModule that has ``noise`` (a NoiseSpec) and the shared sampling API
``generate(z, *, ema=..., noise_mode=...)`` returning images in [-1, 1]: every
``AdversarialModule``.  Generators with injected noise (StyleGAN2, RNI) are drawn with their
constant noise maps (``noise_mode="const"``), so the grid changes only as the weights do.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from callbacks.paths import run_dir

__all__ = ["SampleGrid"]


class SampleGrid(Callback):
    """Log a fixed-noise sample grid to ``samples/<tag>`` and ``<run>/samples/*.png``.

    Args:
        num_samples: images in the grid.
        nrow: images per row.
        every_n_epochs: draw at the end of every n-th validation epoch.
        seed: seed of the fixed noise.
        ema: use the generator's EMA weights (where the method has them).
        tag: TensorBoard tag under ``samples/``.
    """

    def __init__(
        self,
        num_samples: int = 64,
        nrow: int = 8,
        every_n_epochs: int = 1,
        seed: int = 0,
        ema: bool = True,
        tag: str = "fixed_noise",
    ) -> None:
        if num_samples < 1 or nrow < 1 or every_n_epochs < 1:
            raise ValueError("SampleGrid: num_samples, nrow and every_n_epochs must be >= 1")
        self.num_samples, self.nrow, self.every_n_epochs = num_samples, nrow, every_n_epochs
        self.seed, self.ema, self.tag = seed, ema, tag
        self.fixed_noise: Optional[torch.Tensor] = None
        self.last_png: Optional[str] = None
        self._last_global_step: Optional[int] = None

    def _noise(self, pl_module: LightningModule) -> torch.Tensor:
        if self.fixed_noise is None:
            generator = torch.Generator().manual_seed(self.seed)
            self.fixed_noise = pl_module.noise.sample(self.num_samples, generator=generator)
        return self.fixed_noise

    def render(self, pl_module: LightningModule) -> torch.Tensor:
        """The grid as a [3, H, W] float tensor in [0, 1]."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            images = pl_module.generate(self._noise(pl_module), ema=self.ema, noise_mode="const").float().cpu()
        finally:
            pl_module.train(was_training)
        return make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        self._log_grid(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """One last grid if training stopped after the last validation (e.g. at max_steps)."""
        if trainer.global_step != self._last_global_step:
            self._log_grid(trainer, pl_module)

    def _log_grid(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        log_dir = run_dir(trainer)
        grid = self.render(pl_module)
        self._last_global_step = trainer.global_step
        # TensorBoard: the step Lightning logs val/ scalars at, so images line up with those curves.
        tb_step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(f"samples/{self.tag}", grid, global_step=tb_step)
        if log_dir is not None:
            folder = os.path.join(log_dir, "samples")
            os.makedirs(folder, exist_ok=True)
            # Named by global_step (optimiser steps), as the checkpoints are.
            self.last_png = os.path.join(folder, f"{self.tag}_step{trainer.global_step:07d}.png")
            save_image(grid, self.last_png)

    def state_dict(self) -> dict[str, Any]:
        return {"fixed_noise": self.fixed_noise}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.fixed_noise = state_dict.get("fixed_noise")
