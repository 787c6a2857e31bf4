"""The project's counter-based stream (core/counter_rng.py): Philox4x64-10 words and Box-Muller normals.

The words are checked against Random123's published known answer and, bit for bit, against
``numpy.random.Philox`` (an independent implementation of the same block function); the
normals against hard-coded values that a second, independent formula (Python's ``math``
on NumPy's words) reproduces.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.counter_rng import log_f64, philox4x64_10, philox_words, sincos_2pi, standard_normals, uniform_open

#: Random123's kat_vectors, philox4x64-10 with counter 0 and key 0.
KAT_ZERO = (0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B)
#: The first normals of the stream with key (0, 0), computed once by standard_normals.
FIRST_NORMALS = (
    1.3643421337447963,
    -1.7368866713773916,
    -0.5832384371550831,
    0.022785962185410305,
    0.15853383451843941,
    2.982879282617074,
    -1.9256919819171856,
    -0.8249255452762648,
)


def _numpy_words(n: int, key: int, first_block: int = 0) -> np.ndarray:
    """NumPy's Philox4x64-10 words; NumPy adds 1 to its counter before each block."""
    counter = (first_block - 1) % 2**256
    return np.random.Philox(key=key, counter=counter).random_raw(n)


def test_philox_block_matches_the_published_known_answer():
    zero = np.zeros(1, dtype=np.uint64)
    block = philox4x64_10((zero, zero, zero, zero), (0, 0))
    assert tuple(int(w[0]) for w in block) == KAT_ZERO
    assert tuple(int(w) for w in philox_words(4, (0, 0))) == KAT_ZERO


@pytest.mark.parametrize("key, first_block", [((0, 0), 0), ((42, 0), 0), ((2**64 - 1, 7), 3), ((123, 2**63), 1000)])
def test_philox_words_match_numpy_bit_for_bit(key, first_block):
    ours = philox_words(4 * 1000 + 3, key, first_block)
    theirs = _numpy_words(4 * 1000 + 3, key[0] + (key[1] << 64), first_block)
    assert ours.dtype == np.uint64 and np.array_equal(ours, theirs)


def test_uniforms_are_53_bit_on_the_half_open_interval():
    words = np.array([0, 2**11 - 1, 2**11, 2**64 - 1], dtype=np.uint64)
    assert uniform_open(words).tolist() == [2.0**-53, 2.0**-53, 2.0**-52, 1.0]


def test_log_and_sincos_are_exact_to_float64():
    x = np.concatenate([np.random.default_rng(0).uniform(0, 1, 20000), [2.0**-53, 0.5, 2**-0.5, 1.0, 1e-300]])
    reference = np.array([math.log(v) for v in x])
    assert np.max(np.abs(log_f64(x) - reference) / np.maximum(np.abs(reference), 1.0)) < 1e-15
    assert log_f64(np.array([1.0]))[0] == 0.0
    v = np.concatenate([np.random.default_rng(1).uniform(0, 1, 20000), [0.0, 0.125, 0.25, 0.5, 0.75, 1.0]])
    sin, cos = sincos_2pi(v)
    assert np.max(np.abs(sin - [math.sin(2 * math.pi * a) for a in v])) < 2e-15
    assert np.max(np.abs(cos - [math.cos(2 * math.pi * a) for a in v])) < 2e-15


def test_first_normals_are_known_and_match_an_independent_box_muller():
    ours = standard_normals(8, (0, 0))
    assert ours.tolist() == list(FIRST_NORMALS)  # bit for bit: the stream a .ganz file depends on
    words = _numpy_words(8, 0)
    independent = []
    for w0, w1 in zip(words[0::2], words[1::2]):
        u, v = ((int(w0) >> 11) + 1) / 2**53, ((int(w1) >> 11) + 1) / 2**53
        r = math.sqrt(-2 * math.log(u))
        independent += [r * math.cos(2 * math.pi * v), r * math.sin(2 * math.pi * v)]
    assert np.allclose(ours, independent, rtol=1e-14, atol=1e-14)
    assert np.array_equal(ours.astype(np.float32), np.array(independent, dtype=np.float32))
    # A stream is a function of (key, position): a later start gives the same numbers.
    assert np.array_equal(standard_normals(4, (0, 0), first_block=1), ours[4:])
    assert not np.array_equal(standard_normals(8, (1, 0)), ours)


def test_normals_have_the_standard_moments():
    z = standard_normals(400_003, (5, 0))
    assert z.shape == (400_003,)
    assert abs(z.mean()) < 5 / math.sqrt(len(z))  # 5 standard errors
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * len(z))
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6826894921370859) < 0.005
    assert abs(np.mean(z**4) - 3.0) < 0.05
