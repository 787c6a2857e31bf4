"""A counter-based random stream the project owns: Philox4x64-10 words and normals built from them.

Where a number must be the same on every machine and with every library version -- the
fixed random layer that a ``.ganz`` file's pixels depend on -- neither ``torch.randn`` nor
NumPy's samplers will do: their streams are theirs to change (PyTorch's CPU normals changed
with vectorisation; NumPy's legacy and new samplers differ).  Here everything is the
project's own arithmetic on integers and on IEEE-754 float64 with the correctly rounded
operations only (+, -, *, /, sqrt, and exact steps such as ``frexp``), so a stream depends
on nothing but its key and counter.

* :func:`philox4x64_10` -- the Philox4x64 block function with 10 rounds (Salmon, Moraes,
  Dror, Shaw 2011, "Parallel random numbers: as easy as 1, 2, 3"; the constants are the
  paper's).  Block ``i`` of a stream with key (k0, k1) is ``philox4x64_10((i, 0, 0, 0), (k0, k1))``:
  four 64-bit words.  It is the bit generator behind ``numpy.random.Philox``, whose
  ``random_raw()`` the tests use as an independent check (NumPy increments its counter
  *before* each block, so its block ``i`` is our ``i + 1``).
* :func:`philox_words` -- the first ``n`` words of a stream, blocks in order, the four words
  of a block in order.
* :func:`uniform_open` -- word w -> ((w >> 11) + 1) * 2^-53, a uniform on (0, 1] (53 bits; never 0).
* :func:`standard_normals` -- Box-Muller in float64: words (w0, w1, w2, w3) of each block give
  u_a = U(w0), v_a = U(w1), u_b = U(w2), v_b = U(w3) and four normals
  r_a cos(2 pi v_a), r_a sin(2 pi v_a), r_b cos(2 pi v_b), r_b sin(2 pi v_b), with
  r = sqrt(-2 log u).  ``log``, ``cos`` and ``sin`` are :func:`log_f64` and :func:`sincos_2pi`,
  written here with + - * / only (not ``numpy.log``, whose SIMD kernels differ between
  CPUs by an ulp), so the float64 normals are bit-identical everywhere.

Vectorised over NumPy ``uint64`` arrays: the 64 x 64 -> 128-bit products are assembled from
32-bit halves.  About 1 s per 10 million normals on one core.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "CHUNK_BLOCKS",
    "PHILOX_M",
    "PHILOX_W",
    "log_f64",
    "philox4x64_10",
    "philox_words",
    "sincos_2pi",
    "standard_normals",
    "uniform_open",
]

#: Philox4x64's multipliers and Weyl key increments (Salmon et al. 2011, Table 2 / Random123).
PHILOX_M = (0xD2E7470EE14C6C93, 0xCA5A826395121157)
PHILOX_W = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
#: blocks per chunk of :func:`standard_normals` (4 normals each).
CHUNK_BLOCKS = 1 << 18


def _mulhilo(a: int, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit halves of the 128-bit product of the constant ``a`` and the words ``b``."""
    a_lo, a_hi = np.uint64(a & 0xFFFFFFFF), np.uint64(a >> 32)
    b_lo, b_hi = b & _MASK32, b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    cross = (lo_lo >> _S32) + (hi_lo & _MASK32) + (lo_hi & _MASK32)  # < 3 * 2^32: no overflow
    high = a_hi * b_hi + (hi_lo >> _S32) + (lo_hi >> _S32) + (cross >> _S32)
    low = (cross << _S32) | (lo_lo & _MASK32)
    return high, low


def philox4x64_10(counter: Sequence[np.ndarray], key: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The Philox4x64-10 block function on counters (four ``uint64`` arrays of equal shape), one key.

    Each round: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2 (128-bit products);
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); between rounds the key gains (W0, W1) mod 2^64.
    """
    with np.errstate(over="ignore"):
        c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
        k0, k1 = int(key[0]) % 2**64, int(key[1]) % 2**64
        for round_ in range(10):
            if round_:
                k0, k1 = (k0 + PHILOX_W[0]) % 2**64, (k1 + PHILOX_W[1]) % 2**64
            hi0, lo0 = _mulhilo(PHILOX_M[0], c0)
            hi1, lo1 = _mulhilo(PHILOX_M[1], c2)
            c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return c0, c1, c2, c3


def philox_words(n: int, key: tuple[int, int], first_block: int = 0) -> np.ndarray:
    """The first ``n`` 64-bit words (``uint64`` [n]) of the stream with ``key``, from block ``first_block``."""
    if n < 0:
        raise ValueError(f"the number of words must be >= 0, got {n}")
    blocks = -(-n // 4)
    counter = np.arange(first_block, first_block + blocks, dtype=np.uint64)
    zero = np.zeros_like(counter)
    out = np.stack(philox4x64_10((counter, zero, zero, zero), key), axis=1)  # [blocks, 4]
    return out.reshape(-1)[:n]


def uniform_open(words: np.ndarray) -> np.ndarray:
    """Words -> float64 uniforms on (0, 1]: ((w >> 11) + 1) * 2^-53, exact."""
    return ((np.asarray(words, dtype=np.uint64) >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53


_LN2 = 0.6931471805599453  # float64 nearest to ln 2
_SQRT_HALF = 0.7071067811865476


def log_f64(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite float64 values, with + - * / and ``frexp`` only (error < 2 ulp).

    x = m 2^e with m in [sqrt(1/2), sqrt(2)), log x = e ln 2 + 2 atanh(s), s = (m - 1)/(m + 1),
    |s| < 0.172, and atanh's series s + s^3/3 + ... + s^23/23 (truncation < 1e-19).
    """
    x = np.asarray(x, dtype=np.float64)
    m, e = np.frexp(x)  # m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # exact
    e = (e - low.astype(e.dtype)).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = np.full_like(s, 1.0 / 23.0)
    for k in range(21, 0, -2):
        series = series * s2 + 1.0 / k
    return e * _LN2 + 2.0 * s * series


def sincos_2pi(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin 2 pi v, cos 2 pi v) for float64 v in [0, 1], with + - * and ``floor`` only (error ~ 1e-16).

    The quarter turn q = floor(4 v) is split off exactly, t = (4 v - q - 1/2) pi/2 lies in
    [-pi/4, pi/4), where Taylor series to t^17 / t^18 are exact to float64; the quadrant and
    the half-quarter offset (angle sum with sin = cos = sqrt(1/2)) give the rest.
    """
    v = np.asarray(v, dtype=np.float64)
    f = 4.0 * v  # exact (a power of two)
    q = np.floor(f)
    t = (f - q - 0.5) * (math.pi / 2)
    t2 = t * t
    sin_t = np.full_like(t, 1.0)
    cos_t = np.full_like(t, 1.0)
    for k in range(17, 1, -2):  # sin t = t (1 - t^2/(2*3) (1 - t^2/(4*5) (...)))
        sin_t = 1.0 - t2 / (k * (k - 1)) * sin_t
    sin_t = t * sin_t
    for k in range(18, 0, -2):  # cos t = 1 - t^2/(1*2) (1 - t^2/(3*4) (...))
        cos_t = 1.0 - t2 / (k * (k - 1)) * cos_t
    # angle a = q pi/2 + pi/4 + t: first pi/4 + t, then the quadrant's rotation.
    s45 = (sin_t + cos_t) * _SQRT_HALF
    c45 = (cos_t - sin_t) * _SQRT_HALF
    quadrant = q.astype(np.int64) % 4
    sin_a = np.select([quadrant == 0, quadrant == 1, quadrant == 2], [s45, c45, -s45], -c45)
    cos_a = np.select([quadrant == 0, quadrant == 1, quadrant == 2], [c45, -s45, -c45], s45)
    return sin_a, cos_a


def standard_normals(n: int, key: tuple[int, int], first_block: int = 0) -> np.ndarray:
    """``n`` standard normals (float64 [n]) from the stream with ``key`` by Box-Muller (module docstring).

    Computed in chunks of :data:`CHUNK_BLOCKS` blocks, so memory stays at a few times the output's.
    """
    if n < 0:
        raise ValueError(f"the number of normals must be >= 0, got {n}")
    blocks = -(-n // 4)
    out = np.empty(blocks * 4, dtype=np.float64)
    for start in range(0, blocks, CHUNK_BLOCKS):
        count = min(CHUNK_BLOCKS, blocks - start)
        words = philox_words(count * 4, key, first_block + start).reshape(-1, 4)
        u = uniform_open(words)
        r = np.sqrt(-2.0 * log_f64(u[:, [0, 2]]))  # [count, 2]: r_a, r_b
        sin_v, cos_v = sincos_2pi(u[:, [1, 3]])
        chunk = out[start * 4 : (start + count) * 4].reshape(count, 4)
        chunk[:, 0], chunk[:, 1] = r[:, 0] * cos_v[:, 0], r[:, 0] * sin_v[:, 0]
        chunk[:, 2], chunk[:, 3] = r[:, 1] * cos_v[:, 1], r[:, 1] * sin_v[:, 1]
    return out[:n]
