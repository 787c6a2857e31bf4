"""DCGAN networks, the EMA and the adversarial losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.losses import d_loss_fn, g_loss_fn
from lightning_modules.nets import EMA, DCGANDiscriminator, DCGANGenerator, ema_beta


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
def test_dcgan_shapes_and_range(resolution):
    g = DCGANGenerator(z_dim=10, resolution=resolution, out_channels=3, width=8)
    d = DCGANDiscriminator(resolution=resolution, in_channels=3, width=8)
    x = g(torch.randn(5, 10))
    assert x.shape == (5, 3, resolution, resolution)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (5,)


def test_dcgan_gradients_reach_every_parameter():
    g = DCGANGenerator(z_dim=4, resolution=16, out_channels=1, width=4)
    d = DCGANDiscriminator(resolution=16, in_channels=1, width=4)
    d(g(torch.randn(3, 4))).sum().backward()
    for net in (g, d):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dcgan_rejects_bad_resolution_and_noise_shape():
    with pytest.raises(ValueError, match="48"):
        DCGANGenerator(z_dim=4, resolution=48)
    with pytest.raises(ValueError, match="4"):
        DCGANDiscriminator(resolution=4)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        DCGANGenerator(z_dim=4, resolution=8)(torch.randn(2, 5))


def test_ema_is_a_lerp_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model)
    start = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(7.0)
    ema.update(model, beta=0.75)
    for s, p_ema, p in zip(start, ema.module.parameters(), model.parameters()):
        assert torch.allclose(p_ema, 0.75 * s + 0.25 * p)
        assert not p_ema.requires_grad
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 7.0))
    ema.update(model, beta=0.0)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), model.parameters()))


def test_ema_beta_half_life_in_images():
    # After ema_kimg * 1000 images the old weights have half their weight.
    beta = ema_beta(batch_size=32, ema_kimg=10.0, images_seen=10**6)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    # Ramp-up: with 1000 images seen and rampup 0.05, the half-life is 50 images.
    assert ema_beta(batch_size=50, ema_kimg=10.0, images_seen=1000, ema_rampup=0.05) == pytest.approx(0.5)


def test_losses_closed_forms():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    ns_d = d_loss_fn("non_saturating")(real, fake)
    expected = (math.log(2) + math.log1p(math.exp(-2))) / 2 + (math.log(2) + math.log1p(math.exp(-1))) / 2
    assert ns_d.item() == pytest.approx(expected)
    assert g_loss_fn("non_saturating")(fake).item() == pytest.approx(F.softplus(-fake).mean().item())
    assert d_loss_fn("hinge")(real, fake).item() == pytest.approx((1 + 0) / 2 + (1 + 0) / 2)
    assert g_loss_fn("hinge")(fake).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="wasserstein"):
        d_loss_fn("wasserstein")
