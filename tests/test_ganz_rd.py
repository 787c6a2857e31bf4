"""GANZ's rate-distortion command: GANZ files vs wavelets and codecs at equal size, table and figures."""

from __future__ import annotations

import csv

import pytest
from ganz_fixtures import save_checkpoint, tiny_ganz

from lightning_modules.ganz.__main__ import main as ganz_cli
from lightning_modules.ganz.format import HEADER_SIZE


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
