"""Random streams that are a function of the run, the process and the batch: exact resume, different noise per rank.

A GAN step draws noise, style-mixing cut-offs, ADA augmentations and dropout masks from
torch's global generator.  Two things go wrong when that generator is only seeded once
at start-up (``seed_everything``):

* every DDP process starts from the same seed, so all ranks draw the *same* noise: the
  global batch holds ``world_size`` copies of each fake;
* a run resumed from a mid-epoch checkpoint continues from a fresh generator, so its
  noise differs from the uninterrupted run's (Lightning checkpoints hold no RNG state).

:class:`StepSeed` re-seeds torch (CPU and CUDA), NumPy and ``random`` before every training
batch from ``(run seed, global rank, batch index)``, mixed by a hash: what a step draws
depends on nothing else, not on how many validation passes or metric evaluations ran
before it, nor on whether the run was interrupted.  The run seed is ``seed_everything``'s
(``PL_GLOBAL_SEED``) or, without one, rank 0's initial torch seed, and is saved in
checkpoints (callback state), so a resumed run keeps its streams even when
``seed_everything: true`` would draw a new seed.  ``train.py`` adds it to every run
(``--step_seed.enabled false`` turns it off).  The data order has its own seeded stream:
:class:`datamodules.resumable.ResumableSampler`.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Optional

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["StepSeed", "step_seed"]


def step_seed(run_seed: int, rank: int, batch_index: int) -> int:
    """The 63-bit seed of batch ``batch_index`` on process ``rank`` of the run seeded with ``run_seed``."""
    digest = hashlib.blake2b(f"{run_seed}/{rank}/{batch_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StepSeed(Callback):
    """Re-seed the global random generators before every training batch (see the module docstring).

    Args:
        enabled: re-seed before every training batch.
        seed: the run seed; ``None`` takes ``seed_everything``'s (or rank 0's initial torch seed).
    """

    def __init__(self, enabled: bool = True, seed: Optional[int] = None) -> None:
        self.enabled = enabled
        self.seed = seed

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.seed is None:
            local = os.environ.get("PL_GLOBAL_SEED")
            local_seed = int(local) if local is not None else torch.initial_seed()
            self.seed = int(trainer.strategy.broadcast(local_seed, src=0))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.enabled:
            return
        seed = step_seed(self.seed, trainer.global_rank, trainer.fit_loop.total_batch_idx)
        torch.manual_seed(seed)  # also every CUDA device
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])
