"""GANZ Fig. 2 in one command: ``python -m tools ganz dt-sweep`` (PSNR against d_t at a fixed ratio)."""

from __future__ import annotations

import csv
import math
import statistics

import pytest
from ganz_fixtures import CHANNELS, RES, ganz_cli, save_checkpoint, tiny_ganz

from lightning_modules.ganz import rate_distortion as rd
from lightning_modules.ganz.codec import GanzCodec
from lightning_modules.ganz.format import HEADER_SIZE
from lightning_modules.ganz.inversion import InversionConfig
from lightning_modules.ganz.latent import LatentMode
from lightning_modules.ganz.rate_distortion import ood_images

RATIO = 8  # d_c = 256 / 8 = 32 at 1 x 16 x 16
STEPS = 10


def _read(path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_dt_sweep_writes_one_row_per_d_t_at_equal_rate(tmp_path, capsys):
    ckpts = [
        save_checkpoint(tiny_ganz(seed=0, d_t=4), tmp_path / "dt4_seed0.ckpt"),
        save_checkpoint(tiny_ganz(seed=1, d_t=4), tmp_path / "dt4_seed1.ckpt"),
        save_checkpoint(tiny_ganz(seed=2, d_t=16), tmp_path / "dt16_seed0.ckpt"),
    ]
    out = tmp_path / "fig2"
    args = ["dt-sweep", "--ckpts", *ckpts, "--ood", "camera", "astronaut", "--ratio", str(RATIO)]
    args += ["--steps", str(STEPS), "--quiet", "--out-dir", str(out)]
    assert ganz_cli(args) == 0
    table = _read(out / "dt_sweep.csv")
    runs = _read(out / "dt_sweep_runs.csv")
    assert list(table[0])[:7] == ["set", "d_t", "ratio_dof", "d_c", "bpp", "k", "seeds"]
    assert {"psnr_mean", "psnr_std", "wavelet_psnr_mean", "ssim_mean"} <= set(table[0])
    # One row per d_t (per image set), in order; the seeds of d_t = 4 are merged.
    points = [(r["set"], int(r["d_t"]), int(r["k"]), r["seeds"]) for r in table]
    assert points == [("ood", 4, 2, "0 1"), ("ood", 16, 1, "0")]
    assert len(runs) == 3
    # The same compression ratio for every d_t: the same d_c, file size and bits per pixel.
    d_c = CHANNELS * RES * RES // RATIO
    assert {int(r["d_c"]) for r in table} == {d_c} and {float(r["ratio_dof"]) for r in table} == {RATIO}
    assert {float(r["bpp"]) for r in table} == {8 * (HEADER_SIZE + 4 * d_c + 4) / (RES * RES)}
    # mean and std over seeds of the runs' values; one seed has no std.
    psnr4 = [float(r["psnr"]) for r in runs if r["d_t"] == "4"]
    assert float(table[0]["psnr_mean"]) == pytest.approx(statistics.fmean(psnr4))
    assert float(table[0]["psnr_std"]) == pytest.approx(statistics.stdev(psnr4))
    assert psnr4[0] != psnr4[1] and math.isnan(float(table[1]["psnr_std"]))
    # Wavelets do not depend on the generator: the same for every d_t and seed.
    assert len({r["wavelet_psnr"] for r in runs}) == 1
    # A run's PSNR is that of rate_distortion.run on its checkpoint (an independent call).
    codec = GanzCodec.from_checkpoint(ckpts[2])
    rows, _ = rd.run(codec, [ood_images(codec.image_shape, ("camera", "astronaut"))],
                     [LatentMode("random_linear", RATIO)], ["float32"], InversionConfig(steps=STEPS),
                     codecs=[], progress=False)  # fmt: skip
    assert float(runs[2]["psnr"]) == pytest.approx(rows[0]["psnr"], abs=1e-9)
    assert (out / "dt_sweep_psnr.png").stat().st_size > 0
    md = (out / "dt_sweep.md").read_text()
    assert "ratio 8" in md and " ± " in md and "| ood | 16 |" in md
    assert "dt_sweep_psnr.png" in capsys.readouterr().out


def test_dt_sweep_trains_each_config_and_seed(tmp_path, capsys):
    configs = [str(tmp_path / "dt64.yaml"), str(tmp_path / "dt128.yaml")]
    for path in configs:
        open(path, "w").write("model: {}\n")
    args = ["dt-sweep", "--configs", *configs, "--seeds", "2", "--first-seed", "3", "--save-dir", str(tmp_path)]
    assert ganz_cli([*args, "--dry-run", "--", "--trainer.max_steps", "7"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "train.py fit" in line]
    assert len(lines) == 4  # 2 configs x 2 seeds, seeds outermost
    assert "dt64.yaml" in lines[0] and "--seed_everything 3" in lines[0] and "--trainer.max_steps 7" in lines[0]
    assert "dt128.yaml" in lines[3] and "--seed_everything 4" in lines[3]
    assert "ganz/dt_sweep/dt128/seed4" in lines[3]
    assert not (tmp_path / "ganz").exists()  # a dry run writes nothing
    assert ganz_cli(["dt-sweep", "--ckpts", configs[0], "--configs", configs[1]]) == 2
    assert "not both" in capsys.readouterr().err
