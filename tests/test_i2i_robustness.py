"""Robustness evaluation of NoisyI2I: the table, the theory overlay, the callback, the configs and the sweep."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from analysis.i2i_noise import TRUNCATIONS, minimax_by_truncation, minimax_sigma_t2, spectrum_from_data
from callbacks.robustness import NoiseRobustness
from evaluation.robustness import (
    cell_generator,
    plot_robustness,
    read_csv,
    robustness_rows,
    sigma_e2_grid,
    summary,
    summary_markdown,
    table_markdown,
    theory,
    write_table,
)
from train import main

ROOT = Path(__file__).resolve().parents[1]
I2I = ROOT / "configs" / "i2i"


def _images(n=24, channels=1, size=16, seed=0):
    """Smooth random images in [-1, 1] (so JPEG and Poisson act on something image-like)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, size // 4, size // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def test_sigma_e2_grid_spans_zero_to_lambda_max():
    assert sigma_e2_grid(0.4, 5) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="lambda_max"):
        sigma_e2_grid(0.0, 5)
    with pytest.raises(ValueError, match="num_levels"):
        sigma_e2_grid(0.4, 1)


def test_identity_translator_scores_follow_the_noise_power():
    """Translate = identity, target = input: MSE = sigma_e^2, so PSNR = 10 log10(4 / sigma_e^2) per image."""
    x = _images(64, size=32)
    levels = [0.0, 0.01, 0.1]
    rows = robustness_rows(lambda t: t, x, x, levels, ["gaussian", "uniform"], sigma_t2=0.3, seed=1)
    assert len(rows) == 2 * 3
    assert {(r["noise"], r["sigma_e2"]) for r in rows} == {(n, s) for n in ("gaussian", "uniform") for s in levels}
    for r in rows:
        assert r["sigma_t2"] == 0.3 and r["images"] == 64
        assert math.isnan(r["fid"]) and math.isnan(r["kid"])
        if r["sigma_e2"] == 0:
            assert r["noise_power"] == 0 and r["psnr"] == math.inf and r["ssim"] == pytest.approx(1.0)
            continue
        assert r["noise_power"] == pytest.approx(r["sigma_e2"], rel=0.05)
        # per-image PSNRs average to about the PSNR of the mean power (1,024 pixels per image)
        assert r["psnr"] == pytest.approx(10 * math.log10(4 / r["sigma_e2"]), abs=0.15)
        assert r["l1"] > 0 and r["ssim"] < 1


def test_every_translator_sees_the_same_corruptions():
    x = _images(10)
    seen = {}
    for name in ("a", "b"):
        seen[name] = []
        robustness_rows(lambda t, s=seen[name]: (s.append(t.clone()), t)[1], x, x, [0.05, 0.2], ["gaussian", "poisson"])
    assert len(seen["a"]) == 4
    for a, b in zip(seen["a"], seen["b"]):
        assert torch.equal(a, b)
    # ...and the cells differ from each other (a new draw per cell, not one reused)
    assert not torch.equal(seen["a"][0] - x, (seen["a"][1] - x) * 2)
    assert cell_generator(0, "gaussian", 0.1).initial_seed() != cell_generator(1, "gaussian", 0.1).initial_seed()
    assert cell_generator(0, "gaussian", 0.1).initial_seed() != cell_generator(0, "uniform", 0.1).initial_seed()


def test_batching_does_not_change_the_rows():
    x, y = _images(20), _images(20, seed=3)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    translate = lambda t: torch.tanh(net(t))  # noqa: E731
    with torch.no_grad():
        a = robustness_rows(translate, x, y, [0.1], ["gaussian", "salt_and_pepper"], batch_size=3)
        b = robustness_rows(translate, x, y, [0.1], ["gaussian", "salt_and_pepper"], batch_size=64)
    for ra, rb in zip(a, b):
        assert ra["psnr"] == pytest.approx(rb["psnr"], rel=1e-6) and ra["ssim"] == pytest.approx(rb["ssim"], rel=1e-5)


def test_fid_columns_with_a_feature_extractor():
    x = _images(200, size=16)
    features = lambda t: t.flatten(1)[:, ::16]  # noqa: E731
    rows = robustness_rows(lambda t: t, x, x, [0.0, 0.3], ["gaussian"], features=features, kid_subset_size=100)
    clean, noisy = rows
    assert clean["fid"] == pytest.approx(0.0, abs=1e-3)  # outputs = targets
    assert noisy["fid"] > 0.5 and noisy["kid"] > clean["kid"]


def test_unknown_noise_type_is_named():
    with pytest.raises(ValueError, match="speckle"):
        robustness_rows(lambda t: t, _images(4), _images(4), [0.1], ["speckle"])


def test_theory_matches_the_analysis_module():
    x = _images(80, size=16)  # a 16-dimensional source (4x4 upsampled)
    t = theory(x, lambda_max=0.2, max_dim=10)
    eig, share, _ = spectrum_from_data(x.double().flatten(1).numpy(), 10)
    assert t["eigenvalues_kept"] == 10 and t["variance_share"] == pytest.approx(share)
    assert t["average_sigma_t2"] == pytest.approx(0.1)
    assert t["average_sigma_t2_numeric"] == pytest.approx(0.1, rel=1e-4)  # the poster's lambda_max / 2
    assert t["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(eig, 0.2))
    assert 0 < t["minimax_sigma_t2"] < 0.2
    assert t["max_dim"] == 10 and t["truncation"] == "top 10 eigenvalues"


def test_theory_reports_its_truncation_and_the_prediction_per_truncation():
    """The truncation is a setting (None = every positive eigenvalue), reported with the prediction."""
    x = _images(40, size=32)  # 64-dimensional smooth source, 40 images: 39 positive eigenvalues
    full, _, _ = spectrum_from_data(x.double().flatten(1).numpy(), None)
    everything = theory(x, lambda_max=0.2, max_dim=None)
    assert everything["max_dim"] is None and everything["eigenvalues_kept"] == everything["eigenvalues_positive"] == full.size
    assert everything["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(full, 0.2), rel=1e-12)
    assert everything["variance_share"] == pytest.approx(1.0)
    top8 = theory(x, lambda_max=0.2, max_dim=8)
    assert top8["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(full[:8], 0.2), rel=1e-12)
    assert top8["minimax_sigma_t2"] != pytest.approx(everything["minimax_sigma_t2"], rel=0.05)  # k moves it
    table = top8["minimax_by_truncation"]
    assert [r["k"] for r in table] == list(TRUNCATIONS)
    assert table == minimax_by_truncation(full, 0.2)
    by_k = {r["k"]: r["minimax_sigma_t2"] for r in table}
    assert by_k[8] == pytest.approx(top8["minimax_sigma_t2"]) and by_k[None] == pytest.approx(everything["minimax_sigma_t2"])
    md = summary_markdown(_fake_rows(), "psnr", top8)
    assert f"minimax σ_t² (top 8 eigenvalues) = {by_k[8]:.4g}" in md
    assert "Minimax σ_t² on the top k eigenvalues: k = 8: " in md and "k = all (" in md


def _fake_rows():
    """psnr(t, e) = 30 - 10 e - 40 (t - 0.1)^2 - 5 t: best average at t = 0.05 of the trained grid."""
    rows = []
    for t in (0.0, 0.05, 0.1, 0.2):
        for e in (0.0, 0.1, 0.2):
            for noise in ("gaussian", "jpeg"):
                psnr = 30 - 10 * e - 40 * (t - 0.1) ** 2 - 5 * t - (1 if noise == "jpeg" else 0)
                rows.append(
                    {
                        "sigma_t2": t,
                        "noise": noise,
                        "sigma_e2": e,
                        "noise_power": e,
                        "psnr": psnr,
                        "ssim": psnr / 40,
                        "l1": 1 / psnr,
                        "fid": float("nan"),
                        "kid": float("nan"),
                        "images": 5,
                    }
                )
    return rows


def test_summary_picks_the_best_trained_sigma_t2():
    rows = _fake_rows()
    th = {"average_sigma_t2": 0.11, "minimax_sigma_t2": 0.02}
    entries = [e for e in summary(rows, "psnr", th) if e["noise"] == "gaussian"]
    assert [e["sigma_t2"] for e in entries] == [0.0, 0.05, 0.1, 0.2]
    scores = {t: 30 - 40 * (t - 0.1) ** 2 - 5 * t for t in (0.0, 0.05, 0.1, 0.2)}
    for e in entries:
        assert e["psnr_average"] == pytest.approx(scores[e["sigma_t2"]] - 1.0)  # mean of 10 e over 0, .1, .2
        assert e["psnr_worst"] == pytest.approx(scores[e["sigma_t2"]] - 2.0)
    assert [e["sigma_t2"] for e in entries if e["best_average"]] == [0.05]
    assert [e["sigma_t2"] for e in entries if e["nearest_average_rule"]] == [0.1]
    assert [e["sigma_t2"] for e in entries if e["nearest_minimax"]] == [0.0]
    # lower is better for L1 (1 / psnr): the same winner
    assert [e["sigma_t2"] for e in summary(rows, "l1") if e["noise"] == "gaussian" and e["best_average"]] == [0.05]


def test_table_files_round_trip_and_plot(tmp_path):
    rows = _fake_rows()
    th = {
        "lambda_max": 0.2,
        "average_sigma_t2": 0.1,
        "average_sigma_t2_numeric": 0.1,
        "minimax_sigma_t2": 0.04,
        "eigenvalues_kept": 3,
        "variance_share": 0.9,
        "images": 5,
    }
    paths = write_table(rows, str(tmp_path), th)
    back = read_csv(paths["csv"])
    assert len(back) == len(rows) == 4 * 3 * 2
    for a, b in zip(rows, back):
        for key in ("sigma_t2", "sigma_e2", "psnr", "ssim", "l1"):
            assert b[key] == pytest.approx(a[key])
        assert b["noise"] == a["noise"] and math.isnan(b["fid"]) and b["images"] == 5
    saved = json.loads(Path(paths["json"]).read_text())
    assert saved["theory"]["minimax_sigma_t2"] == 0.04 and len(saved["rows"]) == 24
    md = Path(paths["md"]).read_text()
    assert "λ_max/2 = 0.1" in md and "minimax σ_t² (top 3 eigenvalues) = 0.04" in md  # an old theory dict: kept count
    # one line per (noise, sigma_e^2), the best sigma_t^2 in bold
    table = table_markdown(rows, "psnr")
    assert len(table.splitlines()) == 2 + 2 * 3
    assert "**29.65**" in table.splitlines()[2]  # gaussian, e = 0: t = 0.05 -> 30 - 0.1 - 0.25
    plot_robustness(rows, str(tmp_path / "fig.png"), "psnr", th)
    assert (tmp_path / "fig.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"noise_types": ["gaussian", "speckle"]}, "NoiseRobustness.noise_types"),
        ({"lambda_max": -1.0}, "NoiseRobustness.lambda_max"),
        ({"sigma_e2": [0.1, -0.2]}, "NoiseRobustness.sigma_e2"),
        ({"max_images": 1}, "NoiseRobustness.max_images"),
        ({"fid": "lpips"}, "NoiseRobustness.fid"),
        ({"theory_max_dim": 0}, "NoiseRobustness.theory_max_dim"),
    ],
)
def test_callback_arguments_are_checked(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        NoiseRobustness(**kwargs)


def test_explicit_sigma_e2_replaces_the_grid():
    assert NoiseRobustness(sigma_e2=[0.2, 0.0, 0.05]).grid == [0.0, 0.05, 0.2]
    assert NoiseRobustness(lambda_max=0.2, num_levels=3).grid == pytest.approx([0.0, 0.1, 0.2])


def test_theory_max_dim_null_keeps_every_eigenvalue():
    assert NoiseRobustness(theory_max_dim=None).theory_max_dim is None


# ---------------------------------------------------------------------- configs and the CLI
def _tiny(config: dict, root: str) -> dict:
    """Shrink a configs/i2i file to seconds: narrow nets, one data root."""
    model = config["model"]["init_args"]
    model.update(g_width=4, g_max_width=8, d_width=4, d_max_width=8)
    data = config["data"]["init_args"]
    target = data["source"]["init_args"] if "source" in data else data
    target.update(batch_size=2, num_workers=0)
    if "root" in target:
        target["root"] = root
    return config


@pytest.mark.parametrize("name", sorted(p.stem for p in I2I.glob("*.yaml")))
def test_every_i2i_config_trains_a_step_on_its_data_format(name, tmp_path):
    from datamodules.synthetic import write_celeba, write_mnist, write_pix2pix

    root = str(tmp_path / "data")
    if name.startswith("celeba"):
        write_celeba(root, 30)
    elif name == "facades":
        write_pix2pix(root, 2, size=32)
    elif name.startswith("mnist"):
        write_mnist(root, 40, 10)
    config = _tiny(yaml.safe_load((I2I / f"{name}.yaml").read_text()), root)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = main(
        [
            "fit",
            "-c",
            str(path),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.fast_dev_run=true",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--model.init_args.sigma_t2=0.1",
        ]
    )
    assert cli.trainer.global_step == 2  # one D step and one G step
    assert cli.model.sigma_t2 == 0.1
    assert tuple(cli.datamodule.image_shape) == cli.model.image_shape


def test_sweep_script_end_to_end_on_digits(tmp_path):
    """python -m tools sweep-i2i: two sigma_t^2, each trained and tested through train.py, one merged table."""
    config = yaml.safe_load((I2I / "digits_sr8.yaml").read_text())
    config["model"]["init_args"].update(g_width=8, g_max_width=16, d_width=8, d_max_width=16)
    config["trainer"].update(max_epochs=1, limit_train_batches=3, limit_val_batches=1, enable_progress_bar=False)
    config["trainer"]["enable_model_summary"] = False
    robustness = config["trainer"]["callbacks"][0]["init_args"]
    robustness.update(noise_types=["gaussian", "jpeg"], num_levels=2, lambda_max=0.2, max_images=16, theory_max_dim=8)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "tools", "sweep-i2i", "-c", str(path), "--sigma-t2", "0", "0.1"]
    cmd += ["--save-dir", str(tmp_path / "runs"), "--name", "sweep"]
    # `python -m tools` from another folder: the checkout first on the path, whatever the install.
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sweep = tmp_path / "runs" / "sweep"
    rows = read_csv(str(sweep / "robustness.csv"))
    # one row per (sigma_t^2, noise type, sigma_e^2)
    assert sorted((r["sigma_t2"], r["noise"], r["sigma_e2"]) for r in rows) == sorted(
        (t, n, e) for t in (0.0, 0.1) for n in ("gaussian", "jpeg") for e in (0.0, 0.2)
    )
    assert all(r["images"] == 16 and np.isfinite(r["psnr"]) for r in rows)
    by = {(r["sigma_t2"], r["noise"], r["sigma_e2"]): r for r in rows}
    # the two models differ, the corruptions they saw do not
    assert by[(0.0, "gaussian", 0.0)]["psnr"] != by[(0.1, "gaussian", 0.0)]["psnr"]
    assert by[(0.0, "gaussian", 0.2)]["noise_power"] == by[(0.1, "gaussian", 0.2)]["noise_power"]
    theory_values = json.loads((sweep / "robustness.json").read_text())["theory"]
    assert theory_values["average_sigma_t2"] == pytest.approx(0.1)
    assert (sweep / "robustness_psnr.png").is_file() and "λ_max/2" in (sweep / "robustness.md").read_text()
    assert theory_values["max_dim"] == 8 and "minimax σ_t² (top 8 eigenvalues) = " in (sweep / "robustness.md").read_text()
    assert "minimax σ_t² (top 8 eigenvalues) = " in proc.stdout
    for t in ("0", "0.1"):
        run = sweep / f"sigma_t2_{t}"
        assert (run / "fit" / "FINISHED").is_file() and (run / "fit" / "checkpoints" / "last.ckpt").is_file()
        assert (run / "test" / "robustness" / "robustness_psnr.png").is_file()
        hparams = yaml.safe_load((run / "fit" / "hparams.yaml").read_text())
        assert hparams["sigma_t2"] == float(t)
    # a second call finds everything done and only merges
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("# done:") == 4
