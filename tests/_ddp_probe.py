"""A callback the DDP tests add to ``train.py`` runs: what each process drew and ended with."""

from __future__ import annotations

import os

import torch
from lightning.pytorch import Callback


class RankProbe(Callback):
    """Saves ``rank<N>.pt`` in ``out_dir``: per batch the step seed, a noise draw and the first real
    image's sum, and at the end the state dict
    and the names of the parameters (G's, D's and the EMA copy's)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.seeds: list[int] = []
        self.noise: list[torch.Tensor] = []
        self.images: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.images.append(float(batch[0][0].sum()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seeds.append(torch.initial_seed())
        if hasattr(pl_module, "sample_noise"):  # the GANs with a noise spec
            self.noise.append(pl_module.sample_noise(2).cpu())

    def on_train_end(self, trainer, pl_module):
        os.makedirs(self.out_dir, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(
            {
                "seeds": self.seeds,
                "noise": torch.stack(self.noise) if self.noise else None,
                "images": self.images,
                "state": state,
                "parameters": [name for name, _ in pl_module.named_parameters()],
            },
            os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"),
        )


class Preempt(Callback):
    """Raises (like a killed job) at the start of batch ``at`` (counted over the whole run), on every rank."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.at:
            raise RuntimeError("preempted")


class BatchProbe(Callback):
    """Saves ``batches<rank>.pt`` in ``out_dir``: each training batch's size on this process, and at
    the end the images seen (``train/kimg``), the optimiser steps and the EMA decay of the last G step."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.sizes: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.sizes.append(int(batch[0].shape[0]))

    def on_train_end(self, trainer, pl_module):
        from lightning_modules.nets.ema import ema_beta

        os.makedirs(self.out_dir, exist_ok=True)
        global_batch = self.sizes[-1] * trainer.world_size * pl_module.d_steps_per_g
        beta = ema_beta(global_batch, pl_module.ema_kimg, pl_module.images_seen, pl_module.ema_rampup)
        torch.save(
            {"sizes": self.sizes, "images_seen": pl_module.images_seen, "global_step": trainer.global_step,
             "world_size": trainer.world_size, "ema_beta": beta},
            os.path.join(self.out_dir, f"batches{trainer.global_rank}.pt"),
        )  # fmt: skip
