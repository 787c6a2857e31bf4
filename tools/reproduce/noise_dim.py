"""The noise-dimension paper on real data: ``python -m tools reproduce noise_dim --data-root ../shared/data``.

Seed paper "Noise dimension of GAN: an image compression perspective" (Zhu, Xu et al.):
Table 2 (lossless codec rates of CIFAR-10), Table 3 (Theorem 4.2's minimal noise dimension)
and Sec. 5's FID against the noise entropy eps in bits, for two generator capacities
(Fig. 2(a)).  Stages (:mod:`tools.reproduce.pipeline`):

1. ``codec`` -- ``python -m analysis codec-rate`` on the real CIFAR-10 training images (the
   paper's three codecs, PNG, WebP and JPEG-XL; ``codec_limit`` images at the default scale),
   then ``python -m analysis noise-dim`` on that rate twice: with the exact float entropies
   (the project's) and with the paper's Table 1 entropies (``--entropy paper``, like for
   like with its Table 3).  The paper's own numbers (``analysis.codec_rate.PAPER_TABLE_2``,
   ``analysis.noise_dim.PAPER_TABLE_3``) go next to ours in the tables.
2. ``models`` -- every GAN fit, each seed x eps point x width, ``--jobs`` at a time
   (:meth:`~tools.reproduce.pipeline.Pipeline.fit_many`), and, in the same pool, the fit of
   the MNIST feature classifier (so its single-threaded fit does not leave a core idle).  The
   GAN is *unconditional* (no label bits outside eps; nothing to follow), so eps is all of
   G's randomness.  At the default scale every point has the same n and the same network:
   only the entropy per noise dimension changes (b-bit discrete noise, eps = b n exactly, and
   the config's float32 Gaussian noise), so the points are like for like.
3. ``classifier`` -- :func:`tools.reproduce.common.classifier_stage`: the classifier's fit
   is already finished (stage 2) and is reused; its accuracy on the real test digits is
   measured, and the pipeline stops below ``min_classifier_accuracy`` (0.99).
4. ``evaluate`` -- in this process, for every fit: FID, KID, improved precision and recall
   (:class:`callbacks.generative_metrics.GenerativeMetrics`, the classifier's features, the
   EMA generator, noise seeded 0) of ``eval_samples`` generated images against the training
   split the GAN saw, and eps = ``noise/budget_bits`` of the fit's ``hparams.yaml`` (the
   entropy *as drawn*, core/sampler_entropy.py; :func:`tools.sweep_noise_dim.point_entropy`).
5. ``tables`` -- from the manifest's records: Table 2, Table 3, the FID/KID/precision/recall
   per eps and width (mean ± std over the seeds), the eps at which each curve stops
   improving (:func:`saturation`), as Markdown and CSV, and the figures
   (``noise_dim_eps.png``: the four metrics against eps with error bars, one line per width;
   ``noise_dim_samples.png``: seed 0's last sample grid per point).

``SETTINGS["default"]`` is sized for 2 CPU cores (``--jobs 2``: the real run took 20.0 minutes on two
idle cores, docs/results/noise_dim.md): MNIST
at 32 px (the 28 px digits padded by 2), the DCGAN of ``configs/noise_dim/digits_demo.yaml``
at widths 16 and 12 for 1,800 optimiser steps (learning rate 6e-4), n = 4, codec rates on 400 of the 3,728 CIFAR-10
images.  ``SETTINGS["paper"]`` is the paper's Sec. 5 on CIFAR-10 for a GPU: StyleGAN2-ADA's
CIFAR config (``configs/noise_dim/cifar10_stylegan2_ada.yaml``: unconditional, z as G's only
randomness), n from 1 to 512 in float32, capacities ch 64 and 32, FID and KID with 50,000
samples in Inception features, every image in the codec rates.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Optional, Sequence

from core.errors import UserError
from tools import sweep
from tools.reproduce.common import build_datamodule, classifier_fit, classifier_stage, fmt, markdown, mnist_overrides, write_csv
from tools.reproduce.pipeline import Pipeline, Stage

__all__ = ["SEEDS", "SETTINGS", "fits", "point_tag", "saturation", "stages", "summarise"]

_N_PAPER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the paper's Fig. 2 sweep of n (float32)

#: scale -> settings (recorded in the manifest).  A point is ``{"n": n, "bits": b}``: b-bit
#: discrete noise (eps = b n bits), or with ``bits`` 0 the config's own noise at dimension n.
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "dataset": "mnist",  # the paper: CIFAR-10 and LSUN-Church (no GPU here)
        "resolution": 32,  # the 28 px digits padded by 2: the DCGAN needs a power of two
        "num_workers": 0,  # 2 cores: the trainer's own process is busy enough
        "classifier_epochs": 10,  # configs/classifier/mnist.yaml: 15
        "classifier_batch_size": 128,
        "classifier_val_fraction": 0.05,
        "min_classifier_accuracy": 0.99,
        "codecs": ["png", "webp", "jpegxl"],  # the paper's Table 2 codecs
        "codec_limit": 400,  # of the 3,728 images (45 s with 2 workers in the real run; all 3,728: about 7 min)
        "codec_workers": 2,
        "gan_config": "configs/noise_dim/digits_demo.yaml",  # DCGAN, non-saturating loss, Adam 2e-4, EMA
        "batch_size": 64,
        "gan_steps": 1800,  # optimiser steps: 900 iterations, 8 epochs of 7,200 digits; at 450 iterations
        # recall was 0 at every eps (docs/results/noise_dim.md, the first two runs)
        "lr": 6e-4,  # G and D; the config's 2e-4 gives blobs, not digits, after 600 iterations at width 16
        "width_keys": ["g_width", "d_width"],
        "widths": [16, 12],  # the first at every point, the others at capacity_points (paper: ch 16/32/64);
        # width 8 (G 32-16-8 channels) did not learn digits in 450 iterations: D's loss was below
        # 0.05 by iteration 80 (docs/results/noise_dim.md)
        # n = 4 everywhere; 1, 2, 3, 4 bits a dimension (eps 4, 8, 12, 16) and float32 Gaussian
        # (eps 105.9 bits as torch draws it on the CPU)
        "points": [{"n": 4, "bits": b} for b in (1, 2, 3, 4)] + [{"n": 4, "bits": 0}],
        "capacity_points": [{"n": 4, "bits": 2}, {"n": 4, "bits": 0}],
        "features": "classifier",  # the paper: Inception-v3
        "eval_samples": 4000,  # the paper: 50,000
        "kid_subset_size": 1000,
        "pr_k": 3,  # Kynkaanniemi et al.'s k
        "pr_max_samples": 4000,
    },
    "paper": {
        "dataset": "cifar10",
        "resolution": 32,
        "num_workers": 4,
        "codecs": ["png", "webp", "jpegxl"],
        "codec_limit": None,  # every training image
        "codec_workers": 4,
        "gan_config": "configs/noise_dim/cifar10_stylegan2_ada.yaml",  # ADA's cifar recipe, 100,000 kimg
        "batch_size": 64,
        "gan_steps": None,  # the config's
        "lr": None,  # the config's (ADA's 0.0025)
        "width_keys": ["ch"],
        "widths": [64, 32],  # ch 64 = ADA's CIFAR width; Fig. 2(a) also varies the capacity
        "points": [{"n": n, "bits": 0} for n in _N_PAPER],
        "capacity_points": [{"n": n, "bits": 0} for n in (1, 8, 64, 512)],
        "features": "inception",
        "eval_samples": 50000,
        "kid_subset_size": 1000,
        "pr_k": 3,
        "pr_max_samples": 10000,
    },
}

SEEDS: dict[str, list[int]] = {"default": [0, 1, 2], "paper": [0, 1, 2]}

_CLASSIFIER = "classifier"


# --------------------------------------------------------------------------- the grid


def point_tag(width: int, point: dict[str, int]) -> str:
    """``w16_n4_b2`` (b-bit discrete noise) or ``w16_n4_cfg`` (the config's noise)."""
    kind = f"b{point['bits']}" if point["bits"] else "cfg"
    return f"w{width}_n{point['n']}_{kind}"


def grid(settings: dict[str, Any]) -> list[tuple[int, dict[str, int]]]:
    """(width, point) of every model: the first width at every point, the others at ``capacity_points``."""
    first, *others = settings["widths"]
    return [(first, p) for p in settings["points"]] + [(w, p) for w in others for p in settings["capacity_points"]]


def _data_overrides(pipeline: Pipeline) -> list[str]:
    s = pipeline.settings
    if s["dataset"] == "mnist":
        return ["--data", "datamodules.MNISTDataModule"] + mnist_overrides(pipeline, s["batch_size"])
    return [
        "--data.init_args.root", os.path.join(pipeline.data_root, "cifar10"),
        "--data.init_args.num_workers", str(s["num_workers"]),
        "--data.init_args.batch_size", str(s["batch_size"]),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


def fits(pipeline: Pipeline) -> list[tuple[str, str, list[str]]]:
    """The GAN fits ``(tag, config, overrides)`` of every seed, point and width (seeds outermost)."""
    s = pipeline.settings
    out = []
    for seed in pipeline.seeds:
        for width, point in grid(s):
            overrides = _data_overrides(pipeline) + sweep.seed_override(seed) + [
                "--model.init_args.noise.dim", str(point["n"]),
                "--model.init_args.num_classes", "0",  # unconditional: eps is all of G's randomness
            ]  # fmt: skip
            if point["bits"]:
                overrides += ["--model.init_args.noise.distribution", "discrete",
                              "--model.init_args.noise.bits", str(point["bits"])]  # fmt: skip
            for key in s["width_keys"]:
                overrides += [f"--model.init_args.{key}", str(width)]
            if s["lr"] is not None:
                overrides += ["--model.init_args.lr_g", str(s["lr"]), "--model.init_args.lr_d", str(s["lr"])]
            if s["gan_steps"] is not None:
                overrides += ["--trainer.max_steps", str(s["gan_steps"])]
            out.append((f"{point_tag(width, point)}/seed{seed}", s["gan_config"], overrides))
    return out


def _classifier_fit(pipeline: Pipeline) -> tuple[str, str, list[str]]:
    """The judge's fit (:func:`~tools.reproduce.common.classifier_fit`), trained in the ``models`` pool;
    stage ``classifier`` then finds it finished and only measures it."""
    return classifier_fit(pipeline, _CLASSIFIER)


# --------------------------------------------------------------------------- stages


def _codec(pipeline: Pipeline) -> dict[str, Any]:
    """Table 2 (codec-rate) and Table 3 (noise-dim, exact and the paper's entropies) on the real CIFAR-10 images."""
    s = pipeline.settings
    folder = pipeline.path("analysis")
    rate, exact, paper = (os.path.join(folder, f) for f in ("cifar10_rate.json", "table3_exact.json", "table3_paper_H.json"))
    if not pipeline.dry_run:
        os.makedirs(folder, exist_ok=True)
    python = [sys.executable, "-m", "analysis"]
    data_args = json.dumps({"root": os.path.join(pipeline.data_root, "cifar10"), "val_fraction": 0.0, "drop_last": False})
    cmd = python + ["codec-rate", "--data", "CIFAR10DataModule", "--data-args", data_args, "--split", "train",
                    "--codecs", *s["codecs"], "--workers", str(s["codec_workers"]), "--out", rate]  # fmt: skip
    if s["codec_limit"] is not None:
        cmd += ["--limit", str(s["codec_limit"])]
    pipeline.command(cmd)
    formats = ["float16", "float32", "float64"]  # the paper's Table 3 columns
    pipeline.command(python + ["noise-dim", "--rate-json", rate, "--formats", *formats, "--out", exact])
    pipeline.command(python + ["noise-dim", "--rate-json", rate, "--formats", *formats, "--entropy", "paper",
                               "--out", paper])  # fmt: skip
    if pipeline.dry_run:
        return {}
    with open(rate) as handle:
        rates = json.load(handle)
    title = rates["title"]
    images = _images_in_title(title)
    out: dict[str, Any] = {"title": title, "images": images,
                           "rates": {r["name"]: {"bytes_per_image": r["bytes_per_image"],
                                                 "bits_per_pixel": r["bits_per_pixel"]} for r in rates["rows"]}}  # fmt: skip
    for key, path in (("table3_exact", exact), ("table3_paper_H", paper)):
        with open(path) as handle:
            rows = json.load(handle)["rows"]
        out[key] = {r["format"]: {"codec": r["codec"], "bits_per_image": r["bits_per_image"], "H": r["H"],
                                  "lower_eq9": r["lower_eq9"], "n_min": r["n_min"]} for r in rows}  # fmt: skip
    out["files"] = [os.path.relpath(p, pipeline.out) for p in (rate, exact, paper)]
    return out


def _images_in_title(title: str) -> Optional[int]:
    """The image count codec-rate prints in its title (``..., 400 images of 32x32x3 ...``)."""
    words = title.replace(",", " ").split()
    for i, word in enumerate(words[1:], 1):
        if word == "images" and words[i - 1].isdigit():
            return int(words[i - 1])
    return None


def _models(pipeline: Pipeline) -> dict[str, Any]:
    pool = fits(pipeline)
    if pipeline.settings["features"] == "classifier":
        pool = [_classifier_fit(pipeline)] + pool  # the longest fit first
    pipeline.fit_many(pool)
    return {"fits": [tag for tag, _, _ in pool]}


def _classifier(pipeline: Pipeline) -> dict[str, Any]:
    return classifier_stage(pipeline, _CLASSIFIER)


def evaluate_fit(metric, fit_dir: str, checkpoint: str) -> dict[str, Any]:
    """FID, KID, precision, recall of a fit's EMA generator and its eps (``noise/budget_bits``)."""
    from types import SimpleNamespace

    import torch

    from evaluation.features import build_feature_extractor
    from lightning_modules import NoiseDimGAN
    from tools.sweep_noise_dim import noise_label, point_entropy

    if metric.extractor is None:  # what GenerativeMetrics.setup does in a Trainer
        metric.extractor = build_feature_extractor(metric.feature_extractor, metric.feature_path)
    import yaml

    model = NoiseDimGAN.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    eps, source = point_entropy(fit_dir, model.noise)
    with open(os.path.join(fit_dir, "hparams.yaml")) as handle:
        label_bits = float((yaml.safe_load(handle) or {}).get("noise/budget/labels", 0.0))
    real = metric.real_features(SimpleNamespace(datamodule=build_datamodule(fit_dir)))
    with torch.inference_mode():
        values = metric.metrics_from_features(real, metric.fake_features(model))
    return {"eps_bits": eps, "eps_source": source, "noise": noise_label(model.noise), "n": model.noise.dim,
            "label_bits": label_bits, "real_images": int(real.shape[0]), **{k.split("/", 1)[1]: v for k, v in values.items()}}  # fmt: skip


def _evaluate(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        return {}
    from callbacks.generative_metrics import GenerativeMetrics

    s = pipeline.settings
    classifier = s["features"] == "classifier"
    metric = GenerativeMetrics(
        num_samples=s["eval_samples"], feature_extractor=s["features"],
        feature_path=pipeline.checkpoint(_CLASSIFIER) if classifier else None, real_split="train",
        kid_subset_size=s["kid_subset_size"], pr_k=s["pr_k"], pr_max_samples=s["pr_max_samples"],
        batch_size=500, ema=True, seed=0, cache_dir=pipeline.path("feature_cache"),
    )  # fmt: skip
    runs = []
    with open(pipeline.log_path("evaluate"), "a") as log:
        for seed in pipeline.seeds:
            for width, point in grid(s):
                tag = f"{point_tag(width, point)}/seed{seed}"
                record = evaluate_fit(metric, pipeline.fit_dir(tag), pipeline.checkpoint(tag))
                record = {"tag": tag, "width": width, "bits": point["bits"], "seed": seed, **record}
                log.write(json.dumps(record) + "\n")
                log.flush()
                runs.append(record)
    judge = pipeline.metrics(_CLASSIFIER).get("test_accuracy") if classifier else None
    return {"features": s["features"], "classifier_test_accuracy": judge, "eval_samples": s["eval_samples"],
            "real_images": runs[0]["real_images"] if runs else None, "runs": runs}  # fmt: skip


# --------------------------------------------------------------------------- summaries


_METRICS = ("fid", "kid_mean", "precision", "recall")
_TITLES = {"fid": "FID", "kid_mean": "KID", "precision": "precision", "recall": "recall"}


def summarise(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (width, point): eps (equal over seeds) and mean ± sample std over the seeds of each metric.

    Sorted by width (as the runs list them) then eps.
    """
    groups: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["width"], run["n"], run["bits"]), []).append(run)
    out = []
    for (width, n, bits), rows in groups.items():
        eps = {r["eps_bits"] for r in rows}
        if len(eps) != 1:
            raise UserError(f"width {width}, n {n}: the seeds' eps differ ({sorted(eps)}): not one point")
        entry: dict[str, Any] = {"width": width, "n": n, "bits": bits, "noise": rows[0]["noise"],
                                 "eps_bits": eps.pop(), "seeds": [r["seed"] for r in rows]}  # fmt: skip
        for key in _METRICS:
            mean, std = sweep.mean_std([r[key] for r in rows])
            entry[key] = {"mean": mean, "std": std, "per_seed": [r[key] for r in rows]}
        out.append(entry)
    order = list(dict.fromkeys(r["width"] for r in runs))
    return sorted(out, key=lambda e: (order.index(e["width"]), e["eps_bits"]))


def saturation(points: Sequence[dict[str, Any]], key: str, lower_is_better: bool) -> Optional[float]:
    """The smallest eps from which on the curve no longer improves: a d(eps)-style reading.

    ``points``: one width's summary rows (:func:`summarise`).  The answer is the smallest eps
    such that every point at or above it is within one standard deviation (the larger of the
    two points' stds) of the best mean of the curve; None for an empty curve.
    """
    rows = sorted(points, key=lambda p: p["eps_bits"])
    if not rows:
        return None
    pick = min if lower_is_better else max
    best = pick(rows, key=lambda p: p[key]["mean"])

    def close(p: dict[str, Any]) -> bool:
        spread = max(0.0 if math.isnan(x) else x for x in (p[key]["std"], best[key]["std"]))
        return abs(p[key]["mean"] - best[key]["mean"]) <= spread

    for i, row in enumerate(rows):
        if all(close(p) for p in rows[i:]):
            return row["eps_bits"]
    return rows[-1]["eps_bits"]


def _eps_text(eps: float) -> str:
    return f"{eps:.0f}" if abs(eps - round(eps)) < 1e-9 else f"{eps:.1f}"


def _figure(summary: Sequence[dict[str, Any]], path: str, note: str, lines: Sequence[tuple[float, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    widths = list(dict.fromkeys(p["width"] for p in summary))
    for ax, key in zip(axes, _METRICS):
        for width in widths:
            rows = [p for p in summary if p["width"] == width]
            std = [0.0 if math.isnan(p[key]["std"]) else p[key]["std"] for p in rows]
            ax.errorbar([p["eps_bits"] for p in rows], [p[key]["mean"] for p in rows], yerr=std, marker="o",
                        markersize=3, capsize=3, label=f"width {width}")  # fmt: skip
        for x, label in lines:
            ax.axvline(x, color="grey", ls="--", lw=1, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("eps (bits per sample, as drawn)")
        ax.set_title(_TITLES[key], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(note, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _tables(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        return {}
    from analysis.codec_rate import PAPER_TABLE_2
    from analysis.noise_dim import PAPER_TABLE_3
    from tools.sweep_noise_dim import plot_samples

    codec = pipeline.metrics("codec")
    evaluation = pipeline.metrics("evaluate")
    if not codec or not evaluation or not evaluation.get("runs"):
        raise UserError("stage 'tables': the manifest has no finished 'codec' and 'evaluate' stages")
    judge = evaluation["classifier_test_accuracy"]
    features = "the pipeline's MNIST classifier" if evaluation["features"] == "classifier" else "Inception-v3"
    judge_text = f"{judge:.4f}" if judge is not None else "n/a"
    folder = pipeline.path("tables")
    os.makedirs(folder, exist_ok=True)

    # Table 2
    titles = {"png": "PNG", "webp": "WebP", "jpegxl": "JPEG-XL"}
    t2 = [[titles.get(c, c), f"{r['bytes_per_image']:.1f}", f"{r['bits_per_pixel']:.3f}",
           PAPER_TABLE_2["CIFAR10"].get(c, "-")] for c, r in codec["rates"].items()]  # fmt: skip
    write_csv(os.path.join(folder, "table2_codec_rates.csv"), ["codec", "bytes_per_image", "bits_per_pixel",
              "paper_bytes_per_image"], [[c, r["bytes_per_image"], r["bits_per_pixel"],
              PAPER_TABLE_2["CIFAR10"].get(c, "")] for c, r in codec["rates"].items()])  # fmt: skip
    # Table 3
    t3, t3_csv = [], []
    for fmt_name in ("float16", "float32", "float64"):
        exact, paper_h = codec["table3_exact"][fmt_name], codec["table3_paper_H"][fmt_name]
        paper = PAPER_TABLE_3["CIFAR10"][fmt_name]
        t3.append([fmt_name, f"{exact['H']:.4f}", exact["n_min"], f"{paper_h['H']:.2f}", paper_h["n_min"], paper])
        t3_csv.append([fmt_name, exact["codec"], exact["bits_per_image"], exact["H"], exact["n_min"], paper_h["H"],
                       paper_h["n_min"], paper])  # fmt: skip
    write_csv(os.path.join(folder, "table3_noise_dim.csv"), ["format", "codec", "bits_per_image", "H_exact",
              "n_min_exact_H", "H_paper", "n_min_paper_H", "paper_n"], t3_csv)  # fmt: skip

    # eps sweep
    summary = summarise(evaluation["runs"])
    rows, csv_rows = [], []
    for p in summary:
        rows.append([p["width"], p["noise"], p["n"], _eps_text(p["eps_bits"]), len(p["seeds"])]
                    + [fmt(p[k], 3 if k != "fid" else 2) for k in _METRICS] + [judge_text])  # fmt: skip
        csv_rows.append([p["width"], p["noise"], p["n"], p["eps_bits"], " ".join(map(str, p["seeds"]))]
                        + [p[k][s] for k in _METRICS for s in ("mean", "std")] + [judge])  # fmt: skip
    write_csv(os.path.join(folder, "eps_sweep.csv"), ["width", "noise", "n", "eps_bits", "seeds"]
              + [f"{k}_{s}" for k in _METRICS for s in ("mean", "std")] + ["classifier_test_accuracy"], csv_rows)  # fmt: skip
    write_csv(os.path.join(folder, "eps_sweep_runs.csv"),
              ["tag", "width", "noise", "n", "seed", "eps_bits", "eps_source", "fid", "kid_mean", "kid_std",
               "precision", "recall"],
              [[r["tag"], r["width"], r["noise"], r["n"], r["seed"], r["eps_bits"], r["eps_source"], r["fid"],
                r["kid_mean"], r["kid_std"], r["precision"], r["recall"]] for r in evaluation["runs"]])  # fmt: skip
    widths = list(dict.fromkeys(p["width"] for p in summary))
    sat = {w: {k: saturation([p for p in summary if p["width"] == w], k, k in ("fid", "kid_mean")) for k in _METRICS}
           for w in widths}  # fmt: skip
    sat_rows = [[w, len([p for p in summary if p["width"] == w])]
                + [_eps_text(sat[w][k]) if sat[w][k] is not None else "-" for k in _METRICS] for w in widths]  # fmt: skip

    lines: list[tuple[float, str]] = []
    real = evaluation.get("real_images")
    if real:  # a GAN that reproduces its training set needs log2(N) bits: the empirical distribution's entropy
        lines.append((math.log2(real), f"log2 {real} = {math.log2(real):.1f} bits (training images)"))
    note = (f"mean ± std over seeds {', '.join(map(str, pipeline.seeds))}; features: {features}"
            + (f" ({judge:.2%} test acc.)" if judge is not None else "")
            + f"; {evaluation['eval_samples']} samples")  # fmt: skip
    _figure(summary, os.path.join(folder, "noise_dim_eps.png"), note, lines)
    first = pipeline.seeds[0]
    grids = []
    for width, point in grid(pipeline.settings):
        entry = _find(summary, width, point)
        if entry is not None:
            panel = f"width {width}, {entry['noise']}, eps {_eps_text(entry['eps_bits'])}"
            grids.append((panel, pipeline.fit_dir(f"{point_tag(width, point)}/seed{first}")))
    plot_samples(grids, f"seed {first}: the last samples of every point", os.path.join(folder, "noise_dim_samples.png"))

    text = [
        f"CIFAR-10 training images measured: {codec['images']} ({codec['title']}).",
        "",
        "### Table 2: lossless bytes per image (CIFAR-10)",
        "",
        markdown(["codec", "bytes / image", "bits / pixel", "paper (bytes / image)"], t2),
        "",
        "### Table 3: Theorem 4.2's minimal noise dimension n >= (E[L] - 1) / H (CIFAR-10, best codec)",
        "",
        markdown(["format", "H exact", "n_min (exact H)", "H paper", "n_min (paper's H)", "paper"], t3),
        "",
        f"### FID, KID, precision and recall against eps (features: {features}; classifier test accuracy "
        f"{judge_text})",
        "",
        f"Mean ± std over seeds {', '.join(map(str, pipeline.seeds))}; eps = `noise/budget_bits` (the noise "
        f"entropy as drawn; label bits in it: at most {max(r['label_bits'] for r in evaluation['runs']):g}); "
        f"{evaluation['eval_samples']} generated images against the {real} images of the training split.",
        "",
        markdown(["width", "noise", "n", "eps (bits)", "k", "FID", "KID", "precision", "recall", "judge acc."], rows),
        "",
        "### Where each curve stops improving (smallest eps within one std of the curve's best)",
        "",
        markdown(["width", "points", "FID", "KID", "precision", "recall"], sat_rows),
        "",
    ]
    with open(os.path.join(folder, "tables.md"), "w") as handle:
        handle.write("\n".join(text))
    return {"classifier_test_accuracy": judge, "summary": summary, "saturation": {str(w): v for w, v in sat.items()},
            "real_images": real, "files": sorted(os.path.join("tables", f) for f in os.listdir(folder))}  # fmt: skip


def _find(summary: Sequence[dict[str, Any]], width: int, point: dict[str, int]) -> Optional[dict[str, Any]]:
    return next((p for p in summary if (p["width"], p["n"], p["bits"]) == (width, point["n"], point["bits"])), None)


def stages(pipeline: Pipeline) -> list[Stage]:
    """The noise-dimension experiment's stages, reading the scale's settings from ``pipeline.settings``."""
    s = pipeline.settings
    count = len(pipeline.seeds) * len(grid(s))
    out = [
        Stage("codec", "Table 2 (codec-rate) and Table 3 (noise-dim) on the real CIFAR-10 images", _codec),
        Stage("models", f"{count} GAN fits (seeds {' '.join(map(str, pipeline.seeds))} x eps points x widths)"
              + (" and the MNIST classifier" if s["features"] == "classifier" else ""), _models),  # fmt: skip
    ]
    if s["features"] == "classifier":
        out.append(Stage(_CLASSIFIER, "the feature classifier's accuracy on the real test digits", _classifier))
    out += [
        Stage("evaluate", "FID, KID, precision and recall of every fit, eps as drawn", _evaluate),
        Stage("tables", "Tables 2-3, the metrics against eps (mean ± std over seeds), figures", _tables),
    ]
    return out
