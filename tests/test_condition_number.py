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


# ---------------------------------------------------------------------------------- the authors' protocol
def _face_only_map(seed=0):
    """x in R^16 -> an 8x8 image: x through an orthogonal map inside StyleGAN's face crop
    (rows 3..6, columns 2..5), a badly conditioned map of x outside it."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=g))
    spread = torch.diag(torch.logspace(0, 3, 16, dtype=torch.float64))  # singular values 1 .. 1000
    outside = torch.randn(48, 16, dtype=torch.float64, generator=g) @ spread
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[3:7, 2:6] = True

    def f(x):
        img = torch.zeros(x.shape[0], 1, 8, 8, dtype=x.dtype)
        img[:, 0][:, inside] = x @ q.T
        img[:, 0][:, ~inside] = x @ outside.T
        return img

    return f


def test_crop_measures_the_face_region_only():
    f = _face_only_map()
    cropped = condition_numbers(f, _gaussian(16), 300, batch_size=100, crop=True)
    # Inside the crop the map is orthogonal: C = 1 exactly (RNI Eq. 19 of an isometry).
    torch.testing.assert_close(cropped, torch.ones(300, dtype=torch.float64), atol=1e-6, rtol=0)
    whole = condition_numbers(f, _gaussian(16), 300, batch_size=100)
    assert float((whole - 1).abs().max()) > 0.5  # the ill-conditioned border counts without the crop


class _Injected(torch.nn.Module):
    """An ENI layer at full strength on an 8x8 one-channel image: y = x + eps."""

    def __init__(self):
        super().__init__()
        from lightning_modules.nets.noise_injection import NoiseInjection

        self.layer = NoiseInjection("eni", 8)
        with torch.no_grad():
            self.layer.strength.fill_(1.0)

    def forward(self, x):
        return self.layer(x, noise_mode="const")


def test_per_batch_noise_is_one_map_per_batch_shared_by_its_pairs():
    net = _Injected()
    fixed = net.layer.noise_const.clone()
    x0 = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)  # float64: no rounding in y(x + dx) - y(x)
    same_x = lambda n, g: x0.expand(n, -1, -1, -1).clone()  # noqa: E731
    c = condition_numbers(net, same_x, 12, batch_size=4, seed=5, redraw_noise=net)
    # y(x + dx) - y(x) = dx when both see one map m: C = |x| / |x + m|, equal within a batch
    # of 4 (one map for all its samples), different across batches (a fresh map each).
    batches = c.reshape(3, 4)
    torch.testing.assert_close(batches, batches[:, :1].expand(-1, 4), rtol=1e-5, atol=0)
    assert len({round(float(v), 6) for v in batches[:, 0]}) == 3
    with_fixed = float(x0.double().norm() / (x0 + fixed).double().norm())
    assert all(abs(float(v) - with_fixed) > 1e-6 for v in batches[:, 0])  # not the layer's own map
    torch.testing.assert_close(net.layer.noise_const, fixed)  # restored
    again = condition_numbers(net, same_x, 12, batch_size=4, seed=5, redraw_noise=net)
    torch.testing.assert_close(c, again)  # seeded
    # The closed form, with the maps drawn as condition_numbers draws them (after x and dx).
    rng = torch.Generator().manual_seed(5)
    torch.randint(0, 2**31 - 1, [], generator=rng)
    for b in range(3):
        torch.randn(4, 1, 8, 8, generator=rng, dtype=torch.float64)
        m = torch.randn(1, 1, 8, 8, generator=rng)
        expected = float(x0.double().norm() / (x0 + m).double().norm())
        assert float(batches[b, 0]) == pytest.approx(expected, rel=1e-4)


def test_callback_redraws_the_noise_per_batch_by_default():
    from callbacks.condition_number import ConditionNumber
    from lightning_modules.rni_stylegan2 import RNIStyleGAN2

    torch.manual_seed(0)
    model = RNIStyleGAN2(resolution=16, channels=1, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
                         noise={"dim": 8}, noise_injection="eni")  # fmt: skip
    layers = model.injection_layers(ema=True)
    with torch.no_grad():
        for layer in layers:
            layer.strength.fill_(0.5)  # ENI starts at 0: make the noise matter
    own = [layer.noise_const.clone() for layer in layers]
    seen = []
    hook = layers[0].register_forward_pre_hook(lambda m, args: seen.append(m.noise_const.clone()))
    callback = ConditionNumber(num_samples=6, batch_size=3)
    assert callback.noise_mode == "per_batch"
    values = callback._compute(model, [0, 1], 6, progress=False)
    hook.remove()
    assert len(seen) == 2 and seen[0].shape == (1, 1, 4, 4)  # one call per batch, one map for its samples
    assert not torch.equal(seen[0], seen[1])  # redrawn for the second batch
    assert not torch.equal(seen[0], own[0])
    for layer, before in zip(layers, own):
        torch.testing.assert_close(layer.noise_const, before)
    assert values[0].shape == (3,) and bool(torch.isfinite(values[1]).all())
    const = ConditionNumber(num_samples=6, batch_size=3, noise_mode="const")._compute(model, [0, 1], 6, progress=False)
    assert not torch.allclose(values[0], const[0])  # other maps, other numbers
