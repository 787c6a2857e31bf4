"""Entropy of the noise *as torch draws it*, derived from the samplers' algorithms.

Seed paper "Noise dimension of GAN", Theorem 4.2 and Eq. 11 use eps = H(Z), the entropy a
generator receives per sample, and need an *upper bound* on it (H(G(Z)) <= H(Z)).
:mod:`core.float_entropy` gives H of the ideal distribution rounded to a format; the noise
torch actually draws is a deterministic function of a finite number of random bits, so
it can carry less (and, per sample, its values can be dependent).  This module derives the
entropy of :meth:`core.noise.NoiseSpec.sample` from the algorithm of each sampler (read in
torch 2.14's ``ATen/native/cpu/DistributionTemplates.h``, ``ATen/core/DistributionsHelper.h``,
``ATen/core/TransformationHelper.h``, ``ATen/native/cuda/DistributionTemplates.h`` and
cuRAND's ``curand_uniform.h`` / ``curand_normal.h``), not by sampling.

The samplers
------------

``NoiseSpec.sample`` draws one contiguous ``[batch, dim]`` tensor per call: ``randn`` in
float32 (float64 for the float64 format) for ``gaussian``, ``2 * rand - 1`` for ``uniform``,
``randint(0, 2**bits)`` for ``discrete``; narrower formats are the float32 draw cast with
``.to(format)`` (one round-to-nearest-even).

CPU (mt19937; one 32-bit word per ``random()``, two per ``random64()``):

* ``rand`` float32: ``(random() & (2^24 - 1)) * 2^-24``, a uniform on the 2^24-point grid
  k 2^-24; float64: ``(random64() & (2^53 - 1)) * 2^-53``, the 2^53-point grid.
* ``randn`` with at least 16 elements (always, for a contiguous tensor): first every element
  is a uniform of the dtype's grid (24 or 53 bits); then each block of 16 becomes 8
  Box-Muller pairs: u1 = 1 - data[j], u2 = data[j + 8], r = sqrt(-2 ln u1),
  theta = 2 pi u2, data[j] = r cos theta, data[j + 8] = r sin theta (float32: AVX2
  ``log256_ps`` / ``sincos256_ps``; float64: libm).  If numel % 16 != 0 the *last 16*
  elements are redrawn from 16 new uniforms and transformed as one more block, so the
  first numel % 16 elements of the last whole block keep values whose partners were
  overwritten.
* ``randn`` with fewer than 16 elements: one at a time from ``normal_distribution<double>``:
  u1, u2 53-bit uniforms, r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, returns r cos theta and
  keeps r sin theta *in the generator* for the next such call (also a later call: the
  pairing runs across calls); the double is cast to the dtype.
* ``randint(0, 2^b)``, b <= 16: ``random() % 2^b`` per element: exactly b uniform bits.

CUDA (Philox4x32-10, ``distribution_nullary_kernel``): thread t of T = 256 * min(ceil(numel /
256), 8 * #SMs) threads draws one ``curand4`` (four 32-bit words) per step and writes its
components ii = 0..3 to elements t + ii*T (+ 4T per step), dropping those >= numel.

* ``rand`` float32: ``curand_uniform4``: u = fl32(float(x) * 2^-32 + 2^-33) per word x, where
  float(x) rounds the 32-bit x to 24 significant bits: 5 * 2^24 distinct non-equiprobable
  values in (0, 1]; torch then maps 1.0 to 0.0.  float64: ``curand_uniform2_double``:
  z = x ^ (y << 21) (53 uniform bits), u = fl64(z 2^-53 + 2^-54): for z >= 2^52 the sum
  is a tie and rounds to even, so the upper half of (0, 1] has 2^51 values of mass 2^-52.
* ``randn`` float32: ``curand_normal4``: two Box-Muller pairs, u from word x.x, angle
  v = fl32(float(y) * c + c / 2), c = fl32(2^-32 * fl32(2 pi)), s = sqrtf(-2 logf u),
  (sin v, cos v) from ``__sincosf``; pair partners land on elements T apart.  float64:
  ``curand_normal2_double``: one pair from all four words, u and v 53-bit as above,
  ``sincospi``.  With numel <= T (every noise tensor of a few hundred thousand values)
  every element is component 0 and its partner is dropped.
* ``randint``: ``curand4`` words % 2^b: exactly b bits.

The derivation
--------------

1. **Counting random bits.**  A value (or a group of values) is a function of the random
   words behind it, so its entropy is at most theirs.  A CPU Box-Muller pair is a function
   of two uniforms: at most 2 * 24 = 48 bits for two float32 values (24 per dimension), 106
   for two float64 values (53 per dimension).  This is a bound: rounding can make the
   pair map non-injective (e.g. theta = fl32(2 pi u2) takes fewer than 2^24 values above 4,
   where its spacing exceeds 2 pi 2^-24), which only lowers the entropy.
2. **One value alone** (a narrow format, whose cells are coarser than the draw, or a value
   whose Box-Muller partner is in another sample).  Its CDF F' is compared with the ideal
   F at the edges of the format's cells.  Gaussian: with the radius uniform U and the angle
   atom theta_k, the drawn value is R(U) c' with |c' - cos theta_k| <= rho (``rho``: the
   float error of the sampler's log/sqrt/sin/cos and products, relative to R; an
   assumption per sampler, checked against torch by ``tests/test_sampler_entropy.py``),
   and each angle atom lies within ``rho_theta`` of every angle of a continuous interval
   of the same mass.  R is monotone in U, so along one angle {X <= t} is an interval of
   U, which holds at most its length + ``atom_slack`` of mass (one grid point more).
   Averaged over the angle, with X = R cos(Theta) ~ N(0, 1) and rho' = rho + rho_theta:

       |F'(t) - F(t)| <= d(t) = P(|X - t| <= rho' R) + atom_slack,

   the zone bounded in closed form with R <= |t| + |Y| (:func:`_gaussian_zone`).  Uniform:
   2U - 1 is exact in the work format, so d(t) = atom_slack (plus the half-float32-ulp zone
   of double rounding where a float64 draw is cast through float32, 2^-24 |t|).  A cell
   [a, b] then has drawn mass p'_j = p_j + D(b) - D(a), D = F' - F: the mass one cell gains
   its neighbour loses.  S(p) = sum_j p_j (log2 c_j - log2 p_j), with c_j the number of
   format values in cell j, bounds the entropy and is concave, so

       H <= S(p) + sum_j (p'_j - p_j) G_j <= S(p) + sum_t d(t) |G_j - G_j+1|,   G_j = log2(c_j / p_j)

   (the tangent plane), where neighbouring cells of equal width have nearly equal G: the
   bound is the ideal H(format) plus a small derived margin (printed by
   ``python -m analysis float-entropy``).  float32/float64 are partitioned into 2^k
   sub-cells per binade, and the cells next to zero, far narrower than rho' R, are merged
   into one.  Below: H(p') = H(p) + sum (p' - p) g - KL(p' || p) with KL <= chi^2, plus each
   cell's min-entropy.  Cells beyond the largest radius r_max (1 + rho) get no draw.
3. **Uniform noise** needs no bound where the draw can be enumerated: 2^24 grid points (CPU
   float32) or the 5 * 2^24 cuRAND float atoms, pushed through fl(2u - 1) and the cast
   to the format, give the exact distribution; 2u - 1 of a 53-bit uniform is injective into
   float64 (53 bits on CPU; 52.5 on CUDA, whose upper half has half as many atoms).
4. **Per sample.**  Values from different pairs (blocks, words) are independent, so
   H(sample) is the sum over the pairs it meets: min(pair bits, 2 h1) for a pair inside the
   sample, min(pair bits, h1) for a value whose partner is elsewhere (another sample, or
   overwritten by the last block), where h1 is the one-value bound of step 2.  The pairs
   straddle samples when dim is not a multiple of 16 (CPU), and the last 16 elements move
   with batch * dim mod 16; the bound reported for ``batch_size=None`` is the largest over
   every batch size and every sample of it (a finite search: the layout is periodic), and a
   batch below 16 elements uses the one-at-a-time path (pairs running across calls).  On
   CUDA every value is counted alone (partners are T >= 256 elements away, or dropped).

``sampler: exact`` draws float64 (53-bit uniforms) and casts: for a format of at most 32
bits each value alone has its ideal entropy up to the derived margin, and every pair
carries 106 >= 2 H(format) bits, so no layout lowers it.  float64 noise cannot be drawn
at its ideal entropy (55.46 bits per value) from double-precision arithmetic: the exact
sampler refuses it (:func:`check_sampler`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Union

import numpy as np
import torch
from scipy.special import ndtr

from core.float_entropy import FORMATS, FloatFormat, cell_mass, cell_mass_around, entropy_bits, representable_values

__all__ = [
    "DEVICES",
    "SAMPLERS",
    "Bounds",
    "check_sampler",
    "device_type",
    "scalar_entropy_bits",
    "noise_entropy_bits",
    "sample_layout",
]

SAMPLERS = ("torch", "exact")
DEVICES = ("cpu", "cuda")

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_PHI0 = 1.0 / math.sqrt(2.0 * math.pi)
_Y0 = 12.0  # |Y| beyond this is handled by its tail mass in the zone bound


# =================================================================================== sources
@dataclass(frozen=True)
class _Source:
    """How one scalar is drawn before the cast to the noise format (see the module docstring).

    Attributes:
        name: which torch/cuRAND path.
        pair_bits: entropy bound of the random words behind one Box-Muller pair.
        atom_slack: sup over intervals J of P(U in J) - |J| for the radius' (or the uniform's) uniform U.
        rho: float error of the drawn value relative to R (Gaussian; an assumption, tested).
        rho_theta: distance from each angle atom to a continuous uniform angle of its mass.
        r_max: the largest radius (the smallest uniform is 2^-24, 2^-53, ...).
    """

    name: str
    pair_bits: float
    atom_slack: float
    rho: float
    rho_theta: float
    r_max: float


def _radius(u: float) -> float:
    return math.sqrt(-2.0 * math.log(u))


_SOURCES = {
    # AVX2 (or the scalar std:: fallback) Box-Muller on 24-bit uniforms.  rho: theta = fl32(fl32(2 pi) u2) is off by
    # <= 1.75e-7 + 2^-22 (= 2^-21.2), sincos256_ps / log256_ps + sqrt <= 2^-22 each, the
    # product 2^-24: 2^-20 in all (measured: 2^-21.2).
    "cpu_float32": _Source("cpu vectorised Box-Muller, float32, 24-bit uniforms", 48.0, 2.0**-24,
                           2.0**-20, 2 * math.pi * 2.0**-24, _radius(2.0**-24)),
    # libm Box-Muller in double on 53-bit uniforms (the vectorised float64 path and the
    # one-at-a-time normal_distribution<double>): a few ulp; measured 2^-51.5.
    "cpu_float64": _Source("cpu Box-Muller in double, 53-bit uniforms", 106.0, 2.0**-53,
                           2.0**-48, 2 * math.pi * 2.0**-53, _radius(2.0**-53)),
    # curand_normal4: u, v from one 32-bit word each (float(x) rounds to 24 bits: atoms
    # within 1.5 2^-24 of their mass), __sincosf (assumed <= 2^-20 absolute on (0, 2 pi]),
    # logf + sqrtf <= 2^-22: rho = 2^-18 (2x margin on __sincosf).
    "cuda_float32": _Source("cuda curand_normal4, float32", 64.0, 2.0**-22, 2.0**-18, 2.0**-19.5,
                            _radius(2.0**-33)),
    # curand_normal2_double: u, v 53-bit (the upper half merged in pairs), log + sincospi.
    "cuda_float64": _Source("cuda curand_normal2_double, float64", 128.0, 2.0**-52, 2.0**-47,
                            math.pi * 2.0**-51, _radius(2.0**-54)),
}


def device_type(device: Union[str, torch.device, None]) -> str:
    """``cpu`` / ``cuda`` / ... of a device, a device string, or ``None`` (cpu)."""
    if device is None:
        return "cpu"
    return torch.device(device).type


def check_sampler(sampler: str, fmt: str, distribution: str) -> None:
    """Raise ``ValueError`` if ``sampler`` cannot draw ``fmt`` noise at the entropy it promises.

    ``torch`` can draw anything: its entropy is reported as drawn.  ``exact`` promises the
    ideal entropy of the format; for float64 that needs more than the 53 random bits per
    value and the double-precision arithmetic any torch sampler has, so it is refused.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown noise.sampler {sampler!r}; expected one of: {', '.join(SAMPLERS)}")
    if sampler == "exact" and fmt == "float64" and distribution != "discrete":
        raise ValueError(
            f"noise.sampler: exact cannot draw float64 {distribution} noise at its ideal entropy "
            f"({entropy_bits('float64', distribution):.4f} bits per value): double-precision arithmetic on 53-bit "
            "uniforms does not resolve every float64 value.  Use noise.sampler: torch (its entropy is reported as "
            "drawn: at most 53 bits per dimension on the CPU) or noise.format: float32 with sampler: exact."
        )


# ===================================================================== one value: the bounds
@dataclass(frozen=True)
class Bounds:
    """Bounds on the entropy (bits) of one noise value as drawn; ``exact`` when lower == upper by derivation."""

    lower: float
    upper: float
    exact: bool = False


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.square(x)) * _PHI0


def _gaussian_zone(t: np.ndarray, rho: float) -> np.ndarray:
    """Upper bound on P(|X - t| <= rho R) for X = R cos(Theta) ~ N(0, 1), R = sqrt(X^2 + Y^2).

    On the event R <= (|t| + |Y|) / (1 - rho), so it lies in |X - t| <= l(Y) with
    l(y) = rho''(|t| + |y|), rho'' = rho / (1 - rho); given Y = y that has probability
    <= 2 l(y) phi(max(0, |t| - l(y))).  |Y| <= y0 and |Y| > y0 are bounded separately.
    """
    t = np.abs(np.asarray(t, np.float64))
    r2 = rho / (1.0 - rho)
    with np.errstate(invalid="ignore"):
        inner = (t + _SQRT_2_OVER_PI) * _phi(np.maximum(0.0, t - r2 * (t + _Y0)))
        tail = _PHI0 * (t * 2.0 * ndtr(-_Y0) + 2.0 * float(_phi(np.array(_Y0))))
    zone = 2.0 * r2 * (inner + tail)
    return np.where(np.isfinite(t), np.minimum(zone, 1.0), 0.0)


def _gaussian_zone_max(lo: np.ndarray, hi: np.ndarray, rho: float) -> np.ndarray:
    """An upper bound on :func:`_gaussian_zone` over every t with lo <= |t| <= hi."""
    r2 = rho / (1.0 - rho)
    hi_f = np.where(np.isfinite(hi), hi, lo)
    inner = (hi_f + _SQRT_2_OVER_PI) * _phi(np.maximum(0.0, lo - r2 * (hi_f + _Y0)))
    tail = _PHI0 * (hi_f * 2.0 * ndtr(-_Y0) + 2.0 * float(_phi(np.array(_Y0))))
    return np.minimum(2.0 * r2 * (inner + tail), 1.0)


@dataclass
class _Partition:
    """Cells [lo, hi] of the real line (edges: midpoints of the format), each holding ``count`` values.

    ``width`` is the largest rounding-cell width of a single value in the cell, ``near`` its
    smallest |x| (both for the within-cell min-entropy of the lower bound).
    """

    lo: np.ndarray
    hi: np.ndarray
    count: np.ndarray
    width: np.ndarray
    near: np.ndarray = field(init=False)
    far: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.near = np.where((self.lo <= 0) & (self.hi >= 0), 0.0, np.minimum(np.abs(self.lo), np.abs(self.hi)))
        self.far = np.maximum(np.abs(self.lo), np.abs(self.hi))


def _narrow_partition(fmt: FloatFormat, tau: float) -> _Partition:
    """Every value of a <= 16-bit format, those with |v| < tau merged into one central cell."""
    values = representable_values(fmt)
    half = np.diff(values) / 2.0
    lo = np.concatenate([[-np.inf], values[1:] - half])
    hi = np.concatenate([values[:-1] + half, [np.inf]])
    width = hi - lo
    central = np.abs(values) < tau
    if central.sum() > 1:
        first, last = np.flatnonzero(central)[[0, -1]]
        lo = np.concatenate([lo[:first], [lo[first]], lo[last + 1 :]])
        hi = np.concatenate([hi[:first], [hi[last]], hi[last + 1 :]])
        count = np.concatenate([np.ones(first), [central.sum()], np.ones(len(values) - last - 1)])
        width = np.concatenate([width[:first], [np.inf], width[last + 1 :]])
    else:
        count = np.ones(len(values))
    return _Partition(lo, hi, count.astype(np.float64), width)


def _wide_partition(fmt: FloatFormat, central_exponent: int, top_exponent: int, depth: np.ndarray) -> _Partition:
    """float32/float64: |x| < 2^central_exponent is one cell; binade e splits into 2^depth[e] cells.

    In binade [2^e, 2^(e+1)) the values are 2^e + i delta (delta = 2^(e - m)); the rounding
    cell of a value reaches delta/2 each way, except 2^e's, which reaches delta/4 down.  A
    sub-cell of 2^(m - k) consecutive values spans their rounding cells.
    """
    m, emin = fmt.mantissa_bits, fmt.min_normal_exponent
    ec = max(central_exponent, emin)
    los, his, counts, widths = [], [], [], []
    for i, e in enumerate(range(ec, top_exponent + 1)):
        k = int(depth[i])
        delta = 2.0 ** (e - m)
        per = 2.0 ** (m - k)
        j = np.arange(2**k, dtype=np.float64)
        lo = 2.0**e + (j * per - 0.5) * delta
        lo[0] = 2.0**e - delta / 4.0
        hi = 2.0**e + ((j + 1) * per - 0.5) * delta
        los.append(lo)
        his.append(hi)
        counts.append(np.full(2**k, per))
        widths.append(np.full(2**k, delta))
    lo, hi = np.concatenate(los), np.concatenate(his)
    count, width = np.concatenate(counts), np.concatenate(widths)
    # values below 2^ec: zero, the subnormals (2^m - 1), normal binades emin..ec-1 (2^m each).
    central_count = 2 * ((2**m - 1) + (ec - emin) * 2**m) + 1
    c_edge = 2.0**ec - 2.0 ** (ec - m) / 4.0
    full_lo = np.concatenate([-hi[::-1], [-c_edge], lo])
    full_hi = np.concatenate([-lo[::-1], [c_edge], hi])
    full_count = np.concatenate([count[::-1], [central_count], count])
    full_width = np.concatenate([width[::-1], [np.inf], width])
    full_lo[0], full_hi[-1] = -np.inf, np.inf  # beyond the last binade: the outermost cells reach infinity
    return _Partition(full_lo, full_hi, full_count.astype(np.float64), full_width)


@dataclass(frozen=True)
class _Model:
    """What the bounds need from a source: the CDF difference allowed at each edge, the reach.

    ``rho``: Gaussian float error relative to R (rho + rho_theta); ``rho_t``: a rounding zone
    relative to |t| (float64 -> float32 -> narrow: the first rounding moves a value by at most
    half a float32 ulp, 2^-24 |t|); ``slack``: one atom of the uniform behind the radius.
    """

    distribution: str
    rho: float
    rho_t: float
    slack: float
    reach: float

    def zone(self, t: np.ndarray) -> np.ndarray:
        t = np.abs(np.asarray(t, np.float64))
        if self.distribution == "gaussian":
            with np.errstate(invalid="ignore"):
                rounding = 2.0 * self.rho_t * t * _phi(t * (1.0 - self.rho_t))
            return np.where(np.isfinite(t), np.minimum(1.0, _gaussian_zone(t, self.rho) + rounding), 0.0)
        return np.where(np.isfinite(t), self.rho_t * np.minimum(t, 1.0), 0.0)

    def zone_max(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        far = np.where(np.isfinite(far), far, near)
        if self.distribution == "gaussian":
            rounding = 2.0 * self.rho_t * far * _phi(near * (1.0 - self.rho_t))
            return np.minimum(1.0, _gaussian_zone_max(near, far, self.rho) + rounding)
        return self.rho_t * np.minimum(far, 1.0)

    def density_max(self, near: np.ndarray) -> np.ndarray:
        if self.distribution == "gaussian":
            return _phi(near)
        return np.where(near <= 1.0, 0.5, 0.0)


def _ideal_masses(part: _Partition, distribution: str) -> np.ndarray:
    if distribution == "uniform":  # linear CDF: exact from the edges
        return cell_mass(part.lo, part.hi, distribution)
    finite = np.isfinite(part.lo) & np.isfinite(part.hi)
    with np.errstate(invalid="ignore"):
        centre = np.where(finite, (part.lo + part.hi) / 2, 0.0)
    return np.where(
        finite,
        cell_mass_around(centre, centre - part.lo, part.hi - centre, distribution),
        cell_mass(part.lo, part.hi, distribution),
    )


def _clip_to_reach(part: _Partition, reach: float) -> _Partition:
    """Drop the cells no draw reaches (|x| > reach); the outermost kept cells extend to infinity.

    Their ideal mass then includes the tail; the drawn values in them are still their own.
    """
    keep = np.flatnonzero(part.near <= reach)
    first, last = keep[0], keep[-1]
    sl = slice(first, last + 1)
    lo, hi = part.lo[sl].copy(), part.hi[sl].copy()
    lo[0], hi[-1] = -np.inf, np.inf
    return _Partition(lo, hi, part.count[sl], part.width[sl])


def _flow_bounds(part: _Partition, model: _Model) -> Bounds:
    """Bounds on the drawn entropy from the CDF differences at the cells' edges.

    With F' the drawn CDF and F the ideal one, the drawn mass of cell j is
    p'_j = p_j + D(b_j) - D(a_j), D = F' - F, and |D(t)| <= d(t) = zone(t) + slack (module
    docstring).  The functional S(p) = sum p_j (log2 c_j - log2 p_j) (an upper bound on the
    entropy of a value whose cell j holds c_j values) is concave, so
    S(p') <= S(p) + sum_j (p'_j - p_j) G_j = S(p) + sum_t D(t) (G_below(t) - G_above(t))
    <= S(p) + sum_t d(t) |G_below - G_above|,   G_j = log2 c_j - log2 p_j.
    Below: H(p') = H(p) + sum (p' - p) g - KL(p' || p) >= H(p) - sum_t d(t) |dg| - log2(e) chi^2,
    chi^2 = sum_j (d(a_j) + d(b_j))^2 / p_j, plus in each cell of several values at least its
    min-entropy, -log2(largest single-value mass / drawn cell mass).
    """
    part = _clip_to_reach(part, model.reach)
    p = _ideal_masses(part, model.distribution)
    if np.any(p <= 0):
        raise AssertionError("a cell of the partition has no ideal mass")
    d = model.zone(part.hi[:-1]) + model.slack  # edges between consecutive cells
    log_c, g = np.log2(part.count), -np.log2(p)
    big_g = log_c + g
    upper = float((p * big_g).sum() + (d * np.abs(np.diff(big_g))).sum())
    d_cell = np.concatenate([[0.0], d]) + np.concatenate([d, [0.0]])
    chi2 = float((np.square(d_cell) / p).sum())
    h_cell = float((p * g).sum() - (d * np.abs(np.diff(g))).sum() - chi2 / math.log(2.0))
    least = np.maximum(0.0, p - d_cell)
    per_value = part.width * model.density_max(part.near) + 2.0 * (model.zone_max(part.near, part.far) + model.slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.where((part.count > 1) & (least > 0) & np.isfinite(per_value), np.log2(least / per_value), 0.0)
    inside = np.clip(inside, 0.0, log_c)
    lower = h_cell + float((least * inside).sum())
    return Bounds(lower=min(lower, upper), upper=upper)


def _model(source: _Source, distribution: str, double_rounded: bool) -> _Model:
    rho_t = 2.0**-24 if double_rounded else 0.0
    if distribution == "gaussian":
        rho = source.rho + source.rho_theta
        return _Model("gaussian", rho, rho_t, source.atom_slack, source.r_max * (1.0 + rho))
    return _Model("uniform", 0.0, rho_t, source.atom_slack, 1.0)


def _zone_scale(model: _Model, x: float) -> float:
    """Width below which a cell at |x| is dominated by the CDF slack at its edges."""
    if model.distribution == "gaussian":
        dens = max(float(_phi(np.array(x))), 1e-300)
        return max(2.0 * model.rho * (x + 1.0) + 2.0 * model.rho_t * x, model.slack / dens)
    return max(2.0 * model.rho_t * x, 2.0 * model.slack)


def _bounds_for_format(model: _Model, fmt: FloatFormat) -> Bounds:
    """:func:`_flow_bounds` over a few partitions (central cell, sub-cell depth); each is valid, keep the tightest.

    The central cell spans ``factor`` times the width below which cells near zero drown in
    their edges' slack: small for the upper bound, larger for the lower bound's chi^2.
    """
    base = math.log2(_zone_scale(model, 0.0))
    narrow = fmt.total_bits <= 16
    max_depth = min(fmt.mantissa_bits, 12 if fmt.total_bits == 32 else 10)
    results = []
    for factor in (2.0**-8, 2.0**-2, 4.0, 64.0, 256.0) if narrow else (2.0**-8, 2.0**-2, 4.0):
        central = math.ceil(base + math.log2(factor))
        if narrow:
            part = _narrow_partition(fmt, 2.0**central)
        else:
            top = math.floor(math.log2(model.reach))
            central = max(min(central, top), fmt.min_normal_exponent)
            room = [2.0**e / (factor * _zone_scale(model, 2.0 ** (e + 1))) for e in range(central, top + 1)]
            depth = [int(np.clip(math.floor(math.log2(r)), 0, max_depth)) for r in room]
            part = _wide_partition(fmt, central, top, np.array(depth))
        results.append(_flow_bounds(part, model))
    return Bounds(lower=max(b.lower for b in results), upper=min(b.upper for b in results))


# ==================================================================== uniform: enumerated
def _grouped_entropy(values: np.ndarray, mass: np.ndarray) -> float:
    """Entropy of a distribution given by sorted atoms (equal neighbours merged)."""
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    grouped = np.add.reduceat(mass, starts)
    grouped = grouped[grouped > 0]
    return float(-(grouped * np.log2(grouped)).sum())


class _StreamingEntropy:
    """Entropy of sorted atoms fed in chunks (a value may continue across chunks)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.last_value: Optional[float] = None
        self.last_mass = 0.0

    def add(self, values: np.ndarray, mass: np.ndarray) -> None:
        if len(values) == 0:
            return
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        grouped = np.add.reduceat(mass, starts)
        firsts = values[starts]
        if self.last_value is not None and firsts[0] == self.last_value:
            grouped[0] += self.last_mass
        elif self.last_value is not None:
            self._close(self.last_mass)
        self.total += float(-(grouped[:-1][grouped[:-1] > 0] * np.log2(grouped[:-1][grouped[:-1] > 0])).sum())
        self.last_value, self.last_mass = float(firsts[-1]), float(grouped[-1])

    def _close(self, m: float) -> None:
        if m > 0:
            self.total -= m * math.log2(m)

    def result(self) -> float:
        self._close(self.last_mass)
        self.last_value, self.last_mass = None, 0.0
        return self.total


_NARROW = ("bfloat16", "float16", "float8_e4m3fn", "float8_e5m2")


def _cast(values32: np.ndarray, fmt: str) -> np.ndarray:
    """float32 values cast to ``fmt`` by torch (round to nearest even), back as float64."""
    return torch.from_numpy(values32).to(FORMATS[fmt].torch_dtype).double().numpy()


def _uniform_cpu_float32() -> dict[str, float]:
    """CPU: the 2^24 equiprobable k 2^-24; 2u - 1 is exact in float32 (so 24 bits), then cast: exact entropies."""
    k = np.arange(2**24, dtype=np.float64)
    z = (2.0 * k * 2.0**-24 - 1.0).astype(np.float32)
    mass = np.full(2**24, 2.0**-24)
    return {"float32": 24.0, **{fmt: _grouped_entropy(_cast(z, fmt), mass) for fmt in _NARROW}}


def _curand_float_atoms():
    """The atoms float(x), x in [0, 2^32), of cuRAND's float uniforms, with their integer counts, in chunks.

    x < 2^24 is exact; above, binade k (spacing s = 2^(k-23)) rounds to nearest even: a
    value with even mantissa takes s + 1 integers, odd s - 1, the first (2^k) s/2 + 1 + s/4
    (k >= 25; 2 for k = 24), and 2^32 the top 128.
    """
    yield np.arange(2**24, dtype=np.float64), np.ones(2**24)
    for k in range(24, 32):
        s = 2.0 ** (k - 23)
        mant = np.arange(2**23, 2**24, dtype=np.float64)
        f = mant * s
        count = np.where(mant % 2 == 0, s + 1, s - 1)
        count[0] = 1 + s / 2 + (s / 4 if k >= 25 else 0)
        yield f, count
    yield np.array([2.0**32]), np.array([128.0])


def _uniform_cuda_float32() -> dict[str, float]:
    """CUDA: u = fl32(float(x) 2^-32 + 2^-33) (1.0 -> 0.0), fl32(2u - 1), cast: exact entropies by enumeration."""
    streams = {fmt: _StreamingEntropy() for fmt in ("float32", *_NARROW)}
    reversed_mass, chunks = 0.0, []
    for f, count in _curand_float_atoms():
        u = (f * 2.0**-32 + 2.0**-33).astype(np.float32).astype(np.float64)  # exact sum in double, one rounding
        one = u == 1.0
        reversed_mass += float(count[one].sum()) * 2.0**-32
        z = (2.0 * u[~one] - 1.0).astype(np.float32)  # 2u exact; the difference rounded once, as fl32
        chunks.append((z, count[~one] * 2.0**-32))
    # the reversed atoms (u = 1 -> 0) give z = -1, the smallest value: they go first.
    chunks.insert(0, (np.array([-1.0], np.float32), np.array([reversed_mass])))
    for z, mass in chunks:
        for fmt, stream in streams.items():
            stream.add(z.astype(np.float64) if fmt == "float32" else _cast(z, fmt), mass)
    return {fmt: stream.result() for fmt, stream in streams.items()}


# The enumerations above take 2 s and 20 s; their results (tests/test_sampler_entropy.py recomputes them):
_UNIFORM_FLOAT32 = {
    "cpu": {"float32": 24.0, "bfloat16": 10.002389986229694, "float16": 12.999969462793397,
            "float8_e4m3fn": 6.0074204067228845, "float8_e5m2": 5.077695510728903},
    "cuda": {"float32": 24.473664058427055, "bfloat16": 10.002400460984312, "float16": 13.000053114816732,
             "float8_e4m3fn": 6.007420408489862, "float8_e5m2": 5.077695536276952},
}
_CUDA_FLOAT64_UNIFORM_BITS = 52.5  # 2^52 atoms of 2^-53 below 1/2, 2^51 of 2^-52 above (to ~1e-15)


# ============================================================================ one value
@lru_cache(maxsize=None)
def scalar_entropy_bits(distribution: str, fmt: str, device: str = "cpu", sampler: str = "torch",
                        path: str = "vectorised") -> Bounds:
    """Bounds on the entropy of *one* noise value as ``sampler`` draws it on ``device``.

    ``path`` (CPU Gaussian, torch sampler): ``vectorised`` (>= 16 elements) or ``small``
    (one-at-a-time doubles).  Discrete noise is not a float draw: see :func:`noise_entropy_bits`.
    """
    fmt_ = FORMATS[fmt]
    if device not in DEVICES:
        raise ValueError(f"no derivation for device {device!r}")
    small = device == "cpu" and path == "small" and distribution == "gaussian"
    double = sampler == "exact" or fmt == "float64" or small
    source = _SOURCES[f"{device}_{'float64' if double else 'float32'}"]
    # The small path casts its doubles to float32 in the kernel, then .to(format) rounds again;
    # the exact sampler rounds float64 once (round-to-odd to float32 first, see core.noise).
    double_rounded = sampler == "torch" and double and fmt_.total_bits <= 16
    if distribution == "uniform":
        if not double:
            value = _UNIFORM_FLOAT32[device][fmt]
            return Bounds(value, value, exact=True)
        if fmt == "float64":
            value = 53.0 if device == "cpu" else _CUDA_FLOAT64_UNIFORM_BITS
            return Bounds(value, value, exact=True)
    if distribution not in ("gaussian", "uniform"):
        raise ValueError(f"unknown distribution {distribution!r}")
    model = _model(source, distribution, double_rounded)
    return _bounds_for_format(model, fmt_)


# ================================================================================= layout
def _cpu_partners(total: int) -> np.ndarray:
    """Partner of each element of a CPU ``randn`` of ``total >= 16`` elements (-1: overwritten/alone)."""
    pos = np.arange(total)
    partner = np.where(pos % 16 < 8, pos + 8, pos - 8)
    rem = total % 16
    if rem:
        tail = total - 16
        overwritten = partner >= tail
        partner[overwritten] = -1
        q = pos[tail:] - tail
        partner[tail:] = np.where(q < 8, pos[tail:] + 8, pos[tail:] - 8)
    return partner


def sample_layout(dim: int, batch_size: int) -> list[tuple[int, int]]:
    """(pairs inside the sample, values whose partner is elsewhere) for each sample of a CPU Gaussian draw.

    ``batch_size * dim < 16`` draws one value at a time, pairing consecutive values across
    calls (the generator's cache): a sample then has at most one unpaired value at each end.
    """
    total = batch_size * dim
    if total < 16:
        singles = 1 if dim % 2 else min(dim, 2)
        return [((dim - singles) // 2, singles)] * batch_size
    partner = _cpu_partners(total)
    rows = np.arange(total) // dim
    inside = (partner >= 0) & (partner // dim == rows) if dim else partner >= 0
    pairs = np.bincount(rows[inside], minlength=batch_size) // 2
    singles = np.bincount(rows[~inside], minlength=batch_size)
    return list(zip(pairs.tolist(), singles.tolist()))


def _batch_sizes(dim: int) -> range:
    """Enough batch sizes to meet every sample layout: the layout repeats with batch * dim mod 16."""
    return range(1, 64 + 2 * math.ceil(64 / dim) + 1)


@lru_cache(maxsize=None)
def noise_entropy_bits(
    dim: int,
    distribution: str,
    fmt: str,
    bits: int = 8,
    device: str = "cpu",
    sampler: str = "torch",
    batch_size: Optional[int] = None,
) -> float:
    """Upper bound on H of one sample (``dim`` values) of ``NoiseSpec.sample`` as drawn, in bits.

    ``batch_size=None``: the bound for any batch size (the largest over every batch and
    every sample of it); an integer: for that batch size.  Exact for discrete noise and
    for uniform noise drawn in float32 or float64 by torch (see :func:`scalar_entropy_bits`).
    """
    if device not in DEVICES:
        raise ValueError(f"no derivation for device {device!r}")
    if distribution == "discrete":
        return float(dim * bits)  # random() % 2^bits per value (CPU and CUDA): exactly uniform
    check_sampler(sampler, fmt, distribution)
    batches = list(_batch_sizes(dim)) if batch_size is None else [batch_size]
    # Below 16 values CPU randn draws doubles one at a time (the "small" path).
    small_path = device == "cpu" and sampler == "torch" and distribution == "gaussian" and min(batches) * dim < 16

    def one_value(path: str) -> float:
        return scalar_entropy_bits(distribution, fmt, device, sampler, path).upper

    if distribution == "uniform" or sampler == "exact" or device == "cuda" or FORMATS[fmt].total_bits <= 16:
        # Independent values (uniform), or a value's bound below half its pair's bits (narrow
        # formats, the exact sampler, CUDA where partners are T >= 256 elements away or dropped).
        h = one_value("vectorised")
        return dim * (max(h, one_value("small")) if small_path else h)
    pair_bits = _SOURCES[f"cpu_{'float64' if fmt == 'float64' else 'float32'}"].pair_bits
    h_vec = one_value("vectorised")
    h_small = one_value("small") if small_path else math.nan

    def bound(batch: int) -> float:
        h, pb = (h_small, _SOURCES["cpu_float64"].pair_bits) if batch * dim < 16 else (h_vec, pair_bits)
        return max(p * min(pb, 2 * h) + s * min(pb, h) for p, s in sample_layout(dim, batch))

    return float(max(bound(b) for b in batches))
