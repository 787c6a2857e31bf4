"""GANZ on real images: ``python -m tools reproduce ganz --data-root ../shared/data``.

Seed paper "GANs for lossy image compression" (Smedemark-Margulies, Park, Vann; docs/ganz.md):
a trained generator as an image codec, an image stored as the latent z* = argmin ‖G(z) − x‖²
(GANZ Eq. 1), the compression ratio set without retraining by a fixed-seed random first
layer (GANZ Sec. 3.2), compared with Daubechies-4 wavelets at the same degrees of freedom
(GANZ Sec. 3.4) and used for compressive sensing (GANZ Sec. 4).  The paper trains on CelebA,
which this machine does not have; here the model is trained on the real MNIST digits and
judged on held-out real digits and, out of domain, on real CIFAR-10 photographs.  Stages
(:mod:`tools.reproduce.pipeline`):

1. ``models`` -- per seed, BEGAN (``configs/ganz/mnist.yaml``, the paper's generator of
   Fig. 6 at 32x32 grey) on the real MNIST training digits, padded to 32x32.
2. ``evaluate`` -- per seed, three tasks, ``--jobs`` at a time (worker processes calling the
   project's library functions, :func:`evaluate_task`):

   * ``rd_mnist``: rate-distortion on the first ``test_images`` digits of MNIST's t10k split
     (never trained on) with :func:`lightning_modules.ganz.rate_distortion.run`: GANZ at every
     mode of ``modes`` (``keep_linear`` and ``random_linear(R)``), with float32 latents (the
     paper's files) and uint8 latents; db4 wavelets keeping the same number of coefficients;
     JPEG / WebP / JPEG-XL / AVIF at the byte size of each GANZ file.  Every method's 8-bit
     output is scored with PSNR and SSIM;
   * ``rd_cifar``: the same on the first ``ood_images`` CIFAR-10 test photographs, converted
     to grey (PIL's ITU-R 601 luma) -- images the digit model has never seen;
   * ``cs``: compressive sensing (:func:`lightning_modules.ganz.sensing.recover`, GANZ Sec. 4)
     of the first ``cs_images`` test digits from M Gaussian measurements, every M of
     ``measurements``, through ``cs_mode``.

   Seed s means: BEGAN trained with seed s, the random linear layers drawn with seed s, the
   latents of GANZ Eq. 1 initialised with seed s and the measurement matrix A drawn with
   seed s; the wavelet and codec baselines do not depend on it (their std is 0).  A task
   writes ``eval/seed<S>/<task>/result.json`` (and ``rd.csv``, ``rd.md``, the plot and grids
   of :func:`~lightning_modules.ganz.rate_distortion.write_outputs`); an interrupted stage
   reruns only the tasks without one.
3. ``tables`` -- from the manifest's ``evaluate`` record: mean ± std over the seeds of
   PSNR, SSIM and bits per pixel per set, method and rate (``tables/rd_mnist.*``,
   ``tables/rd_cifar.*``), of compressive sensing per M (``tables/cs.*``), the RD curves
   (``tables/rd.png``), the CS curve (``tables/cs.png``), and the first seed's
   reconstructions and BEGAN samples (``tables/grid_*.png``, ``tables/samples.png``).

``SETTINGS["default"]`` is sized for 2 CPU cores (a few minutes of BEGAN per seed, tens
of images, a few hundred inversion steps); ``SETTINGS["paper"]`` is the paper's BEGAN recipe
(γ 0.5, λ_k 0.001, d_t 64, 100k iterations) for one GPU.  The GANZ paper does not use MNIST,
report seeds or state its inversion steps: both scales are this project's choices where it
is silent.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Optional, Sequence

from core.errors import UserError
from tools import sweep
from tools.reproduce.common import fmt, markdown, mnist_overrides, write_csv
from tools.reproduce.pipeline import Pipeline, Stage
from tools.sweep import tensorboard_scalars

__all__ = ["SEEDS", "SETTINGS", "TASKS", "evaluate_task", "stages", "summarise_cs", "summarise_rd"]

#: scale -> settings (recorded in the manifest).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "resolution": 32,  # BEGAN needs a power-of-two side: the 28x28 digits padded by 2 (the paper: 128x128x3)
        "num_workers": 0,  # 2 cores: the trainer's own process is busy enough
        "batch_size": 16,  # BEGAN's
        "iterations": 1200,  # D step + G step each (2.5 epochs of 7,600 digits); GANZ does not say, BEGAN trains ~100k+
        "d_t": 16,  # training latent (the paper's Fig. 2: 64-512 for 49,152 pixel values)
        "n_filters": 16,  # BEGAN's n (the paper: 128)
        "gamma": 0.7,  # configs/ganz/mnist.yaml: k_t must leave 0 in a short run (BEGAN: 0.5)
        "lambda_k": 0.01,  # (BEGAN: 0.001)
        "device": "cpu",
        # GANZ Eq. 1: Adam (the paper says SGD, not its steps), one start per image
        "inversion_steps": 400,
        "inversion_lr": 0.05,
        "inversion_batch": 64,
        # keep_linear (ratio 1024/d_t = 64), the same ratio with a random layer (the paper's Fig. 4
        # compares keep_linear with ratio 768 = its keep_linear ratio), and lower ratios
        "modes": ["keep_linear", "random_linear(64)", "random_linear(16)", "random_linear(8)", "random_linear(4)"],
        "dtypes": ["float32", "uint8"],  # the paper's 32-bit latents, and the project's 8-bit ones
        "codecs": ["jpeg", "webp", "jpegxl", "avif"],
        "test_images": 24,  # the paper's Fig. 5: 20 train, test and out-of-domain images
        "ood_images": 24,
        "cs_images": 24,
        "cs_mode": "random_linear(6)",  # the paper's CS: ratio 6
        "measurements": [41, 82, 205],  # M/N = 0.04, 0.08, 0.2 of N = 1,024 (the paper: 0.08 and 0.2)
        "grid_images": 8,
    },
    "paper": {
        "resolution": 32,
        "num_workers": 4,
        "batch_size": 16,
        "iterations": 100000,  # BEGAN's reference code halves the rates every 100k; GANZ does not say
        "d_t": 64,  # the paper's Fig. 5 model
        "n_filters": 64,  # h0 -> 64 x 8 x 8 = 4,096 values for 1,024 pixels (the paper: 8,192 for 49,152)
        "gamma": 0.5,
        "lambda_k": 0.001,
        "device": "cuda",
        "inversion_steps": 2000,
        "inversion_lr": 0.05,
        "inversion_batch": 200,
        "modes": ["keep_linear", "random_linear(16)", "random_linear(8)", "random_linear(4)", "random_linear(2)"],
        "dtypes": ["float32", "uint8"],
        "codecs": ["jpeg", "webp", "jpegxl", "avif"],
        "test_images": 200,
        "ood_images": 200,
        "cs_images": 200,
        "cs_mode": "random_linear(6)",
        "measurements": [41, 82, 205, 410],
        "grid_images": 8,
    },
}

SEEDS: dict[str, list[int]] = {"default": [0, 1, 2], "paper": [0, 1, 2, 3, 4]}

#: evaluation task -> what it measures.
TASKS: dict[str, str] = {
    "rd_mnist": "rate-distortion on held-out MNIST test digits",
    "rd_cifar": "rate-distortion on CIFAR-10 test photographs in grey (out of domain)",
    "cs": "compressive sensing of MNIST test digits",
}

CONFIG = "configs/ganz/mnist.yaml"
#: image-set names in the rate-distortion rows.
SET_NAMES = {"rd_mnist": "mnist", "rd_cifar": "cifar10"}
#: GANZ Sec. 4: Bora et al.'s best per-pixel MSE 0.025 on [0, 1] is this PSNR.
BORA_PSNR = -10 * math.log10(0.025)


# ---------------------------------------------------------------------------------------------- models
def _model_overrides(pipeline: Pipeline, seed: int) -> list[str]:
    s = pipeline.settings
    return mnist_overrides(pipeline, s["batch_size"]) + sweep.seed_override(seed) + [
        "--trainer.max_steps", str(2 * s["iterations"]),  # Lightning counts the D and the G step
        "--model.init_args.noise.dim", str(s["d_t"]),
        "--model.init_args.n_filters", str(s["n_filters"]),
        "--model.init_args.gamma", str(s["gamma"]),
        "--model.init_args.lambda_k", str(s["lambda_k"]),
    ]  # fmt: skip


def _models(pipeline: Pipeline) -> dict[str, Any]:
    pipeline.fit_many([(f"began/seed{seed}", CONFIG, _model_overrides(pipeline, seed)) for seed in pipeline.seeds])
    if pipeline.dry_run:
        return {}
    runs = []
    for seed in pipeline.seeds:
        scalars = tensorboard_scalars(pipeline.fit_dir(f"began/seed{seed}"))
        last = {k: v[-1][1] for k, v in scalars.items() if k in ("train/M", "train/k_t", "val/M", "val/L_real")}
        steps = scalars.get("train/M", [(0, math.nan)])[-1][0]
        checkpoint = os.path.relpath(pipeline.checkpoint(f"began/seed{seed}"), pipeline.out)
        runs.append({"seed": seed, "checkpoint": checkpoint, "last_logged_step": steps, **last})
    return {"runs": runs}


# ---------------------------------------------------------------------------------------------- evaluation
def _images(task: str, data_root: str, count: int, shape: tuple[int, int, int]):
    """The task's real test images, fitted to the generator's ``shape``, as an ImageSet."""
    from analysis.data import iter_uint8_images
    from lightning_modules.ganz.rate_distortion import ImageSet, fit_to_shape

    if task == "rd_cifar":
        name, args = "CIFAR10DataModule", {"root": os.path.join(data_root, "cifar10")}
    else:
        side = shape[1]
        name, args = "MNISTDataModule", {"root": os.path.join(data_root, "mnist"), "resolution": side,
                                         "pad": (side - 28) // 2}  # fmt: skip
    found = list(iter_uint8_images(name, "test", count, json.dumps(args)))
    if len(found) < count:
        raise UserError(f"{args['root']}: {len(found)} test images, the pipeline uses {count}")
    return ImageSet(SET_NAMES.get(task, "mnist"), [k for k, _ in found], [fit_to_shape(im, shape) for _, im in found])


def evaluate_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation task (``spec``: task, seed, checkpoint, data_root, out_dir, threads, settings).

    Writes ``<out_dir>/result.json`` and returns it: the task's ``rows`` (one per set, method
    and rate for ``rd_*``, one per M for ``cs``) and its wall time.
    """
    import torch

    from lightning_modules.ganz import rate_distortion as rd
    from lightning_modules.ganz.codec import GanzCodec, from_uint8, to_uint8
    from lightning_modules.ganz.inversion import InversionConfig
    from lightning_modules.ganz.latent import LatentMode
    from lightning_modules.ganz.sensing import BORA_BEST_MSE, recover
    from lightning_modules.reconstruction import psnr

    torch.set_num_threads(spec["threads"])
    start = time.time()
    s, seed, task = spec["settings"], spec["seed"], spec["task"]
    device = s["device"] if s["device"] != "cuda" or torch.cuda.is_available() else "cpu"
    codec = GanzCodec.from_checkpoint(spec["checkpoint"], device=device)
    config = InversionConfig(steps=s["inversion_steps"], lr=s["inversion_lr"], seed=seed)
    os.makedirs(spec["out_dir"], exist_ok=True)
    if task in ("rd_mnist", "rd_cifar"):
        count = s["ood_images"] if task == "rd_cifar" else s["test_images"]
        images = _images(task, spec["data_root"], count, codec.image_shape)
        modes = [LatentMode.parse(m) for m in s["modes"]]
        rows, decoded = rd.run(codec, [images], modes, s["dtypes"], config, codecs=s["codecs"], seed=seed,
                               batch_size=s["inversion_batch"], progress=False)  # fmt: skip
        rd.write_outputs(rows, decoded, spec["out_dir"], s["grid_images"])
    elif task == "cs":
        images = _images("rd_mnist", spec["data_root"], s["cs_images"], codec.image_shape)
        x = torch.stack([from_uint8(im) for im in images.images])
        net = codec.latent_generator(LatentMode.parse(s["cs_mode"]), seed)
        n = x[0].numel()
        rows = []
        for m in s["measurements"]:
            result = recover(net, x, m, seed, config, progress=False)
            rec8 = torch.stack([from_uint8(to_uint8(im)) for im in result.reconstruction])
            per_image = psnr(rec8, x)  # the 8-bit recovery, as the codecs are scored
            rows.append({"set": "mnist", "M": m, "M_over_N": m / n, "mode": s["cs_mode"], "d_c": net.d_c,
                         "psnr": float(per_image.mean()), "psnr_per_image": [float(v) for v in per_image],
                         "mse_unit": float(result.mse_unit.mean()), "mse_pm1": float(result.mse_pm1.mean()),
                         "below_bora": int((result.mse_unit < BORA_BEST_MSE).sum()), "images": len(x)})  # fmt: skip
    else:
        raise ValueError(f"unknown evaluation task {task!r}; expected one of {', '.join(TASKS)}")
    result = {"task": task, "seed": seed, "params": spec["params"], "rows": rows,
              "wall_s": round(time.time() - start, 1)}  # fmt: skip
    with open(os.path.join(spec["out_dir"], "result.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    return result


def _task_params(pipeline: Pipeline, task: str, checkpoint: str) -> dict[str, Any]:
    """What a task's result depends on: the settings it reads and the checkpoint's identity."""
    stat = os.stat(checkpoint) if os.path.isfile(checkpoint) else None
    keys = ["device", "inversion_steps", "inversion_lr", "inversion_batch"]
    keys += ["cs_images", "cs_mode", "measurements"] if task == "cs" else ["modes", "dtypes", "codecs", "grid_images"]
    keys += ["ood_images"] if task == "rd_cifar" else ["test_images"] if task == "rd_mnist" else []
    return {**{k: pipeline.settings[k] for k in keys},
            "checkpoint": [os.path.relpath(checkpoint, pipeline.out), stat.st_size if stat else None,
                           stat.st_mtime_ns if stat else None]}  # fmt: skip


def _evaluate(pipeline: Pipeline) -> dict[str, Any]:
    forced = "evaluate" in pipeline.force or "all" in pipeline.force
    specs, done = [], {}
    threads = max(1, (os.cpu_count() or 1) // pipeline.jobs)
    for seed in pipeline.seeds:
        checkpoint = pipeline.checkpoint(f"began/seed{seed}")
        for task in TASKS:
            out_dir = pipeline.path("eval", f"seed{seed}", task)
            params = _task_params(pipeline, task, checkpoint)
            saved = os.path.join(out_dir, "result.json")
            if forced and os.path.isdir(out_dir) and not pipeline.dry_run:
                shutil.rmtree(out_dir)
            if os.path.isfile(saved):
                with open(saved) as handle:
                    result = json.load(handle)
                if result.get("params") == params:
                    done[(seed, task)] = result
                    print(f"  # done: seed {seed} {task}", flush=True)
                    continue
            print(f"  # evaluate: seed {seed} {task} ({TASKS[task]}) -> {os.path.relpath(out_dir, pipeline.out)}",
                  flush=True)  # fmt: skip
            specs.append({"task": task, "seed": seed, "checkpoint": checkpoint, "data_root": pipeline.data_root,
                          "out_dir": out_dir, "threads": threads, "settings": pipeline.settings, "params": params})
    if pipeline.dry_run:
        return {}
    os.makedirs(pipeline.logs, exist_ok=True)
    if specs:
        with open(pipeline.log_path("evaluate"), "a") as log, ProcessPoolExecutor(
            max_workers=min(pipeline.jobs, len(specs)), mp_context=get_context("spawn")
        ) as pool:
            for spec, result in zip(specs, pool.map(evaluate_task, specs)):
                done[(spec["seed"], spec["task"])] = result
                log.write(f"seed {spec['seed']} {spec['task']}: {result['wall_s']} s -> {spec['out_dir']}\n")
                print(f"  # finished: seed {spec['seed']} {spec['task']} ({result['wall_s']:.0f} s)", flush=True)
    runs = [done[(seed, task)] for seed in pipeline.seeds for task in TASKS]
    return {"runs": [{k: r[k] for k in ("task", "seed", "rows", "wall_s")} for r in runs]}


# ---------------------------------------------------------------------------------------------- tables
def _stats(values: Sequence[float]) -> dict[str, float]:
    if any(math.isinf(v) for v in values):  # a method that kept every pixel of an image: PSNR is infinite
        return {"mean": math.inf, "std": math.nan}
    return dict(zip(("mean", "std"), sweep.mean_std(list(values))))


def summarise_rd(runs: Sequence[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Mean ± std over seeds of each (method, mode, dtype) row of the ``task`` runs, in the rows' order.

    GANZ rows are keyed by (mode, latent dtype); a codec's by the GANZ file whose size was its
    budget; the wavelet's by the mode whose d_c it matches.  ``over_budget`` is the largest
    count of images, over the seeds, whose codec stream did not fit the budget.
    """
    mine = [r for r in runs if r["task"] == task]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in mine:
        for row in run["rows"]:
            dtype = row["dtype"] if row["method"] != "wavelet" else "-"
            groups.setdefault((row["method"], row["mode"], dtype), []).append(row)
    out = []
    for (method, mode, dtype), rows in groups.items():
        out.append({
            "set": rows[0]["set"], "method": method, "mode": mode, "dtype": dtype, "d_c": rows[0]["d_c"],
            "ratio_dof": rows[0]["ratio_dof"], "seeds": len(rows), "images": rows[0]["images"],
            "bytes": _stats([r["bytes"] for r in rows]), "bpp": _stats([r["bpp"] for r in rows]),
            "psnr": _stats([r["psnr"] for r in rows]), "ssim": _stats([r["ssim"] for r in rows]),
            "psnr_per_seed": [r["psnr"] for r in rows], "over_budget": max(r["over_budget"] for r in rows),
        })  # fmt: skip
    return out


def summarise_cs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds of the compressive-sensing PSNR and MSE per M."""
    rows_by_m: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        if run["task"] == "cs":
            for row in run["rows"]:
                rows_by_m.setdefault(row["M"], []).append(row)
    return [{"M": m, "M_over_N": rows[0]["M_over_N"], "mode": rows[0]["mode"], "d_c": rows[0]["d_c"],
             "seeds": len(rows), "images": rows[0]["images"], "psnr": _stats([r["psnr"] for r in rows]),
             "psnr_per_seed": [r["psnr"] for r in rows], "mse_unit": _stats([r["mse_unit"] for r in rows]),
             "below_bora": sum(r["below_bora"] for r in rows), "recovered": sum(r["images"] for r in rows)}
            for m, rows in sorted(rows_by_m.items())]  # fmt: skip


_TITLES = {"GANZ": "GANZ", "wavelet": "wavelet (db4)", "jpeg": "JPEG", "webp": "WebP", "jpegxl": "JPEG-XL",
           "avif": "AVIF"}  # fmt: skip


def _label(row: dict[str, Any]) -> tuple[str, str]:
    """(method, rate) columns of a summary row."""
    if row["method"] == "GANZ":
        return f"GANZ {row['dtype']}", row["mode"]
    if row["method"] == "wavelet":
        return "wavelet (db4)", f"{row['d_c']} coefficients (= {row['mode']})"
    return _TITLES.get(row["method"], row["method"]), f"size of GANZ {row['mode']} {row['dtype']}"


def _fmt_stat(stat: dict[str, float], digits: int) -> str:
    return "∞ (lossless)" if math.isinf(stat["mean"]) else fmt(stat, digits)


def _rd_table(summary: Sequence[dict[str, Any]], folder: str, name: str) -> str:
    header = ["method", "rate", "ratio (dof)", "bits/pixel", "PSNR (dB)", "SSIM", "note"]
    rows, csv_rows = [], []
    for r in summary:
        method, rate = _label(r)
        note = f"{r['over_budget']}/{r['images']} images over the budget" if r["over_budget"] else ""
        ratio = "-" if r["ratio_dof"] is None else f"{r['ratio_dof']:.3g}"
        rows.append([method, rate, ratio, f"{r['bpp']['mean']:.3f}", _fmt_stat(r["psnr"], 2),
                     _fmt_stat(r["ssim"], 3), note])  # fmt: skip
        csv_rows.append([r["method"], r["mode"], r["dtype"], r["d_c"], r["ratio_dof"], r["bpp"]["mean"],
                         r["psnr"]["mean"], r["psnr"]["std"], r["ssim"]["mean"], r["ssim"]["std"],
                         r["over_budget"], r["images"], r["seeds"]])  # fmt: skip
    write_csv(os.path.join(folder, f"{name}.csv"),
              ["method", "mode", "dtype", "d_c", "ratio_dof", "bpp", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std",
               "over_budget", "images", "seeds"], csv_rows)  # fmt: skip
    return markdown(header, rows)


#: one colour per method in every panel.
_COLOURS = {"GANZ float32": "C0", "GANZ uint8": "C2", "wavelet (db4)": "C3", "WebP": "C1", "JPEG-XL": "C4",
            "JPEG": "C5", "AVIF": "C7"}  # fmt: skip


def _figures(rd_sets: dict[str, list[dict[str, Any]]], cs: list[dict[str, Any]], folder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"rd_mnist": "MNIST test digits (in domain)", "rd_cifar": "CIFAR-10 test, grey (out of domain)"}
    fig, axes = plt.subplots(len(rd_sets), 3, figsize=(13, 3.6 * len(rd_sets)), squeeze=False)
    for row_axes, (task, summary) in zip(axes, rd_sets.items()):
        for ax, metric in zip(row_axes[:2], ("psnr", "ssim")):
            series: dict[str, list[dict[str, Any]]] = {label: [] for label in _COLOURS}
            for r in summary:
                if r["method"] not in ("GANZ", "wavelet") and r["over_budget"]:
                    continue  # a codec that could not reach the budget is not a point at that rate
                if math.isinf(r[metric]["mean"]):
                    continue
                label = _label(r)[0]
                if r["method"] == "GANZ" and r["mode"] == "keep_linear":
                    label = f"{label} keep_linear"  # a star, off the random-layer curve
                elif r["method"] == "wavelet" and r["mode"] == "keep_linear":
                    continue  # the same point as random_linear(N / d_t)
                series.setdefault(label, []).append(r)
            for label, points in series.items():
                if not points:
                    continue
                points = sorted(points, key=lambda p: p["bpp"]["mean"])
                x = [p["bpp"]["mean"] for p in points]
                y = [p[metric]["mean"] for p in points]
                err = [0.0 if math.isnan(p[metric]["std"]) else p[metric]["std"] for p in points]
                keep = label.endswith("keep_linear")
                style = "*" if keep else "o-" if label.startswith("GANZ") else ".:"
                style = "s--" if label.startswith("wavelet") else style
                ax.errorbar(x, y, yerr=err, fmt=style, capsize=2, markersize=9 if keep else 4, label=label,
                            color=_COLOURS.get(label.replace(" keep_linear", ""), "black"))  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
            ax.set_title(titles.get(task, task), fontsize=9)
            ax.grid(alpha=0.3)
        ax = row_axes[2]  # the paper's view (Fig. 4-5): GANZ vs wavelets at equal degrees of freedom
        for method, style in (("GANZ", "o-"), ("wavelet", "s--")):
            points = sorted((r for r in summary if r["method"] == method and r["dtype"] in ("float32", "-")
                             and r["mode"] != "keep_linear"), key=lambda r: r["ratio_dof"])  # fmt: skip
            ax.errorbar([p["ratio_dof"] for p in points], [p["psnr"]["mean"] for p in points],
                        yerr=[0.0 if math.isnan(p["psnr"]["std"]) else p["psnr"]["std"] for p in points],
                        fmt=style, capsize=2, markersize=4, color=_COLOURS["GANZ float32" if method == "GANZ"
                                                                           else "wavelet (db4)"],
                        label="GANZ random_linear(R)" if method == "GANZ" else "wavelet, same d_c")  # fmt: skip
        keep = [r for r in summary if r["method"] == "GANZ" and r["mode"] == "keep_linear" and r["dtype"] == "float32"]
        for r in keep:
            ax.errorbar([r["ratio_dof"]], [r["psnr"]["mean"]], yerr=[0.0 if math.isnan(r["psnr"]["std"]) else
                        r["psnr"]["std"]], fmt="*", markersize=10, capsize=2, color=_COLOURS["GANZ float32"],
                        label="GANZ keep_linear")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression ratio R = N / d_c (degrees of freedom)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title("GANZ vs wavelets at equal d_c (float32 latents)", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "rd.png"), dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.errorbar([r["M_over_N"] for r in cs], [r["psnr"]["mean"] for r in cs],
                yerr=[0.0 if math.isnan(r["psnr"]["std"]) else r["psnr"]["std"] for r in cs], fmt="o-", capsize=3,
                label=f"GANZ {cs[0]['mode']} (d_c = {cs[0]['d_c']})" if cs else "GANZ")  # fmt: skip
    ax.axhline(BORA_PSNR, color="grey", linestyle="--", label="Bora et al.'s best (MSE 0.025)")
    ax.set_xlabel("measurements M / N")
    ax.set_ylabel("PSNR of the recovery (dB)")
    ax.set_title("Compressive sensing of MNIST test digits", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "cs.png"), dpi=90)
    plt.close(fig)


def _last_samples(fit_dir: str) -> Optional[str]:
    samples = os.path.join(fit_dir, "samples")
    found = sorted(f for f in os.listdir(samples) if f.endswith(".png")) if os.path.isdir(samples) else []
    return os.path.join(samples, found[-1]) if found else None


def _tables(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        return {}
    runs = pipeline.metrics("evaluate").get("runs")
    if not runs:
        raise UserError("stage 'tables': the manifest has no finished 'evaluate' stage")
    folder = pipeline.path("tables")
    os.makedirs(folder, exist_ok=True)
    s = pipeline.settings
    rd_sets = {task: summarise_rd(runs, task) for task in ("rd_mnist", "rd_cifar")}
    cs = summarise_cs(runs)
    seeds = sorted({r["seed"] for r in runs})
    text = [
        f"Mean ± std over seeds {', '.join(map(str, seeds))} (BEGAN, random layers, latent initialisation and "
        f"measurement matrix all seeded with s); GANZ Eq. 1: {s['inversion_steps']} Adam steps, lr "
        f"{s['inversion_lr']}. PSNR and SSIM of the 8-bit outputs, mean over the images; bits/pixel of the "
        "file (GANZ: the .ganz file, header and CRC included; wavelet: float32 value + position per "
        "coefficient; codecs: their stream). A codec is set to its highest quality that fits the GANZ "
        "file's size; 'over the budget' counts images where even its lowest quality does not fit (those "
        "rows are left out of the figure).",
        "",
    ]
    for task, summary in rd_sets.items():
        title = {"rd_mnist": f"Rate-distortion: {s['test_images']} MNIST test digits (t10k, never trained on)",
                 "rd_cifar": f"Rate-distortion, out of domain: {s['ood_images']} CIFAR-10 test photographs in grey"}
        text += [f"### {title[task]}", "", _rd_table(summary, folder, task), ""]
    cs_rows = [[r["M"], f"{r['M_over_N']:.3f}", fmt(r["psnr"], 2), " ".join(f"{v:.2f}" for v in r["psnr_per_seed"]),
                fmt(r["mse_unit"], 4), f"{r['below_bora']}/{r['recovered']}"] for r in cs]  # fmt: skip
    write_csv(os.path.join(folder, "cs.csv"),
              ["M", "M_over_N", "mode", "d_c", "psnr_mean", "psnr_std", "mse_unit_mean", "mse_unit_std", "below_bora",
               "recovered"],
              [[r["M"], r["M_over_N"], r["mode"], r["d_c"], r["psnr"]["mean"], r["psnr"]["std"], r["mse_unit"]["mean"],
                r["mse_unit"]["std"], r["below_bora"], r["recovered"]] for r in cs])  # fmt: skip
    text += [
        f"### Compressive sensing: {s['cs_images']} MNIST test digits, {s['cs_mode']}"
        + (f" (d_c = {cs[0]['d_c']})" if cs else ""),
        "",
        f"Bora et al.'s best per-pixel MSE is 0.025 on [0, 1] (GANZ Sec. 4), i.e. {BORA_PSNR:.2f} dB; "
        "'below Bora' counts recoveries (images x seeds) under it.",
        "",
        markdown(["M", "M/N", "PSNR (dB)", "per seed", "MSE on [0, 1]", "below Bora"], cs_rows),
        "",
    ]
    with open(os.path.join(folder, "tables.md"), "w") as handle:
        handle.write("\n".join(text))
    _figures(rd_sets, cs, folder)
    first = seeds[0]
    for task in ("rd_mnist", "rd_cifar"):
        grid = pipeline.path("eval", f"seed{first}", task, f"rd_grid_{SET_NAMES[task]}.png")
        if os.path.isfile(grid):
            shutil.copyfile(grid, os.path.join(folder, f"grid_{SET_NAMES[task]}.png"))
    samples = _last_samples(pipeline.fit_dir(f"began/seed{first}"))
    if samples:
        shutil.copyfile(samples, os.path.join(folder, "samples.png"))
    return {"rd": rd_sets, "cs": cs, "seeds": seeds,
            "files": sorted(os.path.join("tables", f) for f in os.listdir(folder))}  # fmt: skip


def stages(pipeline: Pipeline) -> list[Stage]:
    """The GANZ experiment's stages, reading the scale's settings from ``pipeline.settings``."""
    seeds = " ".join(map(str, pipeline.seeds))
    return [
        Stage("models", f"BEGAN on the real MNIST training digits, seeds {seeds}", _models),
        Stage("evaluate", "rate-distortion (MNIST test, CIFAR-10 out of domain) and compressive sensing, per seed",
              _evaluate),  # fmt: skip
        Stage("tables", "RD and CS tables and figures (mean ± std over seeds)", _tables),
    ]
