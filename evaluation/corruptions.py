r"""Inference-noise corruptions of known power, for the robustness curves of NoisyI2I.

Seed poster "On the analysis of GAN-based image-to-image translation using Gaussian noise
injection": the translator is trained on X + sigma_t N and tested on X_hat = X + E.
Theorem 2 takes E Gaussian; Theorem 3 says that for small sigma_e^2 *any* i.i.d. noise of
the same covariance behaves like the Gaussian to first order (I2I Eq. 9).  So each corruption
here is parameterised by the same number, the **noise power**

    sigma_e^2 = E[(x_hat - x)^2]   per pixel, images in [-1, 1],

which is the variance for the zero-mean noises (Gaussian, uniform, Poisson) and the mean
squared error for the others (salt-and-pepper, JPEG).  Images are on the project's
[-1, 1] scale throughout: a variance v here is v / 4 on the [0, 1] scale and
v * 127.5^2 on [0, 255].

* ``gaussian`` -- x + sigma_e N, N ~ N(0, I) (the theory's case);
* ``uniform`` -- x + U(-a, a) with a = sqrt(3) sigma_e;
* ``salt_and_pepper`` -- each pixel, with probability p, replaced by -1 or +1 (equally
  likely, independently per channel); E[(x_hat - x)^2 | x] = p (1 + x^2), so
  p = sigma_e^2 / mean(1 + x^2) per image (p <= 1 bounds the reachable power);
* ``poisson`` -- shot noise: u = (x + 1)/2 in [0, 1], u_hat = Poisson(k u) / k, whose
  variance in the [-1, 1] scale is 4 u / k; k = 4 mean(u) / sigma_e^2 per image;
* ``jpeg`` -- JPEG compression artefacts (imagecodecs' libjpeg, 4:4:4, baseline), at
  the quality (1-100) whose batch MSE is closest to sigma_e^2.  Quality is discrete and
  bounded, so the reached power is measured and returned; it saturates at quality 1.

No corruption clips its output except by construction (S&P and JPEG stay in range); the
theory's Gaussian noise is unbounded, so clipping would change the variance.

Every function takes a ``torch.Generator`` so that a robustness sweep draws *the same*
corruptions for every trained model it compares.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Optional

import numpy as np
import torch

__all__ = ["CORRUPTIONS", "NoiseKind", "corrupt", "noise_power"]

NoiseKind = Literal["gaussian", "uniform", "salt_and_pepper", "poisson", "jpeg"]


def _gaussian(x: torch.Tensor, sigma_e2: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + math.sqrt(sigma_e2) * noise


def _uniform(x: torch.Tensor, sigma_e2: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    a = math.sqrt(3.0 * sigma_e2)  # Var U(-a, a) = a^2 / 3
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + a * (2.0 * noise - 1.0)


def _salt_and_pepper(x: torch.Tensor, sigma_e2: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    dims = tuple(range(1, x.ndim))
    p = sigma_e2 / (1.0 + x.pow(2).mean(dim=dims, keepdim=True))
    if (p > 1).any():
        raise ValueError(
            f"salt_and_pepper cannot reach noise power {sigma_e2:g} on these images (at most 1 + mean(x^2), "
            f"here {float((1 + x.pow(2).mean(dim=dims)).min()):.3f}); lower the top of the sigma_e^2 range"
        )
    hit = torch.rand(x.shape, generator=generator, device=x.device) < p
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    value = torch.where(salt, 1.0, -1.0).to(x.dtype)
    return torch.where(hit, value, x)


def _poisson(x: torch.Tensor, sigma_e2: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    u = ((x + 1.0) / 2.0).clamp(min=0.0)
    dims = tuple(range(1, x.ndim))
    k = 4.0 * u.mean(dim=dims, keepdim=True) / sigma_e2  # photons per unit intensity
    k = k.clamp(min=1e-12)
    counts = torch.poisson((k * u).double(), generator=generator).to(x.dtype)
    return 2.0 * (counts / k) - 1.0


def _jpeg_at(x_uint8: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode ``[N, H, W, C]`` uint8 images at ``quality``."""
    import imagecodecs

    out = np.empty_like(x_uint8)
    for i, image in enumerate(x_uint8):
        grey = image.shape[-1] == 1
        plane = np.ascontiguousarray(image[..., 0] if grey else image)
        encoded = imagecodecs.jpeg8_encode(plane, level=quality, subsampling="444")
        decoded = imagecodecs.jpeg8_decode(encoded)
        out[i] = decoded[..., None] if grey else decoded
    return out


def _jpeg(x: torch.Tensor, sigma_e2: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    del generator  # deterministic
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg corrupts 1- or 3-channel images, got {x.shape[1]} channels")
    u8 = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    images = u8.permute(0, 2, 3, 1).cpu().numpy()
    reference = x.detach().float().cpu()

    def decoded(quality: int) -> tuple[torch.Tensor, float]:
        y = torch.from_numpy(_jpeg_at(images, quality)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return y, float((y - reference).pow(2).mean())

    # The MSE falls as the quality rises (not strictly at every step): bisect, then look around.
    lo, hi = 1, 100
    cache: dict[int, tuple[torch.Tensor, float]] = {}

    def at(q: int) -> tuple[torch.Tensor, float]:
        if q not in cache:
            cache[q] = decoded(q)
        return cache[q]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid)[1] > sigma_e2:
            lo = mid
        else:
            hi = mid
    best = min((at(q) for q in range(max(1, lo - 2), min(100, hi + 2) + 1)), key=lambda r: abs(r[1] - sigma_e2))
    return best[0].to(x.device, x.dtype)


CORRUPTIONS: dict[str, Callable[[torch.Tensor, float, Optional[torch.Generator]], torch.Tensor]] = {
    "gaussian": _gaussian,
    "uniform": _uniform,
    "salt_and_pepper": _salt_and_pepper,
    "poisson": _poisson,
    "jpeg": _jpeg,
}
"""Name -> ``fn(images [N, C, H, W] in [-1, 1], sigma_e2, generator) -> corrupted images``."""


def corrupt(x: torch.Tensor, kind: str, sigma_e2: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``x`` [N, C, H, W] in [-1, 1] corrupted by ``kind`` noise of power ``sigma_e2`` (see the module docstring).

    ``sigma_e2 = 0`` returns ``x`` unchanged for every kind.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown noise type {kind!r}; expected one of: {', '.join(CORRUPTIONS)}")
    if not (sigma_e2 >= 0 and math.isfinite(sigma_e2)):
        raise ValueError(f"the noise power sigma_e^2 must be a finite number >= 0, got {sigma_e2}")
    if x.ndim != 4 or not x.is_floating_point():
        raise TypeError(f"expected a float batch [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if sigma_e2 == 0:
        return x
    return CORRUPTIONS[kind](x, float(sigma_e2), generator)


def noise_power(corrupted: torch.Tensor, clean: torch.Tensor) -> float:
    """The reached power, mean (x_hat - x)^2 over all pixels of the batch."""
    return float((corrupted.double() - clean.double()).pow(2).mean())
