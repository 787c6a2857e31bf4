"""``python -m tools reproduce noise_dim`` (tools/reproduce/noise_dim.py).

No real data: a tiny MNIST and CIFAR-10 in their official layouts (datamodules/synthetic/)
in tmp_path.  The end-to-end run uses tiny settings (the stage code reads them from
``pipeline.settings``, as it reads the scales' SETTINGS).
"""

from __future__ import annotations

import json
import math
import os
import shlex

import pytest

from core.errors import UserError
from datamodules.synthetic.cifar10 import write_cifar10
from datamodules.synthetic.mnist import write_mnist
from tools.reproduce import PAPERS, noise_dim
from tools.reproduce.pipeline import Pipeline

TINY = {
    **noise_dim.SETTINGS["default"],
    "classifier_epochs": 2,  # OneCycleLR needs a few steps
    "classifier_batch_size": 16,
    "classifier_val_fraction": 0.1,
    "min_classifier_accuracy": 0.0,
    "codecs": ["png"],
    "codec_limit": 6,
    "codec_workers": 1,
    "batch_size": 16,
    "gan_steps": 4,
    "widths": [4, 2],
    "points": [{"n": 1, "bits": 1}, {"n": 1, "bits": 0}],
    "capacity_points": [{"n": 1, "bits": 1}],
    "eval_samples": 40,
    "kid_subset_size": 10,
    "pr_max_samples": 40,
}


def _pipeline(out, data_root, settings=TINY, seeds=(0, 1), **kwargs) -> Pipeline:
    return Pipeline("noise_dim", str(out), str(data_root), "tiny", seeds, settings=settings, **kwargs)


def test_registered():
    assert PAPERS["noise_dim"] == "tools.reproduce.noise_dim"


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    pipeline = _pipeline(tmp_path / "out", tmp_path, settings=noise_dim.SETTINGS["default"], seeds=(0, 1, 2),
                         dry_run=True)  # fmt: skip
    pipeline.run(noise_dim.stages(pipeline))
    out = capsys.readouterr().out
    commands = [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("$ ")]
    gans = [c for c in commands if "configs/noise_dim/digits_demo.yaml" in c]
    # 3 seeds x (5 eps points at width 16 + 2 at width 12)
    assert len(gans) == 3 * (5 + 2) == 21
    assert all("--model.init_args.num_classes 0" in c and "--data datamodules.MNISTDataModule" in c for c in gans)
    assert all("--model.init_args.noise.dim 4 " in c and "--trainer.max_steps 1800" in c for c in gans)
    assert all("--model.init_args.lr_g 0.0006 --model.init_args.lr_d 0.0006" in c for c in gans)
    assert sum("--model.init_args.g_width 12 --model.init_args.d_width 12" in c for c in gans) == 6
    for bits in (1, 2, 3, 4):
        flag = f"--model.init_args.noise.distribution discrete --model.init_args.noise.bits {bits} "
        assert sum(flag in c for c in gans) == 3 * (1 + (bits == 2))
    assert sum("/seed2 --trainer.logger.init_args.version fit" in c and "--seed_everything 2 " in c for c in gans) == 7
    # the classifier: trained in the models pool, then reused by the classifier stage: the same command twice
    classifier = [c for c in commands if "configs/classifier/mnist.yaml" in c]
    assert len(classifier) == 2 and classifier[0] == classifier[1]
    assert "--trainer.max_epochs 10" in classifier[0] and "--data.init_args.pad 2" in classifier[0]
    codec = next(c for c in commands if " codec-rate " in c)
    assert "--codecs png webp jpegxl" in codec and "--limit 400" in codec and "cifar10" in codec
    assert sum(" noise-dim " in c for c in commands) == 2 and "--entropy paper" in out
    assert not (tmp_path / "out").exists()


def test_paper_scale_is_cifar10_stylegan2_ada_over_n_with_inception_features(tmp_path, capsys):
    pipeline = _pipeline(tmp_path / "out", tmp_path, settings=noise_dim.SETTINGS["paper"], seeds=(0,), dry_run=True)
    names = [s.name for s in noise_dim.stages(pipeline)]
    assert names == ["codec", "models", "evaluate", "tables"]  # no MNIST classifier: Inception features
    pipeline.run(noise_dim.stages(pipeline))
    commands = [line.strip()[2:] for line in capsys.readouterr().out.splitlines() if line.strip().startswith("$ ")]
    gans = [c for c in commands if "cifar10_stylegan2_ada.yaml" in c]
    assert len(gans) == 10 + 4
    dims = sorted(int(shlex.split(c)[shlex.split(c).index("--model.init_args.noise.dim") + 1]) for c in gans)
    assert dims == sorted([1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + [1, 8, 64, 512])
    assert all("--trainer.max_steps" not in c and "--model.init_args.ch " in c for c in gans)
    assert "--limit" not in next(c for c in commands if " codec-rate " in c)


def _row(width, n, bits, eps, fid, recall, std_fid=1.0, std_recall=0.015):
    stat = lambda mean, std: {"mean": mean, "std": std}  # noqa: E731
    return {"width": width, "n": n, "bits": bits, "eps_bits": eps, "fid": stat(fid, std_fid),
            "kid_mean": stat(fid / 100, std_fid / 100), "precision": stat(0.5, 0.1), "recall": stat(recall, std_recall)}  # fmt: skip


def test_saturation_is_the_smallest_eps_from_which_every_point_is_within_one_std_of_the_best():
    curve = [_row(16, 4, 1, 4, 80, 0.0), _row(16, 4, 2, 8, 40, 0.05), _row(16, 4, 3, 12, 20.5, 0.30),
             _row(16, 4, 4, 16, 20.0, 0.32), _row(16, 4, 0, 105.9, 20.9, 0.33)]  # fmt: skip
    assert noise_dim.saturation(curve, "fid", lower_is_better=True) == 12  # 20.5 and 20.9 within 1 of 20.0
    assert noise_dim.saturation(curve, "recall", lower_is_better=False) == 16  # 0.30 is 0.03 below 0.33, 0.32 within 0.015
    curve[-1]["fid"] = {"mean": 25.0, "std": 1.0}  # the last point worse by 5 std: nothing from 12 on is "flat"
    assert noise_dim.saturation(curve, "fid", lower_is_better=True) == 105.9
    assert noise_dim.saturation([], "fid", lower_is_better=True) is None
    one_seed = [_row(8, 4, 1, 4, 30, 0.0, std_fid=math.nan), _row(8, 4, 0, 100, 30, 0.2, std_fid=math.nan)]
    assert noise_dim.saturation(one_seed, "fid", lower_is_better=True) == 4  # equal means: flat from the start


def test_summarise_means_and_sample_stds_per_width_and_point_sorted_by_eps():
    runs = []
    for seed, (fid_a, fid_b) in enumerate([(10.0, 30.0), (14.0, 34.0)]):
        base = {"kid_mean": 0.1, "precision": 0.5, "noise": "x", "n": 4, "seed": seed}
        runs += [{**base, "width": 16, "bits": 0, "eps_bits": 105.9, "fid": fid_a, "recall": 0.3},
                 {**base, "width": 16, "bits": 1, "eps_bits": 4.0, "fid": fid_b, "recall": 0.0},
                 {**base, "width": 8, "bits": 1, "eps_bits": 4.0, "fid": fid_b + 1, "recall": 0.0}]  # fmt: skip
    summary = noise_dim.summarise(runs)
    assert [(p["width"], p["eps_bits"]) for p in summary] == [(16, 4.0), (16, 105.9), (8, 4.0)]
    assert summary[1]["fid"]["mean"] == 12.0 and math.isclose(summary[1]["fid"]["std"], 2 * math.sqrt(2))
    assert summary[0]["recall"] == {"mean": 0.0, "std": 0.0, "per_seed": [0.0, 0.0]} and summary[0]["seeds"] == [0, 1]
    runs[0]["eps_bits"] = 100.0  # two seeds of one point with different eps: not one point
    with pytest.raises(UserError, match="eps differ"):
        noise_dim.summarise(runs)


@pytest.mark.slow  # a classifier, 6 tiny GAN fits, codec-rate on 6 images: about a minute on 2 cores
def test_noise_dim_pipeline_end_to_end_then_skips_everything(tmp_path, capsys):
    data = tmp_path / "data"
    write_mnist(str(data / "mnist"), train_count=160, test_count=20)
    write_cifar10(str(data / "cifar10"), per_batch=4)
    pipeline = _pipeline(tmp_path / "out", data)
    pipeline.run(noise_dim.stages(pipeline))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert list(stages) == ["codec", "models", "classifier", "evaluate", "tables"]
    assert all(s["status"] == "done" for s in stages.values()) and manifest["settings"] == TINY

    # codec: the manifest's numbers are those of codec-rate's and noise-dim's files
    codec = stages["codec"]["metrics"]
    rate = json.loads((tmp_path / "out" / "analysis" / "cifar10_rate.json").read_text())
    assert codec["images"] == 6 and codec["rates"]["png"]["bytes_per_image"] == rate["rows"][0]["bytes_per_image"]
    bits = rate["rows"][0]["bytes_per_image"] * 8
    for fmt_name, cell in codec["table3_exact"].items():
        assert cell["n_min"] == math.ceil((bits - 1) / cell["H"])  # Noise-dim Eq. 9
    assert codec["table3_paper_H"]["float32"]["H"] == 26.55  # the paper's Table 1

    # the classifier was trained once, in the models pool, and reused by its own stage
    assert stages["classifier"]["checkpoints"] == ["runs/classifier/fit/checkpoints/last.ckpt"]
    assert "classifier" in stages["models"]["metrics"]["fits"]
    judge = stages["classifier"]["metrics"]["test_accuracy"]

    # evaluate: 2 seeds x 3 models; eps as drawn; one-bit noise at n = 1 gives two images: recall 0
    runs = stages["evaluate"]["metrics"]["runs"]
    assert stages["evaluate"]["metrics"]["classifier_test_accuracy"] == judge
    assert sorted((r["width"], r["bits"], r["seed"]) for r in runs) == sorted(
        (w, b, s) for s in (0, 1) for w, b in ((4, 1), (4, 0), (2, 1)))  # fmt: skip
    for r in runs:
        assert r["eps_source"] == "budget_bits" and r["label_bits"] == 0.0 and r["real_images"] == 140  # 160 digits less the stratified 10% val split
        if r["bits"]:
            assert r["eps_bits"] == 1.0 and r["recall"] == 0.0
        else:
            assert r["eps_bits"] > 20  # float32 Gaussian as torch draws it on the CPU
    # the recorded numbers are those of the checkpoint, evaluated again here
    from callbacks.generative_metrics import GenerativeMetrics

    metric = GenerativeMetrics(num_samples=40, feature_extractor="classifier",
                               feature_path=pipeline.checkpoint("classifier"), kid_subset_size=10, pr_max_samples=40,
                               batch_size=500, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    again = noise_dim.evaluate_fit(metric, pipeline.fit_dir("w4_n1_cfg/seed1"), pipeline.checkpoint("w4_n1_cfg/seed1"))
    recorded = next(r for r in runs if r["tag"] == "w4_n1_cfg/seed1")
    assert all(math.isclose(again[k], recorded[k], rel_tol=1e-5, abs_tol=1e-7) for k in ("fid", "kid_mean", "recall"))

    # tables: mean and sample std over the two seeds of the recorded numbers
    summary = stages["tables"]["metrics"]["summary"]
    point = next(p for p in summary if (p["width"], p["bits"]) == (4, 0))
    fids = [r["fid"] for r in runs if (r["width"], r["bits"]) == (4, 0)]
    assert math.isclose(point["fid"]["mean"], sum(fids) / 2)
    assert math.isclose(point["fid"]["std"], abs(fids[0] - fids[1]) / math.sqrt(2), abs_tol=1e-12)
    out = tmp_path / "out" / "tables"
    for name in ("noise_dim_eps.png", "noise_dim_samples.png", "eps_sweep.csv", "eps_sweep_runs.csv",
                 "table2_codec_rates.csv", "table3_noise_dim.csv", "tables.md"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    text = (out / "tables.md").read_text()
    assert "### Table 3" in text and f"{judge:.4f}" in text and "| 475 |" in text  # the paper's float32 cell

    # a second run reuses every stage (nothing retrained) and writes the same numbers
    before = {p: os.path.getmtime(p) for p in (pipeline.checkpoint("classifier"), pipeline.checkpoint("w2_n1_b1/seed1"))}
    capsys.readouterr()
    rerun = _pipeline(tmp_path / "out", data)
    rerun.run(noise_dim.stages(rerun))
    assert capsys.readouterr().out.count(": done (") == 5
    assert {p: os.path.getmtime(p) for p in before} == before
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"] == manifest["stages"]
