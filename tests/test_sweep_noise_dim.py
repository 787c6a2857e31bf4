"""python -m tools sweep-noise-dim and known-source: commands, resume, array tasks, tables and plots."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_modules import NoiseDimGAN
from tools import known_source as ks_script
from tools import sweep_noise_dim as sweep
from tools.__main__ import main as tools_main

ROOT = Path(__file__).resolve().parents[1]

DIGITS = str(ROOT / "configs" / "noise_dim" / "digits_biggan.yaml")


def _rate_json(path: Path) -> str:
    """A file in the layout of `python -m analysis codec-rate --out` (the digits' WebP rate of the README)."""
    payload = {
        "best_codec": "webp",
        "data": {"source": "DigitsDataModule"},
        "codecs": {"webp": {"title": "WebP", "bits_per_image": 3404.4197}, "png": {"title": "PNG", "bits_per_image": 4511.2}},
    }
    path.write_text(json.dumps(payload))
    return str(path)


def test_theorem_bound_comes_from_the_analysis_library(tmp_path):
    bound = sweep.theorem_bound(_rate_json(tmp_path / "rate.json"), None, "float32")
    assert bound["codec"] == "WebP" and bound["n_min"] == 129  # (3404.42 - 1) / 26.4637 = 128.61
    assert bound["lower"] == pytest.approx((3404.4197 - 1) / 26.463674, rel=1e-5)
    assert sweep.theorem_bound(None, 1000.0, "float16")["n_min"] == 75  # 999 / 13.4637 = 74.2
    assert sweep.theorem_bound(None, None, "float32") is None


def test_tables_and_plots_from_results(tmp_path):
    rows = [
        {"ch": ch, "n": n, "eps_bits": 26.46 * n, "fid": 100.0 / (n * ch) + 5, "kid_mean": 0.1 / n, "kid_std": 0.01,
         "precision": 0.5, "recall": 0.1 * n}
        for ch in (2, 4)
        for n in (1, 4, 16)
    ]  # fmt: skip
    bound = sweep.theorem_bound(_rate_json(tmp_path / "rate.json"), None, "float32")
    # Sample grids of the fits, as SampleGrid writes them.
    from PIL import Image

    for n in (1, 4, 16):
        folder = tmp_path / "runs" / "sw" / f"ch2_n{n}" / "fit" / "samples"
        folder.mkdir(parents=True)
        Image.new("RGB", (34, 34), (n * 10, 0, 0)).save(folder / "fixed_noise_step0000010.png")
    paths = sweep.write_results(rows, str(tmp_path / "out"), bound, str(tmp_path / "runs"), "sw")
    with open(paths["csv"]) as handle:
        table = list(csv.DictReader(handle))
    assert [(int(r["ch"]), int(r["n"])) for r in table] == [(2, 1), (2, 4), (2, 16), (4, 1), (4, 4), (4, 16)]
    assert float(table[0]["fid"]) == pytest.approx(55.0)
    assert "| ch | n | eps_bits | fid |" in Path(paths["md"]).read_text()
    for key in ("fid", "kid", "samples_ch2"):
        assert Path(paths[key]).stat().st_size > 5000
    assert "samples_ch4" not in paths  # no sample grids for ch = 4
    assert json.loads((tmp_path / "out" / "theorem_4_2.json").read_text())["n_min"] == 129


def test_dry_run_array_tasks_and_resume(tmp_path, capsys):
    common = ["-c", DIGITS, "--dims", "1", "8", "--ch", "2", "4", "--save-dir", str(tmp_path), "--name", "sw"]
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--", "--trainer.max_steps", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8  # fit + test for each of 2 x 2 points
    assert "--model.init_args.noise.dim 1 --model.init_args.ch 2" in lines[0] and lines[0].endswith("--trainer.max_steps 4")
    assert " test " in lines[1] and "ch2_n1/fit/checkpoints/last.ckpt" in lines[1]
    # One SLURM array task: the fourth point (ch 4, n 8).
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--array-index", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "noise.dim 8 --model.init_args.ch 4" in lines[0]
    assert tools_main(["sweep-noise-dim", *common, "--dry-run", "--array-index", "4"]) == 2
    assert "outside the grid" in capsys.readouterr().err
    # A finished point is skipped; an interrupted one resumes from its last checkpoint.
    fit_dir, test_dir = sweep.run_folders(str(tmp_path), "sw", 2, 1)
    os.makedirs(fit_dir)
    open(os.path.join(fit_dir, "FINISHED"), "w").close()
    os.makedirs(test_dir)
    (Path(test_dir) / sweep.RESULT_FILE).write_text("{}")
    last = Path(sweep.run_folders(str(tmp_path), "sw", 2, 8)[0]) / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    tools_main(["sweep-noise-dim", *common, "--dry-run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# done:") and lines[1].startswith("# done:")
    assert lines[2].endswith(f"--ckpt_path {last}")


def test_known_source_merge_writes_table_and_plot(tmp_path, capsys):
    p = [0.5, 0.3, 0.2]
    from evaluation.known_source import known_source_report

    for bits, dim, counts in [(1, 1, [1, 1, 0]), (2, 1, [2, 1, 1]), (1, 3, [4, 3, 1])]:
        folder = Path(ks_script.fit_folder(str(tmp_path), "ks", bits, dim))
        folder.mkdir(parents=True)
        report = known_source_report(p, counts, bits * dim)
        (folder / "known_source.json").write_text(json.dumps(report))
    paths = ks_script.merge(str(tmp_path), "ks", [(1, 1), (2, 1), (1, 3), (3, 3)])
    with open(paths["csv"]) as handle:
        table = list(csv.DictReader(handle))
    assert [float(r["eps_bits"]) for r in table] == [1.0, 2.0, 3.0]
    assert table[0]["D_kl"] == "inf" and all(r["above_curve_js"] == "True" for r in table)
    assert Path(paths["png"]).stat().st_size > 10_000
    assert tools_main(["known-source", "--grid", "2y3"]) == 2
    assert "2y3" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cifar10_biggan", "digits_biggan", "known_source", "digits_demo"])
def test_every_noise_dim_config_builds_its_model(name):
    config = yaml.safe_load((ROOT / "configs" / "noise_dim" / f"{name}.yaml").read_text())
    model = NoiseDimGAN(**config["model"]["init_args"])
    assert model.noise.dim == config["model"]["init_args"]["noise"]["dim"]


@pytest.mark.slow
def test_sweep_of_two_tiny_runs_end_to_end(tmp_path):
    """Two BigGAN fits on the digits, each tested with classifier FID/KID; one table, plots and sample figure."""
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
        sys.executable, "-m", "tools", "sweep-noise-dim", "-c", str(path), "--dims", "1", "3", "--ch", "2",
        "--save-dir", str(tmp_path / "runs"), "--name", "sw", "--bits-per-image", "3404.4",
        "--", "--trainer.max_steps=6", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
        "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    # `python -m tools` from another folder: the checkout first on the path, whatever the install.
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "runs" / "sw"
    with open(folder / "noise_dim.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["n"]) for r in table] == [1, 3]
    assert all(float(r["fid"]) > 0 and float(r["kid_std"]) >= 0 for r in table)
    assert float(table[1]["eps_bits"]) == pytest.approx(3 * 26.4637, abs=1e-3)
    for png in ("fid_vs_n.png", "kid_vs_n.png", "samples_ch2.png"):
        assert (folder / png).stat().st_size > 5000
    # Run again: everything is done, nothing retrains.
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count("# done:") == 4
