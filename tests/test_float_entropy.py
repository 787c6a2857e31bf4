"""Exact entropy of a Gaussian / uniform rounded to a float format (seed "noise dimension" Sec. 4.1)."""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from core.float_entropy import (
    FORMATS,
    _binade_terms_nats,
    entropy_bits,
    representable_values,
    resolve_format,
)

LN2 = math.log(2.0)


def _plogp_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _upper_tail_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """P(lo < X < hi) for 0 <= lo < hi, from upper-tail probabilities (independent of the module)."""
    return ndtr(-lo) - ndtr(-hi)


def _brute_force_16bit(values: np.ndarray) -> float:
    """Entropy of N(0,1) rounded to a sorted set of values: masses between midpoints (Eq. 5)."""
    v = np.unique(values[np.isfinite(values)].astype(np.float64))
    edges = np.concatenate([[-np.inf], (v[:-1] + v[1:]) / 2, [np.inf]])
    return _plogp_bits(np.diff(ndtr(edges)))


def test_float16_matches_brute_force_over_all_bit_patterns():
    values = np.arange(2**16, dtype=np.uint16).view(np.float16)
    assert entropy_bits("float16") == pytest.approx(_brute_force_16bit(values), abs=1e-6)


def test_bfloat16_matches_brute_force_over_all_bit_patterns():
    # bfloat16 is the top half of a float32: shift each 16-bit pattern up by 16 bits.
    values = (np.arange(2**16, dtype=np.uint32) << 16).view(np.float32)
    assert entropy_bits("bfloat16") == pytest.approx(_brute_force_16bit(values), abs=1e-6)


def test_enumeration_sees_every_finite_value():
    assert len(representable_values("float16")) == 2**16 - 2 * 2**10 - 1  # no inf/NaN, +-0 merged
    assert len(representable_values("float8_e4m3fn")) == 2**8 - 2 - 1  # two NaN patterns, +-0 merged
    assert representable_values("float8_e4m3fn").max() == 448.0


@pytest.mark.parametrize("exponent", [0, -3, 2])
def test_float32_binade_matches_brute_force_sum(exponent):
    """All 2^23 values of one float32 binade, summed one by one, against the closed form."""
    m = 23
    base, delta = 2.0**exponent, 2.0 ** (exponent - m)
    values = base + delta * np.arange(2**m, dtype=np.float64)
    lower = np.concatenate([[base - delta / 4], values[1:] - delta / 2])  # the first cell reaches half as far down
    upper = values + delta / 2
    brute = _plogp_bits(_upper_tail_mass(lower, upper))
    closed_form = float(_binade_terms_nats(FORMATS["float32"], "gaussian", np.array([exponent]))[0] / LN2)
    assert closed_form == pytest.approx(brute, abs=2e-8)


@pytest.mark.parametrize("fmt", ["float16", "bfloat16", "float8_e5m2"])
@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
def test_binade_method_agrees_with_enumeration(fmt, distribution):
    """The closed form per binade, applied to small formats, agrees with enumeration (O(delta^2))."""
    tol = {"float16": 1e-6, "bfloat16": 2e-5, "float8_e5m2": 1e-2}[fmt]
    enumerated = entropy_bits(fmt, distribution, method="enumerate")
    assert entropy_bits(fmt, distribution, method="binades") == pytest.approx(enumerated, abs=tol)


def test_entropy_grows_with_precision():
    order = ["float8_e5m2", "float8_e4m3fn", "bfloat16", "float16", "float32", "float64"]
    values = [entropy_bits(f) for f in order]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_gaussian_closed_form_in_mantissa_bits():
    """H = h(N(0,1)) + m - E[floor(log2 |X|)] up to O(spacing): each extra mantissa bit adds one bit."""
    h = 0.5 * math.log2(2 * math.pi * math.e)
    e = np.arange(-150, 7)
    p_binade = 2 * (ndtr(-(2.0**e)) - ndtr(-(2.0 ** (e + 1))))
    expected_exponent = float((e * p_binade).sum())
    for fmt, m in [("float32", 23), ("float64", 52)]:
        assert entropy_bits(fmt) == pytest.approx(h + m - expected_exponent, abs=1e-6)
    assert entropy_bits("float64") - entropy_bits("float32") == pytest.approx(29.0, abs=1e-6)


def test_uniform_closed_form():
    """U[-1,1): binade 2^-k has mass 2^-k and cells of mass 2^(-k-m-1), so H = sum 2^-k (m+1+k) = m + 3."""
    assert entropy_bits("float32", "uniform") == pytest.approx(26.0, abs=1e-6)
    assert entropy_bits("float64", "uniform") == pytest.approx(55.0, abs=1e-9)


def test_exact_values_and_the_papers_table():
    """Seed Table 1 reports Monte Carlo values 11.36 / 26.55 / 55.56; the exact values differ (README)."""
    assert entropy_bits("float32") == pytest.approx(26.4637, abs=1e-4)
    assert entropy_bits("float64") == pytest.approx(55.4637, abs=1e-4)
    assert entropy_bits("float16") == pytest.approx(13.4637, abs=1e-4)
    assert abs(entropy_bits("float32") - 26.55) < 0.1  # near the published value, but not equal


def test_all_formats_fast():
    import time

    from core.float_entropy import _entropy_bits_cached

    _entropy_bits_cached.cache_clear()
    start = time.perf_counter()
    for fmt in FORMATS:
        entropy_bits(fmt)
    assert time.perf_counter() - start < 5.0


def test_aliases_and_unknown_format():
    assert resolve_format("fp16").name == "float16"
    assert resolve_format("bf16").name == "bfloat16"
    with pytest.raises(ValueError, match="float8"):
        resolve_format("float8")
    with pytest.raises(ValueError, match="cauchy"):
        entropy_bits("float32", "cauchy")
