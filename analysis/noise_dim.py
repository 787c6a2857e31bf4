"""Noise dimension a perfect GAN needs (seed "noise dimension", Sec. 4.3, Theorem 4.2, Table 3).

A generator g maps noise Z of n float values to images.  With each value stored in a
float format, H(Z) = n H(format) (Noise-dim Eq. 7), and a deterministic g cannot add entropy:
H(Z) >= H(g(Z)) (Noise-dim Lemma 4.1, Eq. 8).  A perfect GAN reproduces the data distribution, so
H(g(Z)) = H(X), and Kraft's inequality gives H(X) >= E[L(X)] - 1 for the minimal
expected code length E[L(X)] in bits.  Theorem 4.2:

    Noise-dim Eq. 9:   n >= H(X) / H(format) >= (E[L(X)] - 1) / H(format)

and, when g is bijective (H(Z) = H(X)), Yao's random-number-generation bound gives

    Noise-dim Eq. 10:  n <= (H(X) + 2) / H(format) <= (E[L(X)] + 2) / H(format).

The paper replaces E[L(X)] by the rate of a practical lossless codec (Table 2, bytes per
image times 8; :mod:`analysis.codec_rate` measures it) and H(format) by its Table 1, and
publishes the resulting n in Table 3.  A practical codec's rate is at least the minimal
E[L(X)], so the numbers are estimates of the bounds, not guaranteed bounds.

This module gives the two bounds as real numbers and as integers (n is a count of
noise values: the smallest n of Noise-dim Eq. 9 is ``ceil``, the largest of Eq. 10 is ``floor``),
with H(format) either exact (:func:`core.float_entropy.entropy_bits`) or the
paper's Table 1, and checks which formula and rounding reproduce Table 3
(:func:`table3_candidates`, :func:`ceil_consistent_entropy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from analysis.codec_rate import PAPER_TABLE_2
from analysis.float_entropy import PAPER_TABLE_1
from core.float_entropy import entropy_bits, resolve_format

__all__ = [
    "PAPER_TABLE_1",
    "PAPER_TABLE_2",
    "PAPER_TABLE_3",
    "ENTROPY_SOURCES",
    "NoiseDimBound",
    "lower_bound",
    "upper_bound",
    "noise_dim_bound",
    "format_entropy",
    "TABLE3_RULES",
    "table3_candidates",
    "ceil_consistent_entropy",
    "ceil_consistent_bits",
]

#: Seed paper, Table 3: the noise dimension a perfect GAN needs, from JPEG-XL's bytes (Table 2).
PAPER_TABLE_3: dict[str, dict[str, int]] = {
    "CIFAR10": {"float16": 1110, "float32": 475, "float64": 227},
    "LSUN-Church": {"float16": 44324, "float32": 18966, "float64": 9063},
}

ENTROPY_SOURCES = ("exact", "paper")


def lower_bound(bits_per_image: float, entropy: float) -> float:
    """Noise-dim Eq. 9: (E[L(X)] - 1) / H(format), the least noise dimension of a perfect GAN."""
    return (bits_per_image - 1.0) / entropy


def upper_bound(bits_per_image: float, entropy: float) -> float:
    """Noise-dim Eq. 10: (E[L(X)] + 2) / H(format), the most noise dimension of a perfect bijective GAN."""
    return (bits_per_image + 2.0) / entropy


@dataclass(frozen=True)
class NoiseDimBound:
    """Theorem 4.2 for one rate and one format.

    Attributes:
        bits_per_image: E[L(X)] in bits (a codec's mean rate).
        entropy: H(format) in bits per noise value.
        lower: Noise-dim Eq. 9, real.
        upper: Noise-dim Eq. 10, real.
    """

    bits_per_image: float
    entropy: float
    lower: float
    upper: float

    @property
    def n_min(self) -> int:
        """The smallest integer n with n >= Noise-dim Eq. 9 (``ceil``): Table 3's quantity."""
        return math.ceil(self.lower)

    @property
    def n_max_bijective(self) -> int:
        """The largest integer n with n <= Noise-dim Eq. 10 (``floor``).

        The interval [lower, upper] is 3 / H(format) wide, under one value for every
        format of at least 4 bits of entropy, so ``n_max_bijective < n_min`` is common:
        no integer n satisfies both.
        """
        return math.floor(self.upper)


def noise_dim_bound(bits_per_image: float, entropy: float) -> NoiseDimBound:
    """Noise-dim Eq. 9 and Eq. 10 for a rate of ``bits_per_image`` and noise of ``entropy`` bits per value.

    Raises:
        ValueError: a rate or an entropy that is not a positive finite number.
    """
    for label, value in (("bits per image", bits_per_image), ("entropy", entropy)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{label} must be a positive finite number, got {value!r}")
    lower, upper = lower_bound(bits_per_image, entropy), upper_bound(bits_per_image, entropy)
    return NoiseDimBound(bits_per_image, entropy, lower, upper)


def format_entropy(fmt: str, source: str = "exact", distribution: str = "gaussian") -> float:
    """H(format) in bits: ``exact`` (core.float_entropy) or ``paper`` (seed Table 1, Gaussian only).

    Raises:
        ValueError: an unknown format or source, or a format/distribution Table 1 lacks.
    """
    name = resolve_format(fmt).name
    if source == "exact":
        return entropy_bits(name, distribution)
    if source == "paper":
        if distribution != "gaussian":
            raise ValueError(f"the paper's Table 1 is for Gaussian noise only, not {distribution}")
        if name not in PAPER_TABLE_1:
            known = ", ".join(PAPER_TABLE_1)
            raise ValueError(f"the paper's Table 1 has no {name} (it has {known}); use the exact entropy")
        return PAPER_TABLE_1[name]
    raise ValueError(f"unknown entropy source {source!r}; expected one of: {', '.join(ENTROPY_SOURCES)}")


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


#: Formulas tried against Table 3: name -> n from (bits per image, H).
TABLE3_RULES: dict[str, Callable[[float, float], int]] = {
    "ceil((8B - 1) / H)": lambda bits, h: math.ceil((bits - 1) / h),
    "round((8B - 1) / H)": lambda bits, h: _round_half_up((bits - 1) / h),
    "ceil(8B / H)": lambda bits, h: math.ceil(bits / h),
    "round(8B / H)": lambda bits, h: _round_half_up(bits / h),
    "floor((8B + 2) / H)": lambda bits, h: math.floor((bits + 2) / h),
    "ceil((8B + 2) / H)": lambda bits, h: math.ceil((bits + 2) / h),
    "round((8B + 2) / H)": lambda bits, h: _round_half_up((bits + 2) / h),
}


def table3_candidates(codec: str = "jpegxl") -> dict[str, dict[tuple[str, str], int]]:
    """Each rule of :data:`TABLE3_RULES` applied to Table 2's bytes of ``codec`` with Table 1's H.

    Returns ``{rule: {(dataset, format): n}}`` for the six cells of Table 3.
    """
    out: dict[str, dict[tuple[str, str], int]] = {}
    for rule, func in TABLE3_RULES.items():
        out[rule] = {
            (dataset, fmt): func(8.0 * PAPER_TABLE_2[dataset][codec], PAPER_TABLE_1[fmt])
            for dataset, cells in PAPER_TABLE_3.items()
            for fmt in cells
        }
    return out


def ceil_consistent_entropy(cells: Sequence[tuple[float, int]]) -> Optional[tuple[float, float]]:
    """The interval [lo, hi) of H for which ceil((bits - 1) / H) equals n in every (bits, n) cell.

    ceil((bits - 1) / H) = n  <=>  (bits - 1) / n <= H < (bits - 1) / (n - 1).
    ``None`` when no single H fits all cells.
    """
    lo = max((bits - 1) / n for bits, n in cells)
    hi = min((bits - 1) / (n - 1) if n > 1 else math.inf for bits, n in cells)
    return (lo, hi) if lo < hi else None


def ceil_consistent_bits(cells: Sequence[tuple[float, int]]) -> Optional[tuple[float, float]]:
    """The interval (lo, hi] of bits per image for which ceil((bits - 1) / H) equals n in every (H, n) cell.

    ceil((bits - 1) / H) = n  <=>  (n - 1) H + 1 < bits <= n H + 1.
    ``None`` when no single rate fits all cells.
    """
    lo = max((n - 1) * h + 1 for h, n in cells)
    hi = min(n * h + 1 for h, n in cells)
    return (lo, hi) if lo < hi else None
