"""GANZ compression, Eq. 1: z* = argmin_z ||G(z) - x||^2 with the generator frozen.

GANZ Sec. 3.2: "For compression of an image x, we reuse the generator G, and optimize
the latent vector z_c with SGD following (1).  Decompression is simply G(z_c*).  During
both compression/decompression, the linear layer and generator weights are fixed."

:func:`invert` solves the more general min_z ||A(G(z)) - y||^2 for a fixed measurement
operator A (the identity for compression; a Gaussian matrix for compressive sensing,
:mod:`lightning_modules.ganz.sensing`).  It is batched: the objective is the *sum* of the
per-image errors, so each image's latent gets exactly the gradient it would get alone,
and Adam/SGD update every latent element independently -- optimising 64 images at once
gives each the same trajectory as optimising it alone (up to floating-point reduction
order).  With ``restarts`` > 1 it runs from several initialisations and keeps, per image,
the latent with the lowest final error.  Initialisations come from a seeded
``torch.Generator``, so a compression is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from tqdm.auto import tqdm

__all__ = ["InversionConfig", "invert"]

Optimizer = Literal["adam", "sgd"]
Init = Literal["zeros", "gaussian", "uniform"]


@dataclass(frozen=True)
class InversionConfig:
    """Settings of the latent optimisation (GANZ Eq. 1).

    Attributes:
        steps: optimiser steps per restart.
        lr: learning rate.
        optimizer: ``adam`` or ``sgd`` (with ``momentum``).  GANZ says "SGD"; Adam is the default
            here because it converges in far fewer steps on these objectives.
        momentum: SGD momentum.
        restarts: initialisations per image; the best final error wins.
        init: ``zeros``, ``gaussian`` (N(0, init_scale^2)) or ``uniform`` (U[-init_scale, init_scale]).
        init_scale: scale of the random initialisations.
        seed: seed of the initialisations.
    """

    steps: int = 500
    lr: float = 0.05
    optimizer: Optimizer = "adam"
    momentum: float = 0.9
    restarts: int = 1
    init: Init = "gaussian"
    init_scale: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.restarts < 1 or not self.lr > 0:
            raise ValueError(f"inversion needs steps >= 0, restarts >= 1 and lr > 0, got {self}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected adam or sgd")
        if self.init not in ("zeros", "gaussian", "uniform"):
            raise ValueError(f"unknown init {self.init!r}; expected zeros, gaussian or uniform")


def _initial(shape: tuple[int, int], config: InversionConfig, restart: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(config.seed * 1000003 + restart)
    if config.init == "zeros" or (config.init_scale == 0):
        z = torch.zeros(shape)
    elif config.init == "gaussian":
        z = torch.randn(shape, generator=generator) * config.init_scale
    else:
        z = (torch.rand(shape, generator=generator) * 2 - 1) * config.init_scale
    return z.to(device)


def invert(
    forward: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    latent_dim: int,
    config: InversionConfig = InversionConfig(),
    progress: bool = True,
    description: str = "GANZ Eq. 1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """min_z sum_i mean_j (forward(z)_ij - target_ij)^2, batched over the images i.

    Args:
        forward: maps latents [N, latent_dim] to predictions of ``target``'s shape (G, or A o G).
        target: what to match, [N, ...] (images x for GANZ Eq. 1; measurements y for sensing).
        latent_dim: d_c.
        config: optimiser, steps, learning rate, restarts, initialisation.
        progress: show a tqdm bar (steps x restarts).
        description: the bar's label.

    Returns:
        ``(z, error)``: the best latent per image [N, latent_dim] (float32, detached) and its
        error, the mean squared difference per image [N].
    """
    n = target.shape[0]
    device = target.device
    best_z = torch.zeros(n, latent_dim, device=device)
    best_err = torch.full((n,), float("inf"), device=device)

    def per_image_error(z: torch.Tensor) -> torch.Tensor:
        return (forward(z) - target).pow(2).flatten(1).mean(1)

    bar = tqdm(total=config.steps * config.restarts, desc=description, disable=not progress, leave=False)
    try:
        for restart in range(config.restarts):
            z = _initial((n, latent_dim), config, restart, device).requires_grad_(True)
            if config.optimizer == "adam":
                opt = torch.optim.Adam([z], lr=config.lr)
            else:
                opt = torch.optim.SGD([z], lr=config.lr, momentum=config.momentum)
            for _ in range(config.steps):
                opt.zero_grad(set_to_none=True)
                error = per_image_error(z)
                error.sum().backward()
                opt.step()
                bar.update(1)
                if bar.n % 25 == 0:
                    bar.set_postfix(mse=f"{error.detach().mean().item():.3g}")
            with torch.no_grad():
                final = per_image_error(z)
                better = final < best_err
                best_z[better] = z.detach()[better]
                best_err = torch.where(better, final, best_err)
    finally:
        bar.close()
    return best_z, best_err
