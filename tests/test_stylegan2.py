"""StyleGAN2 ops and networks: fast paths against reference paths, parameter counts, shapes."""

import pytest
import torch

from lightning_modules.nets.stylegan2 import MinibatchStdLayer, StyleGAN2Discriminator, StyleGAN2Generator
from lightning_modules.nets.stylegan2_ops import (
    conv2d_resample,
    conv2d_resample_reference,
    downsample2d,
    fir_filter,
    modulated_conv2d,
    modulated_conv2d_reference,
    upfirdn2d,
    upfirdn2d_reference,
    upsample2d,
)

F64 = torch.float64


@pytest.mark.parametrize(
    "up,down,pad,gain",
    [(1, 1, (1, 2, 0, 3), 1.0), (2, 1, (2, 1, 2, 1), 4.0), (1, 2, (1, 1, 1, 1), 1.0), (2, 1, (-1, 3, 0, 0), 4.0)],
)
def test_upfirdn2d_matches_reference(up, down, pad, gain):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 7, dtype=F64)
    f = fir_filter().double()
    ref = upfirdn2d_reference(x, f, up, down, pad, gain)
    fast = upfirdn2d(x, f, up, down, pad, gain)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


def test_upfirdn2d_asymmetric_filter_is_a_true_convolution():
    # An impulse through a non-symmetric filter comes out as the filter itself, not flipped.
    x = torch.zeros(1, 1, 5, 5, dtype=F64)
    x[0, 0, 2, 2] = 1
    f = torch.arange(1.0, 7.0, dtype=F64).reshape(2, 3)
    for fn in (upfirdn2d, upfirdn2d_reference):
        y = fn(x, f, padding=(2, 2, 1, 1))
        torch.testing.assert_close(y[0, 0, 2:4, 2:5], f)


def test_fir_up_and_down_preserve_a_constant():
    f = fir_filter()
    x = torch.full((1, 2, 8, 8), 3.0)
    torch.testing.assert_close(upsample2d(x, f)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))
    torch.testing.assert_close(downsample2d(x, f)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_conv2d_resample_matches_reference(k, up, down):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8, dtype=F64)
    w = torch.randn(4, 3, k, k, dtype=F64)
    ref = conv2d_resample_reference(x, w, fir_filter().double(), up, down)
    fast = conv2d_resample(x, w, fir_filter().double(), up, down)
    assert fast.shape == (2, 4, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_reference(up, fused, demodulate):
    torch.manual_seed(2)
    x = torch.randn(3, 4, 8, 8, dtype=F64)
    w = torch.randn(5, 4, 3, 3, dtype=F64)
    s = torch.randn(3, 4, dtype=F64)
    f = fir_filter().double()
    ref = modulated_conv2d_reference(x, w, s, f, up=up, demodulate=demodulate)
    fast = modulated_conv2d(x, w, s, f, up=up, demodulate=demodulate, fused=fused)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


def test_demodulation_gives_unit_output_variance():
    # Eq. 2-3 of StyleGAN2: i.i.d. unit-variance inputs -> unit-variance outputs, whatever the styles.
    torch.manual_seed(3)
    x = torch.randn(16, 128, 12, 12)
    w = torch.randn(64, 128, 3, 3)
    s = torch.randn(16, 128) * 5
    y = modulated_conv2d(x, w, s, fir_filter())[..., 1:-1, 1:-1]  # interior: no zero padding in the window
    per_channel = y.var(dim=[0, 2, 3])
    torch.testing.assert_close(per_channel.mean(), torch.tensor(1.0), atol=0.03, rtol=0)
    assert per_channel.min() > 0.85 and per_channel.max() < 1.15


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "res,mapping,mbstd,d_arch,g_params,d_params",
    [
        # The figures of NVlabs/stylegan2-ada-pytorch at channel base 16384, max 512 (../shared/ANCHORS.md).
        (32, 2, 32, "orig", 19_947_539, 20_720_641),
        (64, 8, 8, "resnet", 23_819_544, 23_407_361),
        (128, 8, 4, "resnet", 24_525_213, 23_882_369),
    ],
)
def test_parameter_counts_match_the_reference_implementation(res, mapping, mbstd, d_arch, g_params, d_params):
    with torch.device("meta"):
        G = StyleGAN2Generator(512, 512, res, 3, 16384, 512, mapping_layers=mapping, noise_injection="eni")
        D = StyleGAN2Discriminator(res, 3, 16384, 512, d_arch, mbstd)
    assert _count(G) == g_params
    assert _count(D) == d_params


def test_tiny_networks_shapes_and_gradients():
    torch.manual_seed(0)
    G = StyleGAN2Generator(16, 16, 16, 1, 256, 32, mapping_layers=2, noise_injection="rni")
    D = StyleGAN2Discriminator(16, 1, 256, 32)
    assert G.num_ws == 6  # 2 layers per resolution 8, 16; 1 at 4; + the last ToRGB
    z = torch.randn(4, 16)
    img = G(z)
    assert img.shape == (4, 1, 16, 16)
    logits = D(img)
    assert logits.shape == (4,)
    logits.sum().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_mapping_truncation_and_w_avg():
    G = StyleGAN2Generator(8, 8, 8, 3, 64, 16, mapping_layers=2)
    G.train()
    z = torch.randn(5, 8)
    w = G.mapping(z)
    assert float(G.mapping.w_avg.abs().sum()) > 0  # tracked in training
    G.eval()
    avg = G.mapping.w_avg.clone()
    w_trunc = G.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(w_trunc, avg.expand_as(w_trunc))
    torch.testing.assert_close(G.mapping.w_avg, avg)  # not updated in eval
    assert w.shape == (5, G.num_ws, 8)


def test_noise_mode_const_makes_the_generator_deterministic():
    G = StyleGAN2Generator(8, 8, 16, 3, 128, 16, mapping_layers=1, noise_injection="rni").eval()
    with torch.no_grad():
        for p in G.parameters():  # ENI/RNI strengths and maps away from their neutral start
            p.add_(0.1 * torch.randn_like(p))
    z = torch.randn(3, 8)
    a, b = G(z, noise_mode="const"), G(z, noise_mode="const")
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
    assert not torch.equal(a, G(z, noise_mode="none"))


def test_minibatch_std_handles_a_batch_not_divisible_by_the_group():
    x = torch.randn(6, 4, 4, 4)
    y = MinibatchStdLayer(group_size=4)(x)  # uses groups of 3
    assert y.shape == (6, 5, 4, 4)
    expected = x.reshape(3, 2, 4, 4, 4).std(dim=0, unbiased=False).mean(dim=[1, 2, 3])
    torch.testing.assert_close(y[:2, 4, 0, 0], expected, atol=1e-4, rtol=0)


def test_bad_resolution_is_a_clear_error():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Generator(8, 8, 24)
