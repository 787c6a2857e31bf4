"""``python -m tools reproduce noisy_i2i`` (tools/reproduce/noisy_i2i.py): the I2I poster's sweep on MNIST.

No real data: a tiny MNIST in the official IDX format (datamodules/synthetic/mnist.py) in
tmp_path, and tiny settings (the stages read them from ``pipeline.settings``).  The
in-process robustness evaluation is checked against the reference path, ``train.py test``
with the config's ``NoiseRobustness`` callback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from datamodules.synthetic.mnist import write_mnist
from evaluation.robustness import read_csv
from tools import sweep
from tools.reproduce import noisy_i2i
from tools.reproduce.pipeline import Pipeline

TINY = {
    **noisy_i2i.SETTINGS["default"],
    "sigma_t2": [0.0, 0.2],
    "iterations": 5,  # one epoch of the 80 training digits (5 batches of 16): one validation
    "batch_size": 16,
    "g_width": 4,
    "g_max_width": 8,
    "d_width": 4,
    "d_max_width": 8,
    "val_fraction": 0.2,  # 2 of the 10 digits of each class
    "val_batches": 1,
    "num_levels": 2,  # sigma_e^2 = 0, 0.4
    "noise_types": ["gaussian", "jpeg"],
    "eval_images": 12,
    "theory_max_dim": 8,
}


def _pipeline(out, data_root, settings=TINY, seeds=(0, 1), **kwargs) -> Pipeline:
    return Pipeline("noisy_i2i", str(out), str(data_root), "tiny", seeds, settings=settings, **kwargs)


def test_registered():
    from tools.reproduce import PAPERS

    assert PAPERS["noisy_i2i"] == "tools.reproduce.noisy_i2i"


def test_dry_run_prints_every_fit_and_writes_nothing(tmp_path, capsys):
    pipeline = _pipeline(tmp_path / "out", tmp_path / "data", settings=noisy_i2i.SETTINGS["default"],
                         seeds=(0, 1, 2), dry_run=True)  # fmt: skip
    pipeline.run(noisy_i2i.stages(pipeline))
    out = capsys.readouterr().out
    fits = [line for line in out.splitlines() if "train.py fit" in line]
    assert len(fits) == 5 * 3
    assert all(f"-c {noisy_i2i.CONFIG} " in f for f in fits)
    assert all(f"--data.init_args.source.init_args.root {tmp_path / 'data' / 'mnist'} " in f for f in fits)
    # 600 iterations = 1,200 optimiser steps (a D and a G step each)
    assert all("--trainer.max_steps 1200 " in f for f in fits)
    one = next(f for f in fits if "--trainer.logger.init_args.name sigma_t2_0.2/seed2 " in f)
    assert "--seed_everything 2 " in one and "--model.init_args.noise_seed 2 " in one
    assert "--model.init_args.sigma_t2 0.2 " in one
    assert "robustness of the 15 checkpoints" in out
    assert not (tmp_path / "out").exists()


def _rows(seed, t, gaussian, jpeg, ssim=0.5):
    """Robustness rows of one run: PSNR per sigma_e^2 (0, 0.4) of each noise type."""
    return [{"sigma_t2": t, "noise": noise, "sigma_e2": level, "noise_power": level * 0.9, "psnr": value,
             "ssim": ssim, "l1": 0.1} for noise, values in (("gaussian", gaussian), ("jpeg", jpeg))
            for level, value in zip((0.0, 0.4), values)]  # fmt: skip


def test_summarise_mean_std_best_and_nearest_prediction():
    runs = [
        {"sigma_t2": 0.0, "seed": 0, "rows": _rows(0, 0.0, (30, 10), (30, 20))},
        {"sigma_t2": 0.0, "seed": 1, "rows": _rows(1, 0.0, (28, 12), (28, 22))},
        {"sigma_t2": 0.2, "seed": 0, "rows": _rows(0, 0.2, (26, 20), (26, 25))},
        {"sigma_t2": 0.2, "seed": 1, "rows": _rows(1, 0.2, (24, 14), (24, 21))},
        {"sigma_t2": 0.4, "seed": 0, "rows": _rows(0, 0.4, (22, 19), (22, 21))},
        {"sigma_t2": 0.4, "seed": 1, "rows": _rows(1, 0.4, (20, 18), (20, 20))},
    ]
    theory = {"average_sigma_t2": 0.2, "minimax_sigma_t2": 0.07}
    out = noisy_i2i.summarise(runs, theory)
    assert out["sigma_t2"] == [0.0, 0.2, 0.4] and out["seeds"] == [0, 1] and out["noises"] == ["gaussian", "jpeg"]
    g02 = next(e for e in out["summary"] if e["noise"] == "gaussian" and e["sigma_t2"] == 0.2)
    # averages over sigma_e^2: seed 0 (26 + 20) / 2 = 23, seed 1 (24 + 14) / 2 = 19; worst 20 and 14
    assert g02["psnr_average"]["per_seed"] == [23, 19] and g02["psnr_average"]["mean"] == 21
    assert math.isclose(g02["psnr_average"]["std"], abs(23 - 19) / math.sqrt(2))
    assert g02["psnr_worst"]["per_seed"] == [20, 14] and g02["psnr_worst"]["mean"] == 17
    best = next(b for b in out["best"] if b["noise"] == "gaussian" and b["metric"] == "psnr")
    # seed means of the average: 0 -> 20, 0.2 -> 21, 0.4 -> 19.75; of the worst: 11, 17, 18.5
    assert best["best_average"] == 0.2 and best["best_worst"] == 0.4
    # per seed: seed 0 averages 20 / 23 / 20.5, seed 1 20 / 19 / 19 -> 0.2 and 0.0
    assert best["best_average_per_seed"] == [0.2, 0.0]
    assert best["nearest_average_rule"] == 0.2 and best["nearest_minimax"] == 0.0  # 0.07 is nearer 0 than 0.2
    curve = next(c for c in out["curves"] if c["noise"] == "jpeg" and c["sigma_e2"] == 0.4 and c["sigma_t2"] == 0.0)
    assert curve["psnr"]["mean"] == 21 and curve["seeds"] == 2 and math.isclose(curve["noise_power"], 0.36)
    assert curve["ssim"]["mean"] == 0.5 and curve["ssim"]["std"] == 0.0


@pytest.mark.slow  # four tiny fits and one train.py test: about 40 s
def test_noisy_i2i_pipeline_end_to_end_matches_train_py_test_then_skips_everything(tmp_path, capsys):
    data = tmp_path / "data"
    write_mnist(str(data / "mnist"), train_count=100, test_count=12)
    pipeline = _pipeline(tmp_path / "out", data)
    pipeline.run(noisy_i2i.stages(pipeline))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["models", "robustness", "tables"]
    assert all(s["status"] == "done" for s in manifest["stages"])
    assert manifest["seeds"] == [0, 1] and manifest["settings"] == TINY
    stages = {s["name"]: s for s in manifest["stages"]}
    tags = ["sigma_t2_0/seed0", "sigma_t2_0/seed1", "sigma_t2_0.2/seed0", "sigma_t2_0.2/seed1"]
    assert stages["models"]["checkpoints"] == [f"runs/{t}/fit/checkpoints/last.ckpt" for t in tags]
    assert [r["tag"] for r in stages["models"]["metrics"]["runs"]] == tags
    for r in stages["models"]["metrics"]["runs"]:  # the fit's last clean validation scores
        scalars = sweep.tensorboard_scalars(pipeline.fit_dir(r["tag"]))
        assert r["val"]["psnr"] == scalars["val/psnr"][-1][1] and set(r["val"]) >= {"psnr", "ssim", "l1"}

    # robustness: 2 types x 2 powers per run, on all 12 test digits, equal to the run's own table
    rob = stages["robustness"]["metrics"]
    assert rob["images"] == 12 and rob["theory"]["lambda_max"] == 0.4 and rob["theory"]["average_sigma_t2"] == 0.2
    assert rob["theory"]["eigenvalues_kept"] == 8
    for run in rob["runs"]:
        assert [(r["noise"], r["sigma_e2"]) for r in run["rows"]] == [("gaussian", 0.0), ("gaussian", 0.4),
                                                                      ("jpeg", 0.0), ("jpeg", 0.4)]  # fmt: skip
        assert all(r["images"] == 12 and r["sigma_t2"] == run["sigma_t2"] for r in run["rows"])
        written = read_csv(str(tmp_path / "out" / "runs" / run["tag"] / "robustness" / "robustness.csv"))
        for mine, theirs in zip(run["rows"], written, strict=True):
            assert math.isclose(mine["psnr"], theirs["psnr"], rel_tol=1e-9)

    # the reference path: train.py test with the config's NoiseRobustness on the same checkpoint
    run = rob["runs"][2]  # sigma_t^2 = 0.2, seed 0
    cmd = sweep.train_command(
        "test", noisy_i2i.CONFIG,
        ["--data.init_args.source.init_args.root", str(data / "mnist"),
         "--trainer.enable_progress_bar", "false",
         "--model.init_args.g_width", "4", "--model.init_args.g_max_width", "8",
         "--model.init_args.d_width", "4", "--model.init_args.d_max_width", "8",
         "--trainer.callbacks.init_args.num_levels", "2",
         "--trainer.callbacks.init_args.noise_types", "[gaussian, jpeg]",
         "--trainer.callbacks.init_args.max_images", "12",
         "--trainer.callbacks.init_args.theory_max_dim", "8"],
        str(tmp_path / "ref"), "ref", "test", ckpt_path=str(tmp_path / "out" / run["checkpoint"]),
    )  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=sweep.ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    reference = read_csv(str(tmp_path / "ref" / "ref" / "test" / "robustness" / "robustness.csv"))
    assert len(reference) == len(run["rows"]) == 4
    for mine, theirs in zip(run["rows"], reference):
        assert (mine["noise"], mine["sigma_e2"], mine["sigma_t2"]) == (theirs["noise"], theirs["sigma_e2"], 0.2)
        for key in ("psnr", "ssim", "l1", "noise_power"):
            assert math.isclose(mine[key], theirs[key], rel_tol=1e-5, abs_tol=1e-6), key
    ref_theory = json.loads((tmp_path / "ref" / "ref" / "test" / "robustness" / "robustness.json").read_text())["theory"]
    assert math.isclose(rob["theory"]["minimax_sigma_t2"], ref_theory["minimax_sigma_t2"], rel_tol=1e-9)

    # tables: mean and sample std over the two seeds of the recorded numbers
    summary = stages["tables"]["metrics"]["summary"]
    by = {(r["sigma_t2"], r["seed"]): r["rows"] for r in rob["runs"]}
    for t in (0.0, 0.2):
        averages = [sum(r["psnr"] for r in by[(t, s)] if r["noise"] == "jpeg") / 2 for s in (0, 1)]
        entry = next(e for e in summary["summary"] if e["noise"] == "jpeg" and e["sigma_t2"] == t)
        assert math.isclose(entry["psnr_average"]["mean"], sum(averages) / 2)
        assert math.isclose(entry["psnr_average"]["std"], abs(averages[0] - averages[1]) / math.sqrt(2))
    out = tmp_path / "out" / "tables"
    for name in ("robustness_psnr.png", "robustness_ssim.png", "summary.csv", "curves.csv", "tables.md"):
        assert (out / name).stat().st_size > 0
    text = (out / "tables.md").read_text()
    assert "### Best σ_t² against the theory" in text and "minimax σ_t² (top 8 eigenvalues)" in text

    # a second run reuses every stage (nothing retrained) and writes the same numbers
    before = os.path.getmtime(pipeline.checkpoint("sigma_t2_0.2/seed1"))
    capsys.readouterr()
    again = _pipeline(tmp_path / "out", data)
    again.run(noisy_i2i.stages(again))
    assert capsys.readouterr().out.count(": done (") == 3
    assert os.path.getmtime(pipeline.checkpoint("sigma_t2_0.2/seed1")) == before
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"] == manifest["stages"]

