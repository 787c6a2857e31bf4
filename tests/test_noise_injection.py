"""Noise injection layers (RNI paper Eq. 13-18) and the DCGAN with injection."""

import pytest
import torch

from lightning_modules.nets.dcgan_noise import NoiseInjectedDCGANGenerator
from lightning_modules.nets.noise_injection import NoiseInjection, RNIOptions, set_noise_mode


def test_eni_with_zero_strength_is_the_identity():
    layer = NoiseInjection("eni", 8)
    mu = torch.randn(4, 5, 8, 8)
    assert float(layer.strength.detach()) == 0.0  # Eq. 18, r initialised to 0
    torch.testing.assert_close(layer(mu, "random"), mu, atol=0, rtol=0)


def test_eni_adds_one_map_per_sample_shared_by_the_channels():
    layer = NoiseInjection("eni", 8)
    with torch.no_grad():
        layer.strength.fill_(2.0)
    mu = torch.zeros(3, 4, 8, 8)
    out = layer(mu, "random")
    torch.testing.assert_close(out[:, 0], out[:, 3])
    assert not torch.equal(out[0], out[1])
    assert 1.5 < float(out.detach().std()) < 2.5
    torch.testing.assert_close(layer(mu, "const"), 2.0 * layer.noise_const.expand(3, 4, 8, 8))
    torch.testing.assert_close(layer(mu, "none"), mu)


def test_rni_with_alpha_one_a_zero_b_one_is_a_pure_rescale():
    # Eq. 15-16 with A = 0, b = 1, alpha = 1: s' = 1 everywhere, so sigma is a constant map and
    # (noise off) o = r sigma mu is mu times a constant, for any mu.
    for norm, expected in (("rms", 1.0), ("l2", 1.0 / 8)):
        layer = NoiseInjection("rni", 8, RNIOptions(norm=norm))
        with torch.no_grad():
            layer.A.zero_()
            layer.b.fill_(1.0)
            layer.alpha.fill_(1.0)
            layer.strength.fill_(3.0)
        mu = torch.randn(2, 6, 8, 8)
        torch.testing.assert_close(layer(mu, "none"), 3.0 * expected * mu)


def test_rni_sigma_follows_eq_13_to_16():
    torch.manual_seed(0)
    layer = NoiseInjection("rni", 4)
    with torch.no_grad():
        layer.A.copy_(torch.rand(4, 4))
        layer.b.copy_(torch.rand(4, 4))
        layer.alpha.fill_(0.3)
    mu = torch.randn(2, 3, 4, 4)
    red = mu.sum(dim=1, keepdim=True)  # Eq. 13
    s = red - red.mean(dim=[2, 3], keepdim=True)
    s = s / s.abs().amax(dim=[2, 3], keepdim=True)  # Eq. 14
    s_d = layer.A * s + layer.b  # Eq. 15
    s_p = 0.3 * s_d + 0.7  # Eq. 16
    sigma = s_p / s_p.square().mean(dim=[2, 3], keepdim=True).sqrt()
    torch.testing.assert_close(layer.sigma(mu), sigma.detach(), atol=1e-5, rtol=1e-5)
    eps = layer.noise_const
    torch.testing.assert_close(layer(mu, "const"), (sigma * (mu + eps)).detach(), atol=1e-5, rtol=1e-5)  # Eq. 17, r=1


@pytest.mark.parametrize("reduction", ["sum", "relu_neg_sum", "abs_sum", "neg_max"])
def test_rni_options_of_the_authors_code_run_and_differ(reduction):
    torch.manual_seed(0)
    mu = torch.randn(2, 3, 8, 8)
    paper = NoiseInjection("rni", 8).sigma(mu)
    opts = RNIOptions(reduction=reduction, scaling="unit", form="authors", affine_init="random")
    layer = NoiseInjection("rni", 8, opts)
    assert float(layer.strength.detach()) == 0.0  # authors: noise strength starts at 0
    sigma = layer.sigma(mu)
    assert sigma.shape == (2, 1, 8, 8) and torch.isfinite(sigma).all()
    assert not torch.allclose(sigma, paper)
    # authors' form with strength 0: o = sigma * mu whatever the noise
    torch.testing.assert_close(layer(mu, "random"), sigma * mu)


def test_rni_gradients_reach_every_parameter():
    layer = NoiseInjection("rni", 8)
    layer(torch.randn(2, 3, 8, 8), "random").square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="rni.reduction"):
        RNIOptions(reduction="mean")
    with pytest.raises(ValueError, match="noise_injection"):
        NoiseInjection("gaussian", 8)
    with pytest.raises(ValueError, match="unknown rni key"):
        RNIOptions.coerce({"reductoin": "sum"})


@pytest.mark.parametrize("resolution,blocks", [(64, 4), (32, 3)])
def test_dcgan_with_injection_after_each_hidden_block(resolution, blocks):
    G = NoiseInjectedDCGANGenerator(100, resolution, 3, 64, noise_injection="rni")
    assert [layer.resolution for layer in G.injections] == [4, 8, 16, 32][:blocks]
    chans = [G.fc.out_features // 16] + [b[0].out_channels for b in G.blocks]
    assert chans == [512, 256, 128, 64][-blocks:] if resolution == 64 else chans == [256, 128, 64]
    G.eval()
    z = torch.randn(3, 100)
    x = G(z, noise_mode="const")
    assert x.shape == (3, 3, resolution, resolution) and x.abs().max() <= 1
    torch.testing.assert_close(x, G(z, noise_mode="const"), atol=0, rtol=0)
    set_noise_mode(G, "random")
    assert not torch.equal(G(z), G(z))
