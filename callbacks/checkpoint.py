"""``ModelCheckpoint`` for methods trained with manual optimisation: mid-epoch saves that resume exactly.

``train.py`` uses it for its ``checkpoint`` key.  Two differences from Lightning's
``ModelCheckpoint`` (2.6), both only for manual optimisation (the GANs):

* ``every_n_train_steps``: Lightning's manual-optimisation branch warns at every save that
  the state is the one *after* the optimiser step, and looks for a ``saved_models``
  attribute to save an earlier one.  After the step, at the end of a batch, is exactly the
  state a resume needs (the next batch starts from it), so this class saves it quietly.
* the end of training always refreshes ``last.ckpt`` when the last save was at an earlier
  step (Lightning's ``on_train_end`` only saves when ``last.ckpt`` was never written, so a
  run with ``every_n_train_steps`` would end with a stale ``last.ckpt``).

Remember that ``global_step`` counts optimiser steps, two per GAN iteration: with
``--checkpoint.every_n_train_steps N`` a preempted or crashed run loses at most N / 2
iterations.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["Checkpoint"]


class Checkpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) with quiet mid-epoch saves under manual optimisation."""

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.automatic_optimization:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._every_n_train_steps < 1 or trainer.global_step % self._every_n_train_steps != 0:
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            self._defer_save_until_validation = True  # saved in on_validation_end, as Lightning does
            return
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
        self._last_time_checked = time.monotonic()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            return
        super().on_train_end(trainer, pl_module)
