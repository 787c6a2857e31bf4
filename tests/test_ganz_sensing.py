"""Compressive sensing with the GANZ generator (Sec. 4, Fig. 8): y = A x, min_z ||A G(z) - y||^2."""

from __future__ import annotations

import torch
from ganz_fixtures import CHANNELS, RES, ganz_cli, generated_images, save_checkpoint, tiny_ganz

from lightning_modules.ganz.inversion import InversionConfig
from lightning_modules.ganz.latent import LatentGenerator, LatentMode
from lightning_modules.ganz.sensing import gaussian_measurement_matrix, recover
from lightning_modules.reconstruction import psnr


def test_measurement_matrix_is_seeded_gaussian_with_variance_one_over_m():
    a = gaussian_measurement_matrix(400, 300, seed=3)
    assert a.shape == (400, 300) and a.dtype == torch.float32
    assert torch.equal(a, gaussian_measurement_matrix(400, 300, seed=3))
    assert not torch.equal(a, gaussian_measurement_matrix(400, 300, seed=4))
    assert abs(float(a.var()) * 400 - 1.0) < 0.02
    x = torch.randn(300)
    assert abs(float((a @ x).norm() / x.norm()) - 1.0) < 0.1  # E||Ax||^2 = ||x||^2


def test_sensing_recovers_an_image_in_the_range_of_g():
    model = tiny_ganz()
    net = LatentGenerator(model.generator, LatentMode("keep_linear"), (CHANNELS, RES, RES))
    x = generated_images(model, 3)
    m = 32  # M/N = 0.125 of the 256 pixels
    result = recover(net, x, m, seed=0, config=InversionConfig(steps=250, lr=0.05, restarts=2), progress=False)
    assert result.reconstruction.shape == x.shape
    assert float(result.psnr.min()) > 45.0
    assert torch.allclose(result.mse_pm1, 4 * result.mse_unit)
    assert torch.allclose(result.psnr, psnr(result.reconstruction, x))
    # Not a lucky prior: another image of G is far from x.
    assert float(psnr(generated_images(model, 3, seed=77), x).max()) < 35.0


def test_cs_command_prints_psnr_and_bora_comparison(tmp_path, capsys):
    ckpt = save_checkpoint(tiny_ganz(), tmp_path / "ganz.ckpt")
    args = ["cs", "--ckpt", ckpt, "--from-generator", "2", "--measurements", "24", "64", "--mode", "keep_linear"]
    args += ["--steps", "150", "--restarts", "2", "--quiet", "--out-dir", str(tmp_path / "cs")]
    assert ganz_cli(args) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("generated")]
    assert [int(r[1]) for r in rows] == [24, 64]
    assert all(float(r[3]) > 40 for r in rows)  # PSNR of images G made
    assert all(int(r[7]) == 2 for r in rows)  # both below Bora et al.'s best MSE
    assert "Bora" in out and len(list((tmp_path / "cs").glob("*.png"))) == 2
    assert ganz_cli(["cs", "--ckpt", ckpt, "--from-generator", "1", "--measurements", "256", "--quiet"]) == 2
