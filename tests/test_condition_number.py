"""MC / TTMC (RNI paper Eq. 19, Table 2): closed forms for linear maps, noise handling, the callback."""

import math

import pytest
import torch

from evaluation.condition_number import condition_numbers, mc_ttmc, top_count


def _gaussian(dim):
    return lambda n, g: torch.randn(n, dim, generator=g, dtype=torch.float64)


def _expected_ratio_2d(kappa, steps=200_000):
    """E[C] for x -> diag(1, kappa) x with isotropic 2-D x and dx.

    |A u| / |u| depends only on the angle t of u, uniform on [0, 2 pi):
    g(t) = sqrt(cos^2 t + kappa^2 sin^2 t), and C = g(t_dx) / g(t_x) with independent angles,
    so E[C] = E[g] E[1 / g] (midpoint rule).
    """
    t = (torch.arange(steps, dtype=torch.float64) + 0.5) * (2 * math.pi / steps)
    g = torch.sqrt(torch.cos(t) ** 2 + kappa**2 * torch.sin(t) ** 2)
    return float(g.mean() * (1 / g).mean())


def test_orthogonal_map_has_condition_number_one():
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    c = condition_numbers(lambda x: x @ q.T * 3.0, _gaussian(16), 500, batch_size=128)
    torch.testing.assert_close(c, torch.ones(500, dtype=torch.float64), atol=1e-6, rtol=0)


def test_linear_map_with_known_singular_values():
    kappa = 10.0
    rot = torch.tensor([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]], dtype=torch.float64)
    a = rot @ torch.diag(torch.tensor([1.0, kappa], dtype=torch.float64))  # singular values 1 and 10
    c = condition_numbers(lambda x: x @ a.T, _gaussian(2), 20_000, batch_size=4096, seed=1)
    # C is at most sigma_max / sigma_min, reached when dx is along the top and x along the bottom
    # singular direction; its mean is E[g] E[1/g].
    assert float(c.max()) <= kappa * (1 + 1e-6)
    assert float(c.max()) > 0.95 * kappa
    mc, ttmc = mc_ttmc(c)
    assert mc == pytest.approx(_expected_ratio_2d(kappa), rel=0.03)
    assert mc < ttmc <= kappa


def test_top_count_scales_with_the_sample_count():
    assert top_count(50_000) == 1000  # the paper: the top 1000 of 50,000
    assert top_count(5_000) == 100
    assert top_count(10) == 1
    mc, ttmc = mc_ttmc(torch.arange(1.0, 101.0), top_fraction=0.05)
    assert mc == pytest.approx(50.5) and ttmc == pytest.approx(98.0)  # mean of 96..100


def test_same_noise_realisation_for_both_evaluations():
    # f adds random noise; replaying the RNG makes G(x + dx) - G(x) the step alone.
    def noisy(x):
        return x + torch.randn_like(x)

    replayed = condition_numbers(noisy, _gaussian(8), 200, batch_size=50, replay_rng=True)
    fresh = condition_numbers(lambda x: torch.cat([noisy(x[: len(x) // 2]), noisy(x[len(x) // 2 :])]), _gaussian(8), 200)
    assert float(replayed.mean()) < 10  # about |x| / |x + eps|: order 1
    assert float(fresh.mean()) > 1e3  # the noise difference swamps a 1e-4 step


def test_same_seed_gives_the_same_pairs():
    f = torch.tanh
    a = condition_numbers(f, _gaussian(4), 64, batch_size=64, seed=3)
    b = condition_numbers(f, _gaussian(4), 64, batch_size=64, seed=3)
    torch.testing.assert_close(a, b)


def test_zero_output_is_a_clear_error():
    with pytest.raises(FloatingPointError, match="not finite"):
        condition_numbers(lambda x: torch.zeros_like(x), _gaussian(3), 4)
