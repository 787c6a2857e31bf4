"""``python -m tools reproduce ganz`` (tools/reproduce/ganz.py).

No real data: a tiny MNIST in the IDX format and a tiny CIFAR-10 in the python layout
(datamodules/synthetic/) in tmp_path.  The end-to-end run uses tiny settings (the stage code
reads them from ``pipeline.settings``, as it reads the scales' SETTINGS).
"""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from datamodules.synthetic.cifar10 import write_cifar10
from datamodules.synthetic.mnist import write_mnist
from tools.reproduce import PAPERS, ganz
from tools.reproduce.pipeline import Pipeline

TINY = {
    **ganz.SETTINGS["default"],
    "iterations": 3,
    "d_t": 4,
    "n_filters": 2,
    "inversion_steps": 4,
    "inversion_batch": 3,  # two batches of the 4 images: the batching path too
    "modes": ["keep_linear", "random_linear(16)"],
    "dtypes": ["uint8"],
    "codecs": ["webp"],
    "test_images": 4,
    "ood_images": 4,
    "cs_images": 3,
    "measurements": [10, 40],
    "grid_images": 2,
}


def _pipeline(out, data_root, settings=TINY, seeds=(0, 1), **kwargs) -> Pipeline:
    return Pipeline("ganz", str(out), str(data_root), "tiny", seeds, settings=settings, **kwargs)


def test_registered_and_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    assert PAPERS["ganz"] == "tools.reproduce.ganz"
    pipeline = _pipeline(tmp_path / "out", tmp_path, settings=ganz.SETTINGS["default"], seeds=(0, 1, 2), dry_run=True)
    pipeline.run(ganz.stages(pipeline))
    out = capsys.readouterr().out
    assert out.count("train.py fit -c configs/ganz/mnist.yaml") == 3
    iterations = ganz.SETTINGS["default"]["iterations"]
    assert out.count(f"--trainer.max_steps {2 * iterations} ") == 3  # a D step and a G step per iteration
    assert "--data.init_args.resolution 32 --data.init_args.pad 2" in out
    assert all(f"--seed_everything {s} " in out for s in (0, 1, 2))
    assert "--model.init_args.noise.dim 16 --model.init_args.n_filters 16" in out
    assert out.count("# evaluate: seed") == 3 * len(ganz.TASKS)
    assert not (tmp_path / "out").exists()


def _rd_row(method, mode, dtype, bpp, psnr, ssim, over=0, d_c=16):
    return {"set": "mnist", "method": method, "mode": mode, "dtype": dtype, "d_c": d_c, "ratio_dof": 64.0,
            "bytes": bpp * 128, "bpp": bpp, "psnr": psnr, "ssim": ssim, "over_budget": over, "images": 4}  # fmt: skip


def test_summaries_are_mean_and_sample_std_over_seeds_and_keep_infinity():
    runs = [
        {"task": "rd_mnist", "seed": 0, "rows": [_rd_row("GANZ", "keep_linear", "uint8", 0.69, 20.0, 0.5),
                                                 _rd_row("webp", "keep_linear", "uint8", 0.8, 24.0, 0.8, over=1),
                                                 _rd_row("wavelet", "keep_linear", "float32", 0.6, math.inf, 1.0)]},
        {"task": "rd_mnist", "seed": 1, "rows": [_rd_row("GANZ", "keep_linear", "uint8", 0.69, 22.0, 0.7),
                                                 _rd_row("webp", "keep_linear", "uint8", 0.8, 24.0, 0.8, over=3),
                                                 _rd_row("wavelet", "keep_linear", "float32", 0.6, 30.0, 0.9)]},
        {"task": "cs", "seed": 0, "rows": [{"M": 82, "M_over_N": 0.08, "mode": "m", "d_c": 5, "psnr": 10.0,
                                            "mse_unit": 0.1, "below_bora": 0, "images": 4}]},
        {"task": "cs", "seed": 1, "rows": [{"M": 82, "M_over_N": 0.08, "mode": "m", "d_c": 5, "psnr": 13.0,
                                            "mse_unit": 0.05, "below_bora": 1, "images": 4}]},
    ]  # fmt: skip
    rd = ganz.summarise_rd(runs, "rd_mnist")
    assert [(r["method"], r["dtype"]) for r in rd] == [("GANZ", "uint8"), ("webp", "uint8"), ("wavelet", "-")]
    assert rd[0]["psnr"]["mean"] == 21.0 and math.isclose(rd[0]["psnr"]["std"], math.sqrt(2))
    assert math.isclose(rd[0]["ssim"]["std"], 0.2 / math.sqrt(2)) and rd[0]["psnr_per_seed"] == [20.0, 22.0]
    assert rd[1]["psnr"] == {"mean": 24.0, "std": 0.0} and rd[1]["over_budget"] == 3  # the worst seed
    assert math.isinf(rd[2]["psnr"]["mean"]) and math.isnan(rd[2]["psnr"]["std"])  # lossless on some image
    assert ganz._fmt_stat(rd[2]["psnr"], 2) == "∞ (lossless)" and ganz._fmt_stat(rd[0]["psnr"], 2) == "21.00 ± 1.41"
    (cs,) = ganz.summarise_cs(runs)
    assert cs["M"] == 82 and cs["psnr"]["mean"] == 11.5 and math.isclose(cs["psnr"]["std"], 3 / math.sqrt(2))
    assert cs["below_bora"] == 1 and cs["recovered"] == 8
    assert math.isclose(ganz.BORA_PSNR, 16.0206, abs_tol=1e-4)  # GANZ Sec. 4: "equivalent to PSNR of 16.021"


@pytest.mark.slow  # two tiny BEGAN fits and six evaluation tasks in worker processes: about 70 s
def test_ganz_pipeline_end_to_end_then_skips_everything(tmp_path, capsys):
    from lightning_modules.ganz.codec import from_uint8, to_uint8
    from lightning_modules.ganz.compression_baselines import wavelet_compress
    from lightning_modules.reconstruction import psnr

    import torch

    data = tmp_path / "data"
    write_mnist(str(data / "mnist"), train_count=48, test_count=6)
    write_cifar10(str(data / "cifar10"), per_batch=4)
    pipeline = _pipeline(tmp_path / "out", data)
    pipeline.run(ganz.stages(pipeline))
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["models", "evaluate", "tables"]
    assert all(s["status"] == "done" for s in manifest["stages"]) and manifest["settings"] == TINY
    stages = {s["name"]: s for s in manifest["stages"]}

    models = stages["models"]
    assert models["checkpoints"] == ["runs/began/seed0/fit/checkpoints/last.ckpt",
                                     "runs/began/seed1/fit/checkpoints/last.ckpt"]  # fmt: skip
    assert [r["seed"] for r in models["metrics"]["runs"]] == [0, 1]
    assert "--seed_everything 1" in models["commands"][1] and "--trainer.max_steps 6" in models["commands"][1]

    runs = stages["evaluate"]["metrics"]["runs"]
    assert [(r["task"], r["seed"]) for r in runs] == [(t, s) for s in (0, 1) for t in ("rd_mnist", "rd_cifar", "cs")]
    for run in runs:  # the manifest's rows are the task's result.json, and rd.csv says the same
        task_dir = out / "eval" / f"seed{run['seed']}" / run["task"]
        assert json.loads((task_dir / "result.json").read_text())["rows"] == run["rows"]
        if run["task"] != "cs":
            with open(task_dir / "rd.csv") as handle:
                table = list(csv.DictReader(handle))
            assert [float(r["psnr"]) for r in table] == pytest.approx([r["psnr"] for r in run["rows"]])
            methods = [r["method"] for r in run["rows"]]
            assert methods == ["GANZ", "webp", "wavelet"] * 2  # per mode: GANZ uint8, webp at its size, wavelet
            assert {r["set"] for r in run["rows"]} == {ganz.SET_NAMES[run["task"]]}
            assert all(r["images"] == 4 for r in run["rows"])
    # GANZ keep_linear with d_t = 4: 4 uint8 values + the 68-byte header + CRC32 = 76 bytes = 76*8/1024 bpp
    ganz0 = runs[0]["rows"][0]
    assert ganz0["mode"] == "keep_linear" and ganz0["d_c"] == 4 and ganz0["bpp"] == 76 * 8 / 1024
    # the wavelet row, recomputed here from the written test digits (padded 28 -> 32)
    digits = np.pad(np.stack(_mnist_test(data)[:4]), ((0, 0), (2, 2), (2, 2)))
    originals = torch.stack([from_uint8(d) for d in digits])
    wave = torch.stack([from_uint8(to_uint8(torch.from_numpy(wavelet_compress(o.numpy(), 4)[0]).float()))
                        for o in originals])  # fmt: skip
    assert runs[0]["rows"][2]["psnr"] == pytest.approx(float(psnr(wave, originals).mean()), rel=1e-5)
    assert runs[0]["rows"][2]["psnr"] == runs[3]["rows"][2]["psnr"]  # the baselines do not depend on the seed
    cs = runs[2]["rows"]
    assert [r["M"] for r in cs] == [10, 40] and all(len(r["psnr_per_image"]) == 3 for r in cs)
    assert all(math.isclose(r["psnr"], sum(r["psnr_per_image"]) / 3, rel_tol=1e-5) for r in cs)  # float32 mean

    # tables: mean and sample std over the two seeds of the recorded numbers
    tables = stages["tables"]["metrics"]
    first = tables["rd"]["rd_mnist"][0]
    values = [runs[0]["rows"][0]["psnr"], runs[3]["rows"][0]["psnr"]]
    assert math.isclose(first["psnr"]["mean"], sum(values) / 2)
    assert math.isclose(first["psnr"]["std"], abs(values[0] - values[1]) / math.sqrt(2))
    cs_values = [runs[2]["rows"][1]["psnr"], runs[5]["rows"][1]["psnr"]]
    assert math.isclose(tables["cs"][1]["psnr"]["mean"], sum(cs_values) / 2)
    for name in ("rd.png", "cs.png", "rd_mnist.csv", "rd_cifar.csv", "cs.csv", "tables.md", "grid_mnist.png",
                 "grid_cifar10.png", "samples.png"):  # fmt: skip
        assert (out / "tables" / name).stat().st_size > 0, name
    assert "out of domain" in (out / "tables" / "tables.md").read_text()

    # a second run reuses every stage and writes the same numbers
    capsys.readouterr()
    again = _pipeline(out, data)
    again.run(ganz.stages(again))
    assert capsys.readouterr().out.count(": done (") == 3
    assert json.loads((out / "manifest.json").read_text())["stages"] == manifest["stages"]

    # an interrupted evaluate stage (no record, one task's result missing) reruns that task only
    (out / "stages" / "evaluate.json").unlink()
    (out / "eval" / "seed1" / "cs" / "result.json").unlink()
    kept = os.path.getmtime(out / "eval" / "seed0" / "cs" / "result.json")
    resumed = _pipeline(out, data)
    resumed.run(ganz.stages(resumed))
    printed = capsys.readouterr().out
    assert printed.count("# done: seed") == 5 and "# evaluate: seed 1 cs" in printed
    assert os.path.getmtime(out / "eval" / "seed0" / "cs" / "result.json") == kept
    resumed_runs = json.loads((out / "manifest.json").read_text())["stages"][1]["metrics"]["runs"]
    assert resumed_runs[5]["rows"] == runs[5]["rows"]  # seeded: the same numbers again


def _mnist_test(root) -> list[np.ndarray]:
    import gzip

    with gzip.open(root / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz") as handle:
        raw = handle.read()
    return list(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28))
