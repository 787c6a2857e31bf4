"""Exponential moving average of a network's weights (the generator's, in GANs).

Reference: NVlabs/stylegan2-ada-pytorch, training/training_loop.py ("Update G_ema"):
the half-life is given in images, ``ema_kimg`` thousand, so the decay per step is

    beta = 0.5 ** (batch_size / (ema_kimg * 1000))

and with ``ema_rampup`` the half-life is capped at ``ema_rampup * images seen so far``,
which lets the average forget its random initialisation early in training.  Parameters
are averaged, buffers (e.g. BatchNorm statistics) copied.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

__all__ = ["EMA", "ema_beta"]


def ema_beta(batch_size: int, ema_kimg: float, images_seen: int, ema_rampup: Optional[float] = None) -> float:
    """Decay per step for a half-life of ``ema_kimg`` thousand images (StyleGAN2-ADA)."""
    ema_nimg = ema_kimg * 1000.0
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


class EMA(nn.Module):
    """A frozen copy of ``model`` whose weights follow ``model``'s by an exponential average."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, beta: float) -> None:
        """ema <- beta * ema + (1 - beta) * model (parameters); buffers are copied."""
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError("EMA.update got a model with a different set of parameters")
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
