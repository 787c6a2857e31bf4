"""GANZ's rate-distortion command: GANZ files vs wavelets and codecs at equal size, table and figures."""

from __future__ import annotations

import csv

import pytest
import numpy as np
from ganz_fixtures import ganz_cli, save_checkpoint, tiny_ganz

from lightning_modules.ganz.format import HEADER_SIZE
from lightning_modules.ganz.rate_distortion import fit_to_shape, ood_images


def test_rd_command_writes_table_plot_and_grids(tmp_path, capsys):
    ckpt = save_checkpoint(tiny_ganz(), tmp_path / "ganz.ckpt")
    out = tmp_path / "rd"
    args = ["rd", "--ckpt", ckpt, "--data", "DigitsDataModule", "--data-args", '{"resolution": 16}']
    args += ["--splits", "test", "--limit", "2", "--ood", "astronaut", "camera"]
    args += ["--modes", "keep_linear", "random_linear(8)", "--dtypes", "float32", "uint8", "--codecs", "jpeg", "jpegxl"]
    args += ["--steps", "20", "--quiet", "--out-dir", str(out)]
    assert ganz_cli(args) == 0
    with open(out / "rd.csv") as f:
        rows = list(csv.DictReader(f))
    # 2 sets x 2 modes x (2 dtypes x (GANZ + 2 codecs) + wavelet) = 28 rows
    assert len(rows) == 28
    ganz = {(r["set"], r["mode"], r["dtype"]): r for r in rows if r["method"] == "GANZ"}
    assert float(ganz[("test", "keep_linear", "float32")]["bytes"]) == HEADER_SIZE + 8 * 4 + 4
    assert float(ganz[("ood", "random_linear(8)", "uint8")]["bytes"]) == HEADER_SIZE + 32 + 4
    assert float(ganz[("ood", "random_linear(8)", "uint8")]["ratio_dof"]) == pytest.approx(8.0)
    for r in rows:
        assert 0 < float(r["psnr"]) < 100 and -1 <= float(r["ssim"]) <= 1
        if r["method"] in ("jpeg", "jpegxl"):
            budget = float(ganz[(r["set"], r["mode"], r["dtype"])]["bytes"])
            assert (float(r["bytes"]) <= budget) == (int(r["over_budget"]) == 0)
    wavelet = [r for r in rows if r["method"] == "wavelet" and r["mode"] == "random_linear(8)"]
    assert {r["d_c"] for r in wavelet} == {"32"}
    for name in ("rd.md", "rd_psnr_bpp.png", "rd_grid_test.png", "rd_grid_ood.png"):
        assert (out / name).stat().st_size > 0
    assert "| ood | GANZ |" in capsys.readouterr().out


def test_images_are_centre_cropped_resized_and_converted():
    wide = np.zeros((40, 60, 3), np.uint8)
    wide[:, 10:50] = 200  # the centre 40 x 40 square is all 200; the side bands (cropped away) are 0
    grey = fit_to_shape(wide, (1, 16, 16))
    assert grey.shape == (16, 16) and grey.dtype == np.uint8 and grey.min() == grey.max() == 200
    assert fit_to_shape(grey, (3, 8, 8)).shape == (8, 8, 3)
    ood = ood_images((3, 32, 32), ("astronaut", "camera"))
    assert ood.labels == ["astronaut", "camera"] and all(im.shape == (32, 32, 3) for im in ood.images)
    with pytest.raises(ValueError, match="no image"):
        ood_images((1, 32, 32), ("not_an_image",))
