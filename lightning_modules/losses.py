"""Adversarial losses on discriminator logits, each a pair (discriminator loss, generator loss).

* ``non_saturating`` -- Goodfellow et al. 2014, Sec. 3: D minimises
  softplus(-D(x)) + softplus(D(G(z))) (the logistic loss of Eq. 1 of Goodfellow et al.), and G
  minimises softplus(-D(G(z))), i.e. maximises log D(G(z)) instead of minimising
  log(1 - D(G(z))).  As in stylegan2-ada-pytorch, training/loss.py (``loss_Gmain``,
  ``loss_Dgen``, ``loss_Dreal``).
* ``hinge`` -- Lim & Ye 2017 / Miyato et al. 2018 (BigGAN's loss):
  D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z)).

Under autocast (``bf16-mixed``, ``16-mixed``) D's logits come in bf16/fp16; the losses are
computed in float32 (:func:`at_least_float32`), as CUDA's autocast does for ``softplus`` (CPU's
does not), so the logged losses keep float32 digits.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

LossName = Literal["non_saturating", "hinge"]

__all__ = ["LossName", "at_least_float32", "d_loss_fn", "g_loss_fn"]


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or in its own dtype when wider (float64 under ``64-true``): never bf16/fp16."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _d_non_saturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    real_logits, fake_logits = at_least_float32(real_logits), at_least_float32(fake_logits)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _g_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-at_least_float32(fake_logits)).mean()


def _d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    real_logits, fake_logits = at_least_float32(real_logits), at_least_float32(fake_logits)
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def _g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -at_least_float32(fake_logits).mean()


_D = {"non_saturating": _d_non_saturating, "hinge": _d_hinge}
_G = {"non_saturating": _g_non_saturating, "hinge": _g_hinge}


def d_loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Discriminator loss ``(real_logits, fake_logits) -> scalar`` called ``name``."""
    if name not in _D:
        raise ValueError(f"unknown adversarial loss {name!r}; expected one of: {', '.join(_D)}")
    return _D[name]


def g_loss_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Generator loss ``fake_logits -> scalar`` called ``name``."""
    if name not in _G:
        raise ValueError(f"unknown adversarial loss {name!r}; expected one of: {', '.join(_G)}")
    return _G[name]
