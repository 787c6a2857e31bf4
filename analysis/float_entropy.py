"""The paper's Monte Carlo estimate of a float format's entropy (Noise-dim Eq. 6) and its Table 1 values.

Seed paper "Noise dimension of GAN: an image compression perspective", Sec. 4.1-4.2.  The
paper estimates H(format), the entropy of a continuous noise distribution rounded to a
floating-point format, by Monte Carlo over K = 1e7 samples (Noise-dim Eq. 6)::

    H ~ (1/K) sum_k -log2 p(z_k),   p(z_i) = F((z_i + z_{i+1}) / 2) - F((z_{i-1} + z_i) / 2)   (Noise-dim Eq. 5)

The exact value comes from :mod:`core.float_entropy` (the noise spec, ``core.noise.NoiseSpec``,
reports it); this module keeps the analysis side: the estimator, run on samples of the
project's own sampler to check that it draws the distribution whose exact entropy is
reported, and the paper's published Table 1 values.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.float_entropy import FloatFormat, cell_mass_around, representable_values, resolve_format

__all__ = [
    "PAPER_TABLE_1",
    "information_bits",
    "monte_carlo_entropy_bits",
]

# Seed paper, Table 1: Monte Carlo estimates (K = 1e7) of H for a standard Gaussian, in bits.
# The exact values differ (README, "The noise spec"); kept to reproduce the paper's Table 3.
PAPER_TABLE_1 = {"float16": 11.36, "float32": 26.55, "float64": 55.56}


def _neighbours(values: np.ndarray, fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray]:
    """The representable values just below and just above each value (as float64)."""
    if fmt.total_bits <= 16:
        table = representable_values(fmt)
        idx = np.searchsorted(table, values)
        if not np.array_equal(table[idx], values):
            raise ValueError(f"samples are not values of {fmt.name}")
        below = table[np.maximum(idx - 1, 0)]
        above = table[np.minimum(idx + 1, len(table) - 1)]
        below = np.where(idx == 0, -np.inf, below)
        above = np.where(idx == len(table) - 1, np.inf, above)
        return below, above
    np_dtype = np.float32 if fmt.name == "float32" else np.float64
    v = values.astype(np_dtype)
    if not np.array_equal(v.astype(np.float64), values):
        raise ValueError(f"samples are not values of {fmt.name}")
    below = np.nextafter(v, np_dtype(-np.inf)).astype(np.float64)
    above = np.nextafter(v, np_dtype(np.inf)).astype(np.float64)
    return below, above


def information_bits(
    samples: torch.Tensor | np.ndarray, fmt: str | FloatFormat, distribution: str = "gaussian"
) -> np.ndarray:
    """-log2 p(z) for each sample z already rounded to ``fmt`` (the terms of Noise-dim Eq. 6)."""
    fmt = resolve_format(fmt)
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().to("cpu", torch.float64).numpy()
    z = np.asarray(samples, np.float64).ravel()
    below, above = _neighbours(z, fmt)
    with np.errstate(invalid="ignore"):  # inf - z at the ends of the range
        p = cell_mass_around(z, (z - below) / 2, (above - z) / 2, distribution)
    if np.any(p <= 0):
        raise ValueError(f"some samples have zero probability under {distribution}")
    return -np.log2(p)


def monte_carlo_entropy_bits(
    samples: torch.Tensor | np.ndarray, fmt: str | FloatFormat, distribution: str = "gaussian"
) -> tuple[float, float]:
    """Noise-dim Eq. 6: H ~ (1/K) sum_k -log2 p(z_k) over samples z_k already rounded to ``fmt``.

    Returns the estimate and its standard error.  ``samples`` come from the sampler under
    study (e.g. ``NoiseSpec.sample``), so this also checks that the sampler draws the
    distribution whose exact entropy :func:`core.float_entropy.entropy_bits` reports.
    """
    info = information_bits(samples, fmt, distribution)
    if info.size < 2:
        raise ValueError("the Monte Carlo estimate needs at least two samples")
    return float(info.mean()), float(info.std(ddof=1) / math.sqrt(info.size))
