"""Stop a run at its first non-finite training loss, before any checkpoint can store the poisoned state.

GAN training can diverge to NaN or Inf in one step (an exploding discriminator, an fp16
overflow); every step after that only spreads it through the weights, and a ``last.ckpt``
written afterwards would make resuming useless.  :class:`NonFiniteGuard` looks at the
losses each training step logged (``train/*loss*`` by default) right after the step, and
raises :class:`NonFiniteLossError` naming the loss, its value, the global step and the last
checkpoint that was written before it.

It runs before Lightning's ``ModelCheckpoint`` in the same hook (Lightning always calls
checkpoint callbacks last), and the exception ends ``fit`` without the final save, so no
checkpoint holds weights updated with the non-finite loss.  ``train.py`` adds it to every
run (``--nan_guard.enabled false`` turns it off).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Sequence

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["NonFiniteGuard", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite."""


class NonFiniteGuard(Callback):
    """Raise :class:`NonFiniteLossError` at the first non-finite logged training loss.

    Args:
        enabled: check every training step (a host read of the logged values per step).
        patterns: glob patterns of the logged keys to check (``train/*loss*``: every method's
            D and G losses).
    """

    def __init__(self, enabled: bool = True, patterns: Sequence[str] = ("train/*loss*",)) -> None:
        self.enabled, self.patterns = enabled, tuple(patterns)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.enabled:
            return
        for key, value in trainer.callback_metrics.items():
            if not any(fnmatch.fnmatchcase(key, p) for p in self.patterns):
                continue
            number = float(value)
            if math.isfinite(number):
                continue
            last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
            where = f"the last checkpoint written before it is {last}" if last else "no checkpoint was written before it"
            raise NonFiniteLossError(
                f"{key} = {number} at global step {trainer.global_step} (epoch {trainer.current_epoch}, batch "
                f"{batch_idx}): training stopped before any checkpoint stored this state; {where}. Resume from it "
                "with --ckpt_path, perhaps with a lower learning rate, --trainer.precision 32, or gradient "
                "penalties (r1_gamma)."
            )
