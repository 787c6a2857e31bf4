"""python -m tools sweep-noise-dim and known-source: commands, resume, array tasks, tables and plots."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.axes
import pytest
import yaml

from core.noise import NoiseSpec
from lightning_modules import NoiseDimGAN
from tools import known_source as ks_script
from tools import sweep as tools_sweep
from tools import sweep_noise_dim as sweep
from tools.__main__ import main as tools_main

ROOT = Path(__file__).resolve().parents[1]

DIGITS = str(ROOT / "configs" / "noise_dim" / "digits_biggan.yaml")


def _rate_json(path: Path) -> str:
    """A file in the layout of `python -m analysis codec-rate --out` (the digits' WebP rate of the README)."""
    payload = {
        "best_codec": "webp",
        "data": {"source": "DigitsDataModule"},
        "codecs": {
            "webp": {"title": "WebP", "bits_per_image": 3404.4197},
            "png": {"title": "PNG", "bits_per_image": 4511.2},
        },
    }
    path.write_text(json.dumps(payload))
    return str(path)


def test_theorem_bound_comes_from_the_analysis_library(tmp_path):
    bound = sweep.theorem_bound(_rate_json(tmp_path / "rate.json"), None, "float32")
    assert bound["codec"] == "WebP" and bound["n_min"] == 129  # (3404.42 - 1) / 26.4637 = 128.61
    assert bound["lower"] == pytest.approx((3404.4197 - 1) / 26.463674, rel=1e-5)
    assert bound["eps_min"] == pytest.approx(3403.4197)  # the same bound in bits: eps = n H >= E[L] - 1
    assert sweep.theorem_bound(None, 1000.0, "float16")["n_min"] == 75  # 999 / 13.4637 = 74.2
    assert sweep.theorem_bound(None, None, "float32") is None


def test_mean_and_std_over_seeds():
    assert tools_sweep.mean_std([10.0, 12.0, 14.0]) == (12.0, 2.0)  # sample std, ddof 1
    assert tools_sweep.mean_std([1.0, 2.0]) == pytest.approx((1.5, 0.70710678))
    mean, std = tools_sweep.mean_std([7.5])
    assert mean == 7.5 and math.isnan(std)  # one seed: no spread, not a spread of 0
    mean, std = tools_sweep.mean_std([1.0, math.inf])
    assert mean == math.inf and math.isnan(std)
    runs = [{"n": 1, "seed": s, "fid": f} for s, f in [(2, 14.0), (0, 10.0), (1, 12.0)]]
    runs.append({"n": 4, "seed": 0, "fid": 3.0})
    rows = tools_sweep.aggregate_seeds(runs, ["n"], ["fid", "kid_mean"])
    assert rows[0] == {"n": 1, "k": 3, "seeds": "0 1 2", "fid_mean": 12.0, "fid_std": 2.0}
    assert rows[1]["k"] == 1 and rows[1]["fid_mean"] == 3.0 and "kid_mean_mean" not in rows[1]


def _metrics_file(folder, point, seed, fid, kid, eps, source="entropy_bits", **extra):
    fit_dir, test_dir = sweep.run_folders(str(folder), "sw", sweep.Point(*point, seed=seed))
    os.makedirs(test_dir)
    record = {"ch": point[0], "n": point[1], "noise": extra.pop("noise", "gaussian float32"), "seed": seed,
              "eps_bits": eps, "eps_source": source, "fid": fid, "kid_mean": kid, "kid_std": 0.01, **extra}
    Path(test_dir, sweep.RESULT_FILE).write_text(json.dumps(record))
    return fit_dir


def test_merge_gives_mean_and_std_over_seeds(tmp_path, monkeypatch):
    """Fabricated per-run metrics: the table and the error bars are their mean and sample std."""
    from PIL import Image

    fids = {1: [30.0, 34.0, 38.0], 4: [20.0, 21.0, 25.0]}  # means 34, 22; stds 4, sqrt(7)
    kids = {1: [0.3, 0.4, 0.5], 4: [0.1, 0.1, 0.1]}
    for n in (1, 4):
        for seed in (0, 1, 2):
            fit_dir = _metrics_file(tmp_path, (2, n), seed, fids[n][seed], kids[n][seed], 24.0 * n, "budget_bits",
                                    precision=0.5 + 0.1 * seed, recall=0.2)  # fmt: skip
            if seed == 0:
                os.makedirs(f"{fit_dir}/samples")
                Image.new("RGB", (34, 34), (n * 10, 0, 0)).save(f"{fit_dir}/samples/fixed_noise_step0000010.png")
    _metrics_file(tmp_path, (2, 2, "", 1), 0, 50.0, 0.9, 2.0, noise="discrete 1-bit")  # one of its 3 seeds done
    grid = [sweep.Point(2, n, f, b, seed) for seed in (0, 1, 2) for n, f, b in [(1, "", 0), (4, "", 0), (2, "", 1)]]
    drawn = []
    original = matplotlib.axes.Axes.errorbar

    def errorbar(self, x, y, yerr=None, **kwargs):
        drawn.append((kwargs.get("label"), list(x), list(y), list(yerr)))
        return original(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    bound = sweep.theorem_bound(_rate_json(tmp_path / "rate.json"), None, "float32")
    paths = sweep.merge(str(tmp_path), "sw", grid, bound, [0, 1, 2])
    with open(paths["csv"]) as handle:
        table = {(r["noise"], int(r["n"])): r for r in csv.DictReader(handle)}
    row = table["gaussian float32", 1]
    assert float(row["fid_mean"]) == pytest.approx(34.0) and float(row["fid_std"]) == pytest.approx(4.0)
    assert float(row["kid_mean_mean"]) == pytest.approx(0.4) and float(row["kid_mean_std"]) == pytest.approx(0.1)
    assert float(row["precision_mean"]) == pytest.approx(0.6) and float(row["precision_std"]) == pytest.approx(0.1)
    assert row["k"] == "3" and row["seeds"] == "0 1 2" and row["eps_source"] == "budget_bits"
    assert float(table["gaussian float32", 4]["fid_std"]) == pytest.approx(7**0.5)
    lone = table["discrete 1-bit", 2]
    assert lone["k"] == "1" and lone["seeds"] == "0" and lone["fid_std"] == "nan"
    assert lone["eps_source"] == "entropy_bits"
    md = Path(paths["md"]).read_text()
    assert "K = 3 seeds (seed_everything 0, 1, 2)" in md and "| 34 ± 4 |" in md and "| 50 |" in md
    assert len(list(csv.DictReader(open(paths["runs_csv"])))) == 7
    # The error bars: FID's mean ± std per curve (a lone seed draws none).
    fid_bars = {label: (x, y, err) for label, x, y, err in drawn[:2]}
    assert fid_bars["ch = 2, gaussian float32"] == ([24.0, 96.0], [34.0, 22.0], [4.0, pytest.approx(7**0.5)])
    assert fid_bars["ch = 2, discrete 1-bit"] == ([2.0], [50.0], [0.0])
    for key in ("fid", "kid", "precision_recall", "samples_ch2"):
        assert Path(paths[key]).stat().st_size > 5000
    assert json.loads((tmp_path / "sw" / "theorem_4_2.json").read_text())["n_min"] == 129


def test_eps_is_the_budget_when_logged_else_the_noise_entropy(tmp_path):
    point = sweep.Point(4, 3, "float16")
    spec = point.noise({"dim": 99, "distribution": "gaussian", "format": "float32"})
    assert (spec.dim, spec.format) == (3, "float16")
    assert sweep.point_entropy(str(tmp_path), spec) == (spec.entropy_bits(), "entropy_bits")
    (tmp_path / "hparams.yaml").write_text(yaml.safe_dump({"noise/entropy_bits": 40.4, "noise/budget_bits": 123.5}))
    assert sweep.point_entropy(str(tmp_path), spec) == (123.5, "budget_bits")
    discrete = sweep.Point(4, 5, bits=3).noise({"distribution": "gaussian", "format": "float32"})
    assert discrete.distribution == "discrete" and discrete.entropy_bits() == 15
    assert sweep.noise_label(discrete) == "discrete 3-bit" and sweep.noise_label(spec) == "gaussian float16"


def test_dry_run_array_tasks_and_resume(tmp_path, capsys):
    common = ["-c", DIGITS, "--dims", "1", "8", "--ch", "2", "4", "--save-dir", str(tmp_path), "--name", "sw"]
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--", "--trainer.max_steps", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 24  # fit + test for each of 2 x 2 points x 3 seeds (the default)
    assert "--model.init_args.noise.dim 1 --model.init_args.ch 2 --seed_everything 0" in lines[0]
    assert lines[0].endswith("--trainer.max_steps 4") and "sw/ch2_n1/seed0 " in lines[0]
    assert " test " in lines[1] and "ch2_n1/seed0/fit/checkpoints/last.ckpt" in lines[1]
    assert "--seed_everything 1" in lines[8] and "--seed_everything 2" in lines[16]  # seeds outermost
    # One SLURM array task: the fourth run (ch 4, n 8, first seed), then the fifth (ch 2, n 1, second seed).
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--array-index", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "noise.dim 8 --model.init_args.ch 4 --seed_everything 0" in lines[0]
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--array-index", "4"]) == 0
    assert "noise.dim 1 --model.init_args.ch 2 --seed_everything 1" in capsys.readouterr().out
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--seeds", "1", "--array-index", "4"]) == 2
    assert "outside the grid" in capsys.readouterr().err
    # A finished run is skipped; an interrupted one resumes from its last checkpoint.
    fit_dir, test_dir = sweep.run_folders(str(tmp_path), "sw", sweep.Point(2, 1))
    os.makedirs(fit_dir)
    open(os.path.join(fit_dir, "FINISHED"), "w").close()
    os.makedirs(test_dir)
    (Path(test_dir) / sweep.RESULT_FILE).write_text("{}")
    last = Path(sweep.run_folders(str(tmp_path), "sw", sweep.Point(2, 8))[0]) / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    tools_main(["sweep-noise-dim", *common, "--dry-run", "--seeds", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# done:") and lines[1].startswith("# done:")
    assert lines[2].endswith(f"--ckpt_path {last}")
    # Seed 1 of the same point is a run of its own.
    tools_main(["sweep-noise-dim", *common, "--dry-run", "--seeds", "1", "--first-seed", "1"])
    assert not capsys.readouterr().out.startswith("# done:")


def test_the_format_and_discrete_axes(tmp_path, capsys):
    common = ["-c", DIGITS, "--dims", "2", "--ch", "4", "--save-dir", str(tmp_path), "--name", "sw", "--seeds", "1"]
    assert tools_main(["sweep-noise-dim", *common, "--formats", "fp16", "bf16", "float32", "fp64",
                       "--discrete-bits", "1", "4", "--dry-run"]) == 0  # fmt: skip
    fits = capsys.readouterr().out.strip().splitlines()[::2]
    assert len(fits) == 6
    for line, fmt in zip(fits, ["float16", "bfloat16", "float32", "float64"]):
        assert f"--model.init_args.noise.format {fmt} --seed_everything 0" in line and f"sw/ch4_n2_{fmt}/seed0 " in line
    for line, bits in zip(fits[4:], [1, 4]):
        assert f"--model.init_args.noise.distribution discrete --model.init_args.noise.bits {bits}" in line
        assert f"sw/ch4_n2_b{bits}/seed0 " in line
    # The entropy of each point, in bits, from NoiseSpec: 2 H(format), or 2 b for b-bit noise.
    config = sweep.config_noise(DIGITS)
    for fmt in ("float16", "bfloat16", "float64"):
        spec = sweep.Point(4, 2, fmt).noise(config)
        assert spec.entropy_bits() == pytest.approx(NoiseSpec(dim=2, format=fmt).entropy_bits())
    assert sweep.Point(4, 2, bits=4).noise(config).entropy_bits() == 8
    # Bad values stop before any training.
    assert tools_main(["sweep-noise-dim", *common, "--formats", "fp7", "--dry-run"]) == 2
    assert "fp7" in capsys.readouterr().err
    assert tools_main(["sweep-noise-dim", *common, "--discrete-bits", "0", "--dry-run"]) == 2
    assert tools_main(["sweep-noise-dim", *common, "--discrete-bits", "17", "--dry-run"]) == 2
    assert "noise.bits" in capsys.readouterr().err
    assert tools_main(["sweep-noise-dim", *common, "--seeds", "0", "--dry-run"]) == 2
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--", "--seed_everything=3"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_known_source_merge_reports_the_gap_over_seeds(tmp_path, capsys):
    from evaluation.known_source import BY_CONSTRUCTION, known_source_report

    p = [0.5, 0.3, 0.2]
    runs = {(1, 1): [[1, 1, 0], [1, 1, 0]], (2, 1): [[2, 1, 1], [1, 2, 1]], (1, 3): [[4, 3, 1], [4, 2, 2]]}
    for (bits, dim), per_seed in runs.items():
        for seed, counts in enumerate(per_seed):
            folder = Path(ks_script.fit_folder(str(tmp_path), "ks", bits, dim, seed))
            folder.mkdir(parents=True)
            (folder / "known_source.json").write_text(json.dumps(known_source_report(p, counts, bits * dim)))
    paths = ks_script.merge(str(tmp_path), "ks", [(1, 1), (2, 1), (1, 3), (3, 3)], [0, 1])
    with open(paths["csv"]) as handle:
        table = list(csv.DictReader(handle))
    assert [float(r["eps_bits"]) for r in table] == [1.0, 2.0, 3.0]
    assert [r["k"] for r in table] == ["2", "2", "2"] and table[0]["seeds"] == "0 1"
    # The gap D - d(eps), mean and sample std over the two seeds, from the runs' own reports.
    gaps = [known_source_report(p, c, 2)["gap_tv"] for c in runs[2, 1]]
    assert float(table[1]["gap_tv_mean"]) == pytest.approx(sum(gaps) / 2)
    assert float(table[1]["gap_tv_std"]) == pytest.approx(abs(gaps[0] - gaps[1]) / 2**0.5)
    # q = (1/2, 1/4, 1/4) and (1/4, 1/2, 1/4): the same H(q).
    assert table[1]["H_q_bits_mean"] == "1.5" and float(table[1]["H_q_bits_std"]) == 0
    assert table[0]["gap_kl_mean"] == "inf" and table[0]["kl_inf_runs"] == "2/2" and table[0]["missed_mean"] == "1.0"
    assert all(r["above_curve_all"] == "True" for r in table)
    md = Path(paths["md"]).read_text()
    assert BY_CONSTRUCTION in md and "K = 2 seeds (seed_everything 0, 1)" in md and "gap TV" in md
    assert BY_CONSTRUCTION in capsys.readouterr().out
    assert len(list(csv.DictReader(open(paths["runs_csv"])))) == 6
    assert Path(paths["png"]).stat().st_size > 10_000
    assert tools_main(["known-source", "--grid", "2y3"]) == 2
    assert "2y3" in capsys.readouterr().err
    assert tools_main(["known-source", "--grid", "1x1", "--seeds", "2", "--dry-run", "--save-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "--seed_everything 0" in lines[0] and "b1_n1/seed1 " in lines[1] and "--seed_everything 1" in lines[1]


@pytest.mark.parametrize("name", ["cifar10_biggan", "digits_biggan", "known_source", "digits_demo"])
def test_every_noise_dim_config_builds_its_model(name):
    config = yaml.safe_load((ROOT / "configs" / "noise_dim" / f"{name}.yaml").read_text())
    model = NoiseDimGAN(**config["model"]["init_args"])
    assert model.noise.dim == config["model"]["init_args"]["noise"]["dim"]


def test_cifar10_biggan_follows_biggan_pytorchs_cifar_script():
    """scripts/launch_cifar_ema.sh of ajbrock/BigGAN-PyTorch: batch 50, G and D lr 2e-4, 4 D steps per G step,
    500 epochs, no attention, no --hier; utils.py's defaults: betas (0, 0.999), EMA decay 0.9999 per G step."""
    from lightning_modules.nets.ema import ema_beta

    config = yaml.safe_load((ROOT / "configs" / "noise_dim" / "cifar10_biggan.yaml").read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert data["batch_size"] == 50 and config["trainer"]["max_epochs"] == 500
    assert (model["lr_g"], model["lr_d"], model["d_steps_per_g"], model["betas"]) == (2e-4, 2e-4, 4, [0.0, 0.999])
    assert model["attn_resolution"] == 0 and model["hierarchical"] is False and model["loss"] == "hinge"
    assert ema_beta(50 * 4, model["ema_kimg"], 10**9, model["ema_rampup"]) == pytest.approx(0.9999, abs=1e-9)


@pytest.mark.slow
def test_sweep_of_tiny_runs_over_seeds_end_to_end(tmp_path):
    """2 points x 2 seeds of BigGAN on the digits, each tested with classifier FID/KID: one table with
    mean ± std over the seeds, plots with error bars and a sample figure; a rerun trains nothing."""
    from train import main

    clf = main(
        [
            "fit",
            "-c",
            str(ROOT / "configs" / "classifier" / "digits.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    config = yaml.safe_load(Path(DIGITS).read_text())
    metrics = config["trainer"]["callbacks"][1]["init_args"]
    metrics.update(feature_path=clf.trainer.checkpoint_callback.last_model_path, cache_dir=str(tmp_path / "cache"),
                   num_samples=100, kid_subset_size=50, batch_size=100)  # fmt: skip
    path = tmp_path / "digits_biggan.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable, "-m", "tools", "sweep-noise-dim", "-c", str(path), "--dims", "3", "--ch", "2",
        "--formats", "fp32", "--discrete-bits", "1", "--seeds", "2", "--first-seed", "5",
        "--save-dir", str(tmp_path / "runs"), "--name", "sw", "--bits-per-image", "3404.4",
        "--", "--trainer.max_steps=6", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
        "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    # `python -m tools` from another folder: the checkout first on the path, whatever the install.
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "runs" / "sw"
    with open(folder / "noise_dim.csv") as handle:
        table = {r["noise"]: r for r in csv.DictReader(handle)}
    assert set(table) == {"gaussian float32", "discrete 1-bit"}
    for row in table.values():
        assert row["k"] == "2" and row["seeds"] == "5 6"
        assert float(row["fid_mean"]) > 0 and math.isfinite(float(row["fid_std"])) and float(row["fid_std"]) >= 0
    # eps is the fit's whole randomness budget: z, plus the conditional BigGAN's labels (i mod 10, log2 10 bits).
    assert {row["eps_source"] for row in table.values()} == {"budget_bits"}
    labels = math.log2(10)
    assert float(table["discrete 1-bit"]["eps_bits"]) == pytest.approx(3 + labels)  # 1 bit x 3 dimensions
    spec = NoiseSpec(dim=3, format="float32")
    assert float(table["gaussian float32"]["eps_bits"]) == pytest.approx(spec.entropy_bits() + labels)
    assert "K = 2 seeds (seed_everything 5, 6)" in (folder / "noise_dim.md").read_text()
    assert " ± " in (folder / "noise_dim.md").read_text()
    with open(folder / "noise_dim_runs.csv") as handle:
        assert sorted(int(r["seed"]) for r in csv.DictReader(handle)) == [5, 5, 6, 6]
    for png in ("fid_vs_eps.png", "kid_vs_eps.png", "precision_recall_vs_eps.png", "samples_ch2.png"):
        assert (folder / png).stat().st_size > 5000
    # Run again: everything is done, nothing retrains.
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count("# done:") == 8


@pytest.mark.slow
def test_known_source_over_seeds_end_to_end(tmp_path):
    """2 points x 2 seeds of the known-source DCGAN, a few steps each: the gap table and the figure."""
    cmd = [
        sys.executable, "-m", "tools", "known-source", "--grid", "1x1", "2x2", "--seeds", "2",
        "--save-dir", str(tmp_path / "runs"), "--name", "ks",
        "--", "--trainer.max_steps=4", "--trainer.limit_val_batches=1", "--trainer.check_val_every_n_epoch=1",
        "--trainer.limit_train_batches=2", "--model.init_args.g_width=4", "--model.init_args.d_width=4",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "holds by construction" in proc.stdout
    folder = tmp_path / "runs" / "ks"
    with open(folder / "known_source.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["eps_bits"], r["k"], r["seeds"]) for r in table] == [("1.0", "2", "0 1"), ("4.0", "2", "0 1")]
    assert all(float(r["gap_tv_mean"]) >= 0 and float(r["gap_tv_std"]) >= 0 for r in table)
    assert all(r["above_curve_all"] == "True" for r in table)
    assert (folder / "known_source.png").stat().st_size > 10_000
