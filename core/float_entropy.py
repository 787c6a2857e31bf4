"""Exact entropy of a continuous distribution rounded to a floating-point format.

Seed paper "Noise dimension of GAN: an image compression perspective", Sec. 4.1-4.2.
A sample of a continuous noise distribution is stored as the nearest representable
value of a format (IEEE round-to-nearest), so it is a *discrete* random variable.
Each representable value z_i carries the probability mass between the midpoints to
its neighbours (Noise-dim Eq. 5)::

    p(z_i) = F((z_i + z_{i+1}) / 2) - F((z_{i-1} + z_i) / 2)

and H(format) = -sum_i p(z_i) log2 p(z_i).  The paper estimates H by Monte Carlo
(Noise-dim Eq. 6, K = 1e7 samples); this module computes it exactly:

* formats of at most 16 bits (float16, bfloat16, float8 e4m3fn / e5m2) by enumerating
  every bit pattern (``_entropy_by_enumeration``);
* float32 and float64 binade by binade (``_entropy_by_binades``).  Inside a binade
  [2^e, 2^(e+1)) the spacing is a constant delta = 2^(e - m), so the sum over its
  2^m cells has the closed form

      sum_j -p_j ln p_j = -P ln(delta) + integral_A^B -f(x) ln f(x) dx + O(delta^2 P)

  where P is the mass of the cells and [A, B] their union.  For float32 delta is at
  most 2^-20 where a standard Gaussian has mass above 1e-15, so the O(delta^2) term is
  below 1e-12 bits: exact to double precision.  The first value of each binade has an
  asymmetric cell (its lower neighbour is half as far) and is summed on its own; zero,
  the subnormals and the first normal binade share one spacing and form one
  symmetric central region.

Two distributions are supported, both by the same definition: the standard Gaussian
N(0, 1) and the uniform distribution on [-1, 1).  The sampler that draws this noise
lives in ``core.noise.NoiseSpec``; it reports these entropies.  The paper's Monte Carlo
estimator (Noise-dim Eq. 6) and its Table 1 values, for comparison with the exact numbers, are in
``analysis.float_entropy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.special import erfc

__all__ = [
    "FloatFormat",
    "FORMATS",
    "DISTRIBUTIONS",
    "resolve_format",
    "entropy_bits",
    "representable_values",
    "cell_mass",
    "cell_mass_around",
]

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-754-style binary floating-point format.

    Attributes:
        name: canonical name (a ``torch`` dtype name).
        total_bits: storage width.
        mantissa_bits: explicit fraction bits m (the spacing in binade 2^e is 2^(e-m)).
        min_normal_exponent: e_min, the exponent of the smallest normal number 2^e_min.
        max_finite: the largest finite value.
        torch_dtype: the matching ``torch`` dtype.
    """

    name: str
    total_bits: int
    mantissa_bits: int
    min_normal_exponent: int
    max_finite: float
    torch_dtype: torch.dtype


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float64", 64, 52, -1022, 1.7976931348623157e308, torch.float64),
        FloatFormat("float32", 32, 23, -126, 3.4028234663852886e38, torch.float32),
        FloatFormat("bfloat16", 16, 7, -126, 3.3895313892515355e38, torch.bfloat16),
        FloatFormat("float16", 16, 10, -14, 65504.0, torch.float16),
        FloatFormat("float8_e4m3fn", 8, 3, -6, 448.0, torch.float8_e4m3fn),
        FloatFormat("float8_e5m2", 8, 2, -14, 57344.0, torch.float8_e5m2),
    )
}

_ALIASES = {
    "fp64": "float64",
    "double": "float64",
    "fp32": "float32",
    "float": "float32",
    "single": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp8_e4m3": "float8_e4m3fn",
    "e4m3": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "e5m2": "float8_e5m2",
}

DISTRIBUTIONS = ("gaussian", "uniform")


def resolve_format(name: str | FloatFormat) -> FloatFormat:
    """Return the :class:`FloatFormat` called ``name`` (canonical name or alias)."""
    if isinstance(name, FloatFormat):
        return name
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in FORMATS:
        known = ", ".join(list(FORMATS) + sorted(_ALIASES))
        raise ValueError(f"unknown floating-point format {name!r}; expected one of: {known}")
    return FORMATS[key]


def _check_distribution(distribution: str) -> str:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown distribution {distribution!r} for a float-entropy computation; "
            f"expected one of: {', '.join(DISTRIBUTIONS)}"
        )
    return distribution


# ---------------------------------------------------------------------------------
# The two distributions: cell masses and the integral of -f ln f over a region.
# ---------------------------------------------------------------------------------


def _gaussian_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """P(lo < X < hi) for X ~ N(0, 1), accurate in the tails (no 1 - 1 cancellation)."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        right = 0.5 * (erfc(lo / _SQRT2) - erfc(hi / _SQRT2))
        left = 0.5 * (erfc(-hi / _SQRT2) - erfc(-lo / _SQRT2))
        straddle = 1.0 - 0.5 * (erfc(-lo / _SQRT2) + erfc(hi / _SQRT2))
    return np.where(lo >= 0, right, np.where(hi <= 0, left, straddle))


def _gaussian_small_cell(centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Mass of a cell of small width w centred at c: w phi(c) (1 + w^2 (c^2 - 1) / 24).

    The midpoint rule with its second-order term; relative error O(w^4).  Needs no
    subtraction of nearby CDF values, so it holds for cells far below float64's
    resolution of the CDF (float32 and float64 spacings).
    """
    return width * np.exp(-0.5 * centre * centre - _LOG_SQRT_2PI) * (1.0 + width * width * (centre * centre - 1.0) / 24.0)


def _gaussian_neg_f_log_f(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """integral_lo^hi -phi(x) ln phi(x) dx, with -ln phi = x^2/2 + ln sqrt(2 pi).

    Uses integral x^2 phi dx = Phi(x) - x phi(x).
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    mass = _gaussian_mass(lo, hi)
    x_phi = lambda x: x * np.exp(-0.5 * x * x - _LOG_SQRT_2PI)  # noqa: E731
    second_moment = mass - (x_phi(hi) - x_phi(lo))
    return _LOG_SQRT_2PI * mass + 0.5 * second_moment


def _uniform_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """P(lo < X < hi) for X ~ U[-1, 1)."""
    lo = np.clip(np.asarray(lo, np.float64), -1.0, 1.0)
    hi = np.clip(np.asarray(hi, np.float64), -1.0, 1.0)
    return np.maximum(hi - lo, 0.0) / 2.0


def _uniform_neg_f_log_f(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return _uniform_mass(lo, hi) * _LN2  # -f ln f = (1/2) ln 2 on the support


def _uniform_small_cell(centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    return np.where(np.abs(centre) < 1.0, width / 2.0, 0.0)  # only used for cells inside (-1, 1)


_MASS = {"gaussian": _gaussian_mass, "uniform": _uniform_mass}
_SMALL_CELL = {"gaussian": _gaussian_small_cell, "uniform": _uniform_small_cell}
_NEG_F_LOG_F = {"gaussian": _gaussian_neg_f_log_f, "uniform": _uniform_neg_f_log_f}
# Beyond this magnitude the distribution has no mass a float64 can hold (Gaussian: < 1e-320).
_SUPPORT = {"gaussian": 38.5, "uniform": 1.0}


def cell_mass(lo: np.ndarray, hi: np.ndarray, distribution: str = "gaussian") -> np.ndarray:
    """Probability mass of the interval (lo, hi) under ``distribution``."""
    return _MASS[_check_distribution(distribution)](lo, hi)


_SMALL_WIDTH = 2.0**-12


def cell_mass_around(
    centre: np.ndarray, below: np.ndarray, above: np.ndarray, distribution: str = "gaussian"
) -> np.ndarray:
    """Mass of the cell (centre - below, centre + above), given exact half-widths.

    float64 cell edges (midpoints between neighbours) are not float64 numbers, so cells
    are described by a centre and the two exact distances to the edges.  Small cells use
    the midpoint rule at the true centre, large ones the distribution's CDF.
    """
    _check_distribution(distribution)
    centre, below, above = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (centre, below, above)))
    width = below + above
    with np.errstate(invalid="ignore", over="ignore"):
        small = np.isfinite(width) & (width < _SMALL_WIDTH) & (np.abs(centre) + width < _SUPPORT[distribution])
        by_rule = _SMALL_CELL[distribution](centre + 0.5 * (above - below), width)
        by_cdf = _MASS[distribution](centre - below, centre + above)
    return np.where(small, by_rule, by_cdf)


def _neg_p_log_p(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)


# ---------------------------------------------------------------------------------
# Enumeration: every representable value of a format of at most 16 bits.
# ---------------------------------------------------------------------------------


def representable_values(fmt: str | FloatFormat) -> np.ndarray:
    """All finite values of a format of at most 16 bits, sorted, +0 and -0 merged."""
    fmt = resolve_format(fmt)
    if fmt.total_bits > 16:
        raise ValueError(f"{fmt.name} has 2^{fmt.total_bits} values; enumerate only formats of <= 16 bits")
    patterns = torch.arange(2**fmt.total_bits, dtype=torch.int32)
    storage = torch.int16 if fmt.total_bits == 16 else torch.uint8
    # int32 -> int16 wraps modulo 2^16, so every bit pattern appears exactly once.
    values = patterns.to(storage).view(fmt.torch_dtype).to(torch.float64).numpy()
    return np.unique(values[np.isfinite(values)])


def _entropy_by_enumeration(fmt: FloatFormat, distribution: str) -> float:
    """Sum over every finite value; cells reach the midpoints to the neighbours.

    The cells of -max and +max extend to -inf and +inf: samples beyond the largest
    finite value overflow (to inf, or NaN for e4m3fn) and are counted with +-max.  Their
    mass is below 1e-300 for every format and distribution here.
    """
    values = representable_values(fmt)
    gaps = np.diff(values) / 2.0
    below = np.concatenate([[np.inf], gaps])
    above = np.concatenate([gaps, [np.inf]])
    p = cell_mass_around(values, below, above, distribution)
    return float(_neg_p_log_p(p).sum() / _LN2)


# ---------------------------------------------------------------------------------
# Binade by binade: float32, float64 (and, for cross-checks, any format).
# ---------------------------------------------------------------------------------


def _binade_terms_nats(fmt: FloatFormat, distribution: str, exponents: np.ndarray) -> np.ndarray:
    """-sum p ln p over the positive values of the binades [2^e, 2^(e+1)), e > e_min.

    Each binade = its first value 2^e (cell [2^e - delta/4, 2^e + delta/2]) plus 2^m - 1
    cells of width delta = 2^(e-m) tiling [2^e + delta/2, 2^(e+1) - delta/2].
    """
    e = np.asarray(exponents, np.float64)
    m = fmt.mantissa_bits
    base = np.exp2(e)
    delta = np.exp2(e - m)
    first = _neg_p_log_p(cell_mass_around(base, delta / 4, delta / 2, distribution))
    lo, hi = base + delta / 2, 2 * base - delta / 2
    mass = cell_mass(lo, hi, distribution)
    rest = -mass * (e - m) * _LN2 + _NEG_F_LOG_F[distribution](lo, hi)
    return first + rest


def _central_region_nats(fmt: FloatFormat, distribution: str) -> float:
    """Zero, the subnormals and the first normal binade: one spacing delta_s = 2^(e_min-m).

    Cells of width delta_s tile [-B, B] with B = 2^(e_min+1) - delta_s/2 (the zero cell
    is [-delta_s/2, delta_s/2]).  For float64 delta_s/2 underflows; B is then 2^(e_min+1)
    to within a relative 2^-53, and that region's entropy is below 1e-300 bits anyway.
    """
    emin, m = fmt.min_normal_exponent, fmt.mantissa_bits
    half_width = 2.0 ** (emin + 1) - 2.0 ** (emin - m - 1)
    mass = cell_mass(-half_width, half_width, distribution)
    return float(-mass * (emin - m) * _LN2 + _NEG_F_LOG_F[distribution](-half_width, half_width))


def _entropy_by_binades(fmt: FloatFormat, distribution: str) -> float:
    top = math.floor(math.log2(_SUPPORT[distribution]))
    if 2.0 ** (top + 1) > fmt.max_finite:
        raise ValueError(f"{fmt.name} overflows inside the support of {distribution}; enumerate it instead")
    exponents = np.arange(fmt.min_normal_exponent + 1, top + 1)
    total = _central_region_nats(fmt, distribution) + 2.0 * _binade_terms_nats(fmt, distribution, exponents).sum()
    return float(total / _LN2)


@lru_cache(maxsize=None)
def _entropy_bits_cached(fmt_name: str, distribution: str, method: str) -> float:
    fmt = FORMATS[fmt_name]
    if method == "enumerate":
        return _entropy_by_enumeration(fmt, distribution)
    return _entropy_by_binades(fmt, distribution)


def entropy_bits(fmt: str | FloatFormat, distribution: str = "gaussian", method: str = "auto") -> float:
    """Exact entropy in bits of one sample of ``distribution`` rounded to ``fmt``.

    Args:
        fmt: format name, e.g. ``"float32"``, ``"bfloat16"``, ``"float8_e4m3fn"`` (aliases
            such as ``"fp16"`` are accepted).
        distribution: ``"gaussian"`` (standard normal) or ``"uniform"`` (on [-1, 1)).
        method: ``"enumerate"`` (formats of <= 16 bits), ``"binades"`` (closed form per
            binade, any format whose range covers the distribution), or ``"auto"``.
    """
    fmt = resolve_format(fmt)
    _check_distribution(distribution)
    if method == "auto":
        method = "enumerate" if fmt.total_bits <= 16 else "binades"
    if method not in ("enumerate", "binades"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'enumerate' or 'binades'")
    return _entropy_bits_cached(fmt.name, distribution, method)

