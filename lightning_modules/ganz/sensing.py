"""Compressive sensing with the GANZ generator as the prior (GANZ Sec. 4, Fig. 8; Bora et al. 2017).

An image x in R^N (N = H*W*C, values in [-1, 1]) is observed only through M < N
Gaussian measurements y = A x, A in R^{M x N} with i.i.d. entries N(0, 1/M) (Bora et al.'s
choice), drawn from ``torch.Generator("cpu").manual_seed(seed)``.  The estimate is
x_hat = G(z_hat) with

    z_hat = argmin_z ||A G(z) - y||^2,

solved by the same batched optimiser as compression (:func:`~lightning_modules.ganz.inversion.invert`,
Adam with restarts), through any of GANZ's latent modes (the paper uses ratio 6, i.e.
``no_linear`` at 128 x 128 x 3).  GANZ's Fig. 8 uses M = 4000 and M = 10000 for
N = 128*128*3 = 49152 (M/N = 0.08 and 0.2, Bora et al.'s ratios).  A is materialised:
M*N*4 bytes, 2 GB at M = 10000 there.

Reported per image: PSNR (GANZ Eq. 2, on [-1, 1] with L = 2) and the per-pixel MSE that Bora et
al. plot.  GANZ compares with Bora et al.'s "MSE of at least 0.025 (PSNR 16.02 dB)",
which reads the MSE on a [0, 1] scale (PSNR = -10 log10 MSE); Bora et al.'s own images are
in [-1, 1], where the same pixels have 4x the MSE.  Both scales are reported
(``mse_unit`` on [0, 1], ``mse_pm1`` on [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_modules.ganz.inversion import InversionConfig, invert
from lightning_modules.ganz.latent import LatentGenerator
from lightning_modules.reconstruction import psnr

__all__ = ["BORA_BEST_MSE", "SensingResult", "gaussian_measurement_matrix", "recover"]

#: GANZ Sec. 4: "The best mean squared error reported by [Bora et al.] at least 0.025".
BORA_BEST_MSE = 0.025


def gaussian_measurement_matrix(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """A [m, n], float32, entries i.i.d. N(0, 1/m), from a CPU generator seeded with ``seed``."""
    if not 0 < m or not 0 < n:
        raise ValueError(f"measurement matrix sizes must be positive, got {m} x {n}")
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(m, n, generator=generator, dtype=torch.float32).div_(float(m) ** 0.5)


@dataclass
class SensingResult:
    """Recovered images [B, C, H, W] (clamped to [-1, 1]) and their per-image scores [B]."""

    reconstruction: torch.Tensor
    psnr: torch.Tensor
    mse_unit: torch.Tensor  # per-pixel MSE with images on [0, 1]
    mse_pm1: torch.Tensor  # per-pixel MSE with images on [-1, 1]
    measurement_error: torch.Tensor  # ||A G(z_hat) - y||^2 / M


def recover(
    net: LatentGenerator,
    images: torch.Tensor,
    m: int,
    seed: int = 0,
    config: InversionConfig = InversionConfig(),
    progress: bool = True,
) -> SensingResult:
    """Measure ``images`` [B, C, H, W] with M = ``m`` Gaussian rows and recover them through ``net``."""
    device = next(net.parameters()).device
    x = images.to(device, torch.float32)
    n = x[0].numel()
    a = gaussian_measurement_matrix(m, n, seed).to(device)
    y = x.flatten(1) @ a.T

    def measure(z: torch.Tensor) -> torch.Tensor:
        return net(z).flatten(1) @ a.T

    z, error = invert(measure, y, net.d_c, config, progress=progress, description=f"sensing M={m}")
    with torch.no_grad():
        x_hat = net(z).clamp(-1.0, 1.0)
    mse_pm1 = (x_hat - x).pow(2).flatten(1).mean(1)
    return SensingResult(x_hat.cpu(), psnr(x_hat, x).cpu(), (mse_pm1 / 4).cpu(), mse_pm1.cpu(), error.cpu())
