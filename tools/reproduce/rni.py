"""The RNI paper's DCGAN comparison on real MNIST: ``python -m tools reproduce rni --data-root ../shared/data``.

Seed paper "Understanding noise injection in GANs" (Feng, Zhao, Zha, ICML 2021; arXiv "On
noise injection in generative adversarial networks"), Sec. 5: DCGAN without noise
injection, with Euclidean noise injection (ENI, RNI Eq. 18) and with Riemannian noise
injection (RNI, RNI Eq. 13-17), compared by PPL and FID (Table 1) and by the condition
numbers MC and TTMC (RNI Eq. 19, Table 2).  The paper's claim under test: RNI gives the
better conditioned generator (lower MC/TTMC) and the better PPL and FID.  Stages
(:mod:`tools.reproduce.pipeline`):

1. ``classifier`` -- the feature network of FID/KID/PPL and precision/recall:
   ``configs/classifier/mnist.yaml`` on the real training digits at 32x32 (padded by 2, as
   the generators see them), then its accuracy on the real test digits; the pipeline stops
   below ``min_classifier_accuracy`` (0.99, the issue's bar)
   (:func:`tools.reproduce.common.classifier_stage`).
2. ``models`` -- per seed and per injection (``none``, ``eni``, ``rni``) one
   ``RNIStyleGAN2`` with the DCGAN backbone (``configs/rni/digits_dcgan.yaml`` pointed at
   the real MNIST digits by overrides, see :func:`fit_overrides`), all with the same
   widths, steps and seed; they differ only in ``noise_injection``.  At the end of training
   (the one validation) the EMA generator is measured by
   :class:`~callbacks.condition_number.ConditionNumber` (MC/TTMC in z, noise redrawn per
   batch of pairs as the RNI configs and the authors' code do) and
   :class:`~callbacks.generative_metrics.GenerativeMetrics` (FID, KID, precision/recall
   in stage 1's classifier features against the training digits; PPL in z, end points,
   noise redrawn per batch, under the classifier-feature distance ``classifier-l2``: the
   paper's LPIPS weights are not on this machine).  The stage copies each run's numbers
   from its TensorBoard events into the manifest.
3. ``tables`` -- RNI Table 1 (PPL, FID) and Table 2 (MC, TTMC) as mean ± std over the seeds
   (:func:`tools.rni_tables.build_tables`, the code of ``python -m tools rni-tables``), the
   paper's DCGAN/StyleGAN2 numbers beside them for reference (they are on FFHQ and
   LSUN-Church, not MNIST), a table of FID/KID/precision/recall, and two figures: the
   metrics per injection with the seeds and error bars (``tables/rni_metrics.png``) and a
   sample grid per injection (``tables/rni_samples.png``).

``SETTINGS["default"]`` is sized for 2 CPU cores (15 minutes with ``--jobs 2`` on idle cores; the
real run took 27.4 on cores shared with other jobs, docs/results/rni.md): quarter-width
DCGANs trained for 6 epochs, and a few thousand samples per metric;
``SETTINGS["paper"]`` is the paper's DCGAN (width 64, 50,000 samples and pairs per metric)
trained as long as the project's CIFAR-10 DCGAN configs (about 200k iterations of 64) for
full MNIST on a GPU.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
from typing import Any, Sequence

from core.errors import UserError
from tools import sweep
from tools.reproduce.common import classifier_stage, fmt, markdown, mnist_overrides, write_csv
from tools.reproduce.pipeline import Pipeline, Stage
from tools.sweep import tensorboard_scalars

__all__ = ["CONFIG", "INJECTIONS", "METRICS", "SEEDS", "SETTINGS", "fit_overrides", "stages", "summarise"]

#: The DCGAN + noise injection config every model starts from (its data is swapped for MNIST).
CONFIG = "configs/rni/digits_dcgan.yaml"

#: scale -> settings (recorded in the manifest).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "resolution": 32,  # the 32 px DCGAN of the CIFAR-10 rows; the digits padded by 2
        "batch_size": 64,  # DCGAN's minibatch
        "num_workers": 0,  # 2 cores: the trainer's own process is busy enough
        "val_fraction": 0.05,  # 400 digits: validation only triggers the measurements
        "classifier_epochs": 10,
        "classifier_batch_size": 128,  # configs/classifier/mnist.yaml's
        "classifier_val_fraction": 0.05,
        "min_classifier_accuracy": 0.99,
        "gan_epochs": 6,  # 6 x 118 iterations of 64 on 7,600 digits (the paper: not stated; the configs: 200k)
        "dcgan_width": 16,  # 64/32/16 channels at 32 px; the paper's DCGAN: 64 (256/128/64)
        # Adam betas (0.5, 0.999) as DCGAN, but lr 5e-4 (DCGAN: 2e-4): at 2e-4 every generator was still
        # collapsed to one image after 900 iterations in calibration; at 5e-4 digits vary within 224
        "lr": 0.0005,
        "eval_samples": 2000,  # FID/KID/precision/recall samples and PPL pairs (the paper: 50,000)
        "kid_subset_size": 1000,
        "cond_samples": 5000,  # MC/TTMC pairs (the paper: 50,000); TTMC: the top 2% (100)
        "cond_batch_size": 250,  # pairs per noise draw (per_batch), as the RNI configs
    },
    "paper": {
        "resolution": 32,
        "batch_size": 64,
        "num_workers": 4,
        "val_fraction": 0.02,
        "classifier_epochs": 15,
        "classifier_batch_size": 128,
        "classifier_val_fraction": 0.1,
        "min_classifier_accuracy": 0.99,
        "gan_epochs": 200,  # ~187k iterations of 64 on 60,000 digits (configs/rni/cifar10_dcgan_*: 200k)
        "dcgan_width": 64,  # the paper's DCGAN (Radford et al.)
        "lr": 0.0002,  # DCGAN's Adam 2e-4, betas (0.5, 0.999) (the config's)
        "eval_samples": 50000,  # RNI Table 1: FID of 50k samples; PPL of 50k pairs (the RNI configs)
        "kid_subset_size": 1000,
        "cond_samples": 50000,  # RNI Table 2: 50,000 pairs, TTMC the top 1000
        "cond_batch_size": 250,
    },
}

SEEDS: dict[str, list[int]] = {"default": [0, 1, 2], "paper": [0, 1, 2, 3, 4]}

#: injection (the config's ``noise_injection``) -> its row in RNI Table 1.
INJECTIONS: dict[str, str] = {"none": "DCGAN", "eni": "DCGAN + ENI", "rni": "DCGAN + RNI (Ours)"}

#: The metrics copied from each run's events (PPL with its distance: ``metrics/ppl[<distance>]``).
METRICS = ("metrics/fid", "metrics/kid_mean", "metrics/precision", "metrics/recall", "metrics/ppl",
           "metrics/mc", "metrics/ttmc")  # fmt: skip

#: The paper's reference numbers of the DCGAN rows (RNI Table 1: PPL, FID on FFHQ and LSUN-Church).
PAPER_DATASETS = {"ffhq": "FFHQ", "lsun_church": "LSUN-Church"}


def fit_overrides(pipeline: Pipeline, injection: str, seed: int) -> list[str]:
    """The ``train.py fit -c configs/rni/digits_dcgan.yaml`` arguments of one model.

    The config's data become the real MNIST digits; its last callback (ConditionNumber) gets
    the scale's pairs, then GenerativeMetrics is appended (``--trainer.callbacks+``) and
    pointed at stage 1's classifier.  The one validation, at the end of training, runs both.
    """
    s = pipeline.settings
    epochs = str(s["gan_epochs"])
    return [
        "--data", "datamodules.MNISTDataModule",  # replaces the config's digits (init_args of MNIST kept)
        *mnist_overrides(pipeline, s["batch_size"]),
        "--data.init_args.val_fraction", str(s["val_fraction"]),
        *sweep.seed_override(seed),
        "--model.init_args.noise_injection", injection,
        "--model.init_args.resolution", str(s["resolution"]),
        "--model.init_args.dcgan_width", str(s["dcgan_width"]),
        "--model.init_args.lr", str(s["lr"]),
        "--trainer.max_steps", "-1",
        "--trainer.max_epochs", epochs,
        "--trainer.check_val_every_n_epoch", epochs,  # one validation: the measurements at the end
        # the config's last callback: ConditionNumber (RNI Eq. 19, Table 2), in z, noise per batch
        "--trainer.callbacks.init_args.num_samples", str(s["cond_samples"]),
        "--trainer.callbacks.init_args.batch_size", str(s["cond_batch_size"]),
        "--trainer.callbacks.init_args.noise_mode", "per_batch",
        "--trainer.callbacks.init_args.space", "z",
        # appended: FID/KID/precision/recall and PPL (RNI Table 1) in the classifier's features
        "--trainer.callbacks+", "callbacks.GenerativeMetrics",
        "--trainer.callbacks.init_args.feature_extractor", "classifier",
        "--trainer.callbacks.init_args.feature_path", pipeline.checkpoint("classifier"),
        "--trainer.callbacks.init_args.num_samples", str(s["eval_samples"]),
        "--trainer.callbacks.init_args.real_split", "train",
        "--trainer.callbacks.init_args.kid_subset_size", str(min(s["kid_subset_size"], s["eval_samples"])),
        "--trainer.callbacks.init_args.precision_recall", "true",
        "--trainer.callbacks.init_args.pr_max_samples", str(s["eval_samples"]),
        "--trainer.callbacks.init_args.cache_dir", pipeline.path("cache"),
        "--trainer.callbacks.init_args.ppl_samples", str(s["eval_samples"]),
        "--trainer.callbacks.init_args.ppl_space", "z",
        "--trainer.callbacks.init_args.ppl_sampling", "end",
        "--trainer.callbacks.init_args.ppl_epsilon", "1.0e-4",
        "--trainer.callbacks.init_args.ppl_noise_mode", "per_batch",
    ]  # fmt: skip


def _classifier(pipeline: Pipeline) -> dict[str, Any]:
    return classifier_stage(pipeline, "classifier")


def _tag(injection: str, seed: int) -> str:
    return f"{injection}/seed{seed}"


def _run_metrics(fit_dir: str) -> dict[str, Any]:
    """The last value of each of :data:`METRICS` in a fit's events (PPL under its labelled tag)."""
    from callbacks.generative_metrics import split_distance_tag

    values = {tag: points[-1][1] for tag, points in tensorboard_scalars(fit_dir).items()}
    out = {tag: v for tag, v in values.items() if split_distance_tag(tag)[0] in METRICS}
    missing = [m for m in METRICS if not any(split_distance_tag(t)[0] == m for t in out)]
    if missing:
        raise UserError(f"stage 'models': {fit_dir} logged no {', '.join(missing)}; rerun with --force models")
    return out


def _models(pipeline: Pipeline) -> dict[str, Any]:
    fits = [(_tag(i, seed), CONFIG, fit_overrides(pipeline, i, seed)) for seed in pipeline.seeds for i in INJECTIONS]
    pipeline.fit_many(fits)  # the seeds and the injections: --jobs at a time
    if pipeline.dry_run:
        return {}
    runs = []
    for seed in pipeline.seeds:
        for injection in INJECTIONS:
            fit_dir = pipeline.fit_dir(_tag(injection, seed))
            samples = sorted(glob.glob(os.path.join(fit_dir, "samples", "*.png")))
            runs.append({"injection": injection, "seed": seed, "metrics": _run_metrics(fit_dir),
                         "samples": os.path.relpath(samples[-1], pipeline.out) if samples else None})  # fmt: skip
    return {"runs": runs}


def _ppl(metrics: dict[str, float]) -> tuple[str, float]:
    from callbacks.generative_metrics import split_distance_tag

    tag = next(t for t in metrics if split_distance_tag(t)[0] == "metrics/ppl")
    return split_distance_tag(tag)[1] or "unknown", metrics[tag]


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over seeds, per injection, of every metric of the ``models`` stage's runs.

    ``runs``: [{injection, seed, metrics: {tag: value}}, ...].  PPL becomes ``ppl`` with its
    distance in ``ppl_distance`` (one distance per injection, else a UserError).
    """
    out: dict[str, Any] = {}
    for injection in INJECTIONS:
        mine = [r for r in runs if r["injection"] == injection]
        if not mine:
            continue
        distances = {_ppl(r["metrics"])[0] for r in mine}
        if len(distances) > 1:
            raise UserError(f"stage 'tables': the {injection} runs measured PPL under several distances {distances}")
        per_seed: dict[str, list[float]] = {}
        for r in mine:
            for tag, value in r["metrics"].items():
                key = "ppl" if tag.startswith("metrics/ppl") else tag.removeprefix("metrics/")
                per_seed.setdefault(key, []).append(value)
        out[injection] = {"seeds": [r["seed"] for r in mine], "ppl_distance": distances.pop()}
        for key, values in per_seed.items():
            mean, std = sweep.mean_std(values)
            out[injection][key] = {"mean": mean, "std": std, "per_seed": values}
    return out


def _figures(summary: dict[str, Any], runs: Sequence[dict[str, Any]], pipeline: Pipeline, judge: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    folder = pipeline.path("tables")
    colors = {"none": "#999999", "eni": "#4477aa", "rni": "#cc6677"}
    panels = [("fid", "FID (classifier features)"), ("kid_mean", "KID"), ("recall", "recall"),
              ("ppl", f"PPL in z [{next(iter(summary.values()))['ppl_distance']}]"), ("mc", "MC"), ("ttmc", "TTMC")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.6))
    tags = list(summary)
    for ax, (key, title) in zip(axes, panels):
        for x, tag in enumerate(tags):
            stat = summary[tag][key]
            std = 0.0 if math.isnan(stat["std"]) else stat["std"]
            ax.bar(x, stat["mean"], yerr=std, color=colors.get(tag, "#777777"), capsize=3, alpha=0.8)
            ax.scatter([x] * len(stat["per_seed"]), stat["per_seed"], color="black", s=8, zorder=3)
        ax.set_xticks(range(len(tags)), tags, fontsize=8)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    seeds = len(next(iter(summary.values()))["seeds"])
    fig.suptitle(f"DCGAN noise injection on real MNIST: mean ± std over {seeds} seeds (dots: seeds); "
                 f"judge {judge:.2%} test acc.", fontsize=8)  # fmt: skip
    fig.tight_layout()
    metrics_png = os.path.join(folder, "rni_metrics.png")
    fig.savefig(metrics_png, dpi=90)
    plt.close(fig)

    first = min(r["seed"] for r in runs)
    grids = [(r["injection"], r["samples"]) for r in runs if r["seed"] == first and r["samples"]]
    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids), 2.8), squeeze=False)
    for ax, (injection, path) in zip(axes[0], grids):
        ax.imshow(Image.open(pipeline.path(path)).convert("L"), cmap="gray")
        ax.set_title(f"{INJECTIONS[injection]}, seed {first}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    samples_png = os.path.join(folder, "rni_samples.png")
    fig.savefig(samples_png, dpi=90)
    plt.close(fig)
    return [metrics_png, samples_png]


def _tables(pipeline: Pipeline) -> dict[str, Any]:
    from tools.rni_tables import PAPER, build_tables

    if pipeline.dry_run:
        return {}
    runs = pipeline.metrics("models").get("runs")
    judge = pipeline.metrics("classifier").get("test_accuracy")
    if not runs or judge is None:
        raise UserError("stage 'tables': the manifest has no finished 'classifier' and 'models' stages")
    summary = summarise(runs)
    folder = pipeline.path("tables")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    # RNI Tables 1-2 by rni-tables' own code, from the runs' events (the same numbers as the manifest's)
    built = build_tables([(r["injection"], pipeline.fit_dir(_tag(r["injection"], r["seed"]))) for r in runs], "dcgan")
    tags = list(summary)

    def paper(injection: str, dataset: str, position: int) -> str:
        key = injection if injection == "none" else f"{injection}_dcgan"
        value = PAPER[dataset][key][position]
        return "–" if value is None else f"{value:g}"

    table1 = []
    for row in built["table1"]:
        t = row["config row"]
        table1.append([row["row"], row["k"], row["seeds"], row["PPL distance"],
                       fmt({"mean": row["PPL_mean"], "std": row["PPL_std"]}, 2),
                       fmt({"mean": row["FID_mean"], "std": row["FID_std"]}, 2)]
                      + [paper(t, d, p) for d in PAPER_DATASETS for p in (0, 1)])  # fmt: skip
    header1 = ["row", "k", "seeds", "PPL distance", "PPL", "FID"] + [
        f"{name} {col} (paper)" for name in PAPER_DATASETS.values() for col in ("PPL", "FID")
    ]
    table2 = [[row["row"], row["k"], row["seeds"], fmt({"mean": row["MC_mean"], "std": row["MC_std"]}),
               fmt({"mean": row["TTMC_mean"], "std": row["TTMC_std"]})] for row in built["table2"]]  # fmt: skip
    header2 = ["row", "k", "seeds", "MC", "TTMC"]
    quality = [[INJECTIONS[t], fmt(summary[t]["fid"], 2), fmt(summary[t]["kid_mean"]), fmt(summary[t]["precision"]),
                fmt(summary[t]["recall"])] for t in tags]  # fmt: skip
    header3 = ["row", "FID", "KID", "precision", "recall"]
    write_csv(os.path.join(folder, "table1.csv"), header1, table1)
    write_csv(os.path.join(folder, "table2.csv"), header2, table2)
    keys = ["fid", "kid_mean", "precision", "recall", "ppl", "mc", "ttmc"]
    write_csv(os.path.join(folder, "per_seed.csv"), ["injection", "seed", "ppl_distance"] + keys,
              [[r["injection"], r["seed"], _ppl(r["metrics"])[0]]
               + [_ppl(r["metrics"])[1] if k == "ppl" else r["metrics"][f"metrics/{k}"] for k in keys]
               for r in runs])  # fmt: skip
    write_csv(os.path.join(folder, "summary.csv"), ["injection"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")],
              [[t] + [summary[t][k][s] for k in keys for s in ("mean", "std")] for t in tags])  # fmt: skip
    figures = _figures(summary, runs, pipeline, judge)
    seeds = ", ".join(str(s) for s in pipeline.seeds)
    text = [
        f"Feature network and judge: the MNIST classifier of stage `classifier`, {judge:.4f} accuracy on the "
        f"real test digits. Mean ± sample std over seeds {seeds}.",
        "",
        "### RNI Table 1: PPL (in z) and FID",
        "",
        "FID in the classifier's features against the real training digits; PPL's distance is named per row. "
        "The paper's numbers are DCGAN rows on FFHQ and LSUN-Church (Inception FID, LPIPS PPL): "
        "for reference only, not comparable.",
        "",
        markdown(header1, table1),
        "",
        "### RNI Table 2: MC and TTMC (RNI Eq. 19, in z, noise redrawn per batch)",
        "",
        "The paper's Table 2 has no DCGAN rows (its StyleGAN2 rows on FFHQ: 0.530-0.943 MC).",
        "",
        markdown(header2, table2),
        "",
        "### Sample quality and diversity (classifier features)",
        "",
        markdown(header3, quality),
        "",
    ]
    with open(os.path.join(folder, "tables.md"), "w") as handle:
        handle.write("\n".join(text))
    return {"classifier_test_accuracy": judge, "summary": summary,
            "table1": built["table1"], "table2": built["table2"],
            "files": sorted(os.path.join("tables", f) for f in os.listdir(folder))}  # fmt: skip


def stages(pipeline: Pipeline) -> list[Stage]:
    """The RNI experiment's stages, reading the scale's settings from ``pipeline.settings``."""
    seeds = " ".join(map(str, pipeline.seeds))
    return [
        Stage("classifier", "the feature network and judge: the MNIST classifier, and its test accuracy", _classifier),
        Stage("models", f"DCGAN with no / Euclidean / Riemannian noise injection, seeds {seeds}, measured", _models),
        Stage("tables", "RNI Tables 1-2 (mean ± std over seeds) and the figures", _tables),
    ]
