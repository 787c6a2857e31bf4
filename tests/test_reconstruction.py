"""PSNR / SSIM for [-1, 1] images (lightning_modules.reconstruction) against closed forms."""

import math

import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lightning_modules.reconstruction import ReconstructionMetrics, psnr, reconstruction_metrics, ssim


def _images(n=4, c=3, side=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g, dtype=torch.float64) * 2 - 1


def test_psnr_of_a_constant_offset_is_10_log10_of_4_over_mse():
    x = _images()
    deltas = torch.tensor([0.01, 0.05, 0.1, 0.5], dtype=torch.float64)
    y = x + deltas[:, None, None, None]  # image i off by delta_i everywhere: MSE_i = delta_i^2
    expected = 10 * torch.log10(4.0 / deltas**2)
    assert torch.allclose(psnr(y, x), expected, rtol=0, atol=1e-5)
    assert psnr(y, x, reduction="mean").item() == pytest.approx(expected.mean().item(), abs=1e-5)
    assert psnr(y[:1], x[:1]).item() == pytest.approx(20 * math.log10(2 / 0.01), abs=1e-5)  # 46.02 dB


def test_psnr_of_random_noise_matches_its_mse():
    x = _images(seed=1)
    y = x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mse = (y - x).pow(2).flatten(1).mean(1)
    assert torch.allclose(psnr(y, x), 10 * torch.log10(4.0 / mse), rtol=0, atol=1e-5)


def test_psnr_of_minus1_1_images_equals_psnr_of_the_0_1_images():
    x, y = _images(seed=3), _images(seed=4)
    y = 0.7 * x + 0.3 * y
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    reference = peak_signal_noise_ratio(y01, x01, data_range=1.0, reduction="none", dim=(1, 2, 3))
    assert torch.allclose(psnr(y, x), reference, rtol=0, atol=1e-5)
    assert torch.allclose(psnr(y01, x01, value_range=(0.0, 1.0)), reference, rtol=0, atol=1e-5)


def test_ssim_is_the_ssim_of_the_8bit_images():
    x, y = _images(seed=3), _images(seed=4)
    y = 0.7 * x + 0.3 * y
    x255, y255 = (x + 1) * 127.5, (y + 1) * 127.5
    reference = structural_similarity_index_measure(y255, x255, data_range=255.0, reduction="none")
    assert torch.allclose(ssim(y, x), reference, rtol=0, atol=1e-6)
    assert torch.allclose(ssim(y255, x255, value_range=(0.0, 255.0)), reference, rtol=0, atol=1e-6)
    # SSIM's luminance term is not shift invariant: straight on [-1, 1] it is another number.
    naive = structural_similarity_index_measure(y, x, data_range=2.0, reduction="none")
    assert (naive - reference).abs().max() > 0.05


def test_identical_images_have_ssim_one_and_infinite_psnr():
    x = _images(c=1)
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64), atol=1e-9)
    assert torch.isinf(psnr(x, x)).all()


def test_ssim_orders_degradations_and_is_per_image():
    x = _images(n=1, seed=5).repeat(3, 1, 1, 1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    y = x + noise * torch.tensor([0.02, 0.2, 0.8], dtype=torch.float64)[:, None, None, None]
    values = ssim(y, x)
    assert values.shape == (3,)
    assert values[0] > values[1] > values[2]


def test_collection_accumulates_the_mean_of_per_image_values():
    x = _images(n=6, seed=7).float()
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    metrics = ReconstructionMetrics(prefix="val/")
    metrics.update(y[:2], x[:2])
    metrics.update(y[2:], x[2:])
    out = metrics.compute()
    assert set(out) == {"val/psnr", "val/ssim"}
    direct = reconstruction_metrics(y, x)
    assert out["val/psnr"].item() == pytest.approx(direct["psnr"].item(), rel=1e-5)
    assert out["val/ssim"].item() == pytest.approx(direct["ssim"].item(), rel=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same|one shape"):
        psnr(_images(side=8), _images(side=16))
