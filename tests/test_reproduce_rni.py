"""``python -m tools reproduce rni`` (tools/reproduce/rni.py): DCGAN with none / ENI / RNI on MNIST.

No real data: a tiny MNIST in the official IDX format (datamodules/synthetic/mnist.py) in
tmp_path.  The end-to-end run uses tiny settings (the stage code reads them from
``pipeline.settings``, as it reads the scales' SETTINGS).
"""

from __future__ import annotations

import json
import math
import os
import shlex

import pytest
import yaml

from datamodules.synthetic.mnist import write_mnist
from tools.reproduce import PAPERS, rni
from tools.reproduce.pipeline import Pipeline
from tools.sweep import tensorboard_scalars
from train import main

TINY = {
    **rni.SETTINGS["default"],
    "batch_size": 16,
    "val_fraction": 0.1,
    "classifier_epochs": 2,  # OneCycleLR needs a few steps
    "classifier_batch_size": 16,
    "classifier_val_fraction": 0.1,
    "min_classifier_accuracy": 0.0,
    "gan_epochs": 1,
    "dcgan_width": 4,
    "eval_samples": 40,
    "kid_subset_size": 20,
    "cond_samples": 60,
    "cond_batch_size": 20,
}


def _pipeline(out, data_root, settings=TINY, seeds=(0, 1), **kwargs) -> Pipeline:
    return Pipeline("rni", str(out), str(data_root), "tiny", seeds, settings=settings, **kwargs)


def test_registered():
    assert PAPERS["rni"] == "tools.reproduce.rni"


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    pipeline = _pipeline(tmp_path / "out", tmp_path, settings=rni.SETTINGS["default"], seeds=(0, 1, 2), dry_run=True)
    pipeline.run(rni.stages(pipeline))
    out = capsys.readouterr().out
    assert out.count("train.py fit") == 1 + 3 * 3  # the classifier, then 3 injections x 3 seeds
    for injection in ("none", "eni", "rni"):
        assert out.count(f"--model.init_args.noise_injection {injection} ") == 3
    assert out.count("--trainer.max_epochs 6 ") == 9 and out.count("--trainer.check_val_every_n_epoch 6 ") == 9
    assert out.count("--seed_everything 2 ") == 3
    assert not (tmp_path / "out").exists()


def _parsed(pipeline: Pipeline, injection: str, seed: int, capsys) -> dict:
    """The config LightningCLI builds from the pipeline's fit command (``--print_config``)."""
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["fit", "-c", rni.CONFIG, *rni.fit_overrides(pipeline, injection, seed), "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def test_the_fit_commands_measure_what_the_paper_measures_and_differ_only_in_the_injection(tmp_path, capsys):
    s = rni.SETTINGS["default"]
    pipeline = _pipeline(tmp_path / "out", tmp_path / "data", settings=s, seeds=(0,))
    configs = {i: _parsed(pipeline, i, 0, capsys) for i in rni.INJECTIONS}
    rni_config = configs["rni"]
    data = rni_config["data"]
    assert data["class_path"] == "datamodules.MNISTDataModule"
    assert data["init_args"]["root"] == str(tmp_path / "data" / "mnist") and data["init_args"]["pad"] == 2
    assert data["init_args"]["resolution"] == 32 and data["init_args"]["batch_size"] == 64
    model = rni_config["model"]["init_args"]
    assert model["backbone"] == "dcgan" and model["dcgan_width"] == s["dcgan_width"] and model["channels"] == 1
    assert model["r1_gamma"] == 0.0 and model["pl_weight"] == 0.0 and model["betas"] == [0.5, 0.999]
    callbacks = {cb["class_path"]: cb["init_args"] for cb in rni_config["trainer"]["callbacks"]}
    assert list(callbacks) == ["callbacks.SampleGrid", "callbacks.ConditionNumber", "callbacks.GenerativeMetrics"]
    cond = callbacks["callbacks.ConditionNumber"]
    assert (cond["num_samples"], cond["batch_size"], cond["noise_mode"], cond["space"]) == (5000, 250, "per_batch", "z")
    assert cond["perturbation_std"] == 1e-4 and cond["top_fraction"] == 0.02
    gen = callbacks["callbacks.GenerativeMetrics"]
    assert gen["feature_extractor"] == "classifier" and gen["feature_path"] == pipeline.checkpoint("classifier")
    assert gen["num_samples"] == gen["ppl_samples"] == 2000 and gen["precision_recall"] is True
    assert (gen["ppl_space"], gen["ppl_sampling"], gen["ppl_noise_mode"]) == ("z", "end", "per_batch")
    assert gen["ppl_lpips_path"] is None and gen["cache_dir"] == pipeline.path("cache")
    assert rni_config["trainer"]["max_epochs"] == rni_config["trainer"]["check_val_every_n_epoch"] == 6
    assert rni_config["trainer"]["max_steps"] == -1 and rni_config["seed_everything"] == 0

    # the three rows differ only in noise_injection
    for injection, config in configs.items():
        assert config["model"]["init_args"]["noise_injection"] == injection
        config["model"]["init_args"].pop("noise_injection")
    assert configs["none"] == configs["eni"] == configs["rni"]


def test_summarise_is_mean_and_sample_std_over_seeds_and_keeps_the_ppl_distance():
    def run(injection, seed, fid, ppl, mc, distance="classifier-l2"):
        metrics = {"metrics/fid": fid, "metrics/kid_mean": 0.1, "metrics/precision": 0.5, "metrics/recall": 0.25,
                   f"metrics/ppl[{distance}]": ppl, "metrics/mc": mc, "metrics/ttmc": 2 * mc}  # fmt: skip
        return {"injection": injection, "seed": seed, "metrics": metrics}

    runs = [run("none", 0, 10.0, 100.0, 1.0), run("none", 1, 14.0, 80.0, 3.0), run("rni", 0, 5.0, 50.0, 0.5)]
    summary = rni.summarise(runs)
    assert list(summary) == ["none", "rni"]
    assert summary["none"]["fid"]["mean"] == 12.0 and math.isclose(summary["none"]["fid"]["std"], 2 * math.sqrt(2))
    assert summary["none"]["ppl"]["per_seed"] == [100.0, 80.0] and summary["none"]["ppl_distance"] == "classifier-l2"
    assert summary["none"]["ttmc"]["mean"] == 4.0 and summary["none"]["seeds"] == [0, 1]
    assert summary["rni"]["mc"]["mean"] == 0.5 and math.isnan(summary["rni"]["mc"]["std"])  # one seed: undefined
    with pytest.raises(Exception, match="several distances"):
        rni.summarise(runs + [run("rni", 1, 5.0, 50.0, 0.5, distance="lpips-vgg")])


@pytest.mark.slow
def test_rni_pipeline_end_to_end_then_skips_everything(tmp_path, capsys):
    data = tmp_path / "data"
    write_mnist(str(data / "mnist"), train_count=160, test_count=20)
    pipeline = _pipeline(tmp_path / "out", data)
    pipeline.run(rni.stages(pipeline))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["classifier", "models", "tables"]
    assert all(s["status"] == "done" and s["wall_s"] >= 0 for s in manifest["stages"])
    assert manifest["seeds"] == [0, 1] and manifest["settings"] == TINY
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["classifier"]["metrics"]["test_images"] == 20

    models = stages["models"]
    assert models["checkpoints"] == [f"runs/{i}/seed{s}/fit/checkpoints/last.ckpt"
                                     for s in (0, 1) for i in ("none", "eni", "rni")]  # fmt: skip
    rni_seed1 = next(c for c in models["commands"] if "--trainer.logger.init_args.name rni/seed1" in c)
    assert "--seed_everything 1" in rni_seed1 and "--model.init_args.noise_injection rni" in rni_seed1
    assert f"--trainer.callbacks.init_args.feature_path {shlex.quote(pipeline.checkpoint('classifier'))}" in rni_seed1
    runs = models["metrics"]["runs"]
    assert [(r["injection"], r["seed"]) for r in runs] == [(i, s) for s in (0, 1) for i in ("none", "eni", "rni")]
    for r in runs:  # the manifest's numbers are the runs' logged ones
        logged = tensorboard_scalars(pipeline.fit_dir(f"{r['injection']}/seed{r['seed']}"))
        assert r["metrics"] == {tag: logged[tag][-1][1] for tag in r["metrics"]}
        assert set(r["metrics"]) == {"metrics/fid", "metrics/kid_mean", "metrics/precision", "metrics/recall",
                                     "metrics/ppl[classifier-l2]", "metrics/mc", "metrics/ttmc"}  # fmt: skip
        assert 0 < r["metrics"]["metrics/mc"] <= r["metrics"]["metrics/ttmc"]  # TTMC: the mean of the top 2%
        assert 0 <= r["metrics"]["metrics/recall"] <= 1 and os.path.isfile(tmp_path / "out" / r["samples"])

    # tables: mean and sample std over the two seeds of the recorded numbers, by rni-tables' code too
    tables = stages["tables"]["metrics"]
    for injection in ("none", "eni", "rni"):
        fids = [r["metrics"]["metrics/fid"] for r in runs if r["injection"] == injection]
        stat = tables["summary"][injection]["fid"]
        assert math.isclose(stat["mean"], sum(fids) / 2) and math.isclose(stat["std"], abs(fids[0] - fids[1]) / 2**0.5)
        row1 = next(r for r in tables["table1"] if r["config row"] == injection)
        assert math.isclose(row1["FID_mean"], stat["mean"]) and row1["PPL distance"] == "classifier-l2"
        row2 = next(r for r in tables["table2"] if r["config row"] == injection)
        mcs = [r["metrics"]["metrics/mc"] for r in runs if r["injection"] == injection]
        assert math.isclose(row2["MC_mean"], sum(mcs) / 2) and row2["seeds"] == "0 1"
    out = tmp_path / "out" / "tables"
    for name in ("rni_metrics.png", "rni_samples.png", "table1.csv", "table2.csv", "per_seed.csv", "tables.md"):
        assert (out / name).stat().st_size > 0
    text = (out / "tables.md").read_text()
    assert "### RNI Table 2" in text and "DCGAN + RNI (Ours)" in text and "45.29" in text  # the paper's FFHQ FID

    # a second run reuses every stage (nothing retrained) and writes the same numbers
    before = {p: os.path.getmtime(p) for p in (pipeline.checkpoint("classifier"), pipeline.checkpoint("rni/seed1"))}
    capsys.readouterr()
    again = _pipeline(tmp_path / "out", data)
    again.run(rni.stages(again))
    assert capsys.readouterr().out.count(": done (") == 3
    assert {p: os.path.getmtime(p) for p in before} == before
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"] == manifest["stages"]
