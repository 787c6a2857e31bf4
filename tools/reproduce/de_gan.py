"""DE-GAN's headline MNIST experiment: ``python -m tools reproduce de_gan --data-root ../shared/data``.

Seed paper "Generative adversarial networks with decoder-encoder output noise" (Zhong et
al.), Sec. IV-A: the conditional DE-GAN against the plain DCGAN baseline on MNIST, judged
by a classifier trained on the same digits.  Stages (:mod:`tools.reproduce.pipeline`):

1. ``classifier`` -- the judge: ``configs/classifier/mnist.yaml`` on the real training
   digits, then its accuracy on the real test digits (in-process, on the last checkpoint);
   the pipeline stops here when it is below ``min_classifier_accuracy`` (0.99: the paper
   asks for a classifier with < 0.5% error, the issue for >= 99%).
2. ``vae`` -- DE-GAN's pretrained VAE (Algorithm 1, line 1; ``configs/de_gan/mnist_vae.yaml``).
3. ``models`` -- per seed, the conditional DE-GAN (``configs/de_gan/mnist.yaml``) and the
   plain DCGAN baseline (``configs/de_gan/mnist_dcgan.yaml``: Gaussian noise, no hidden-space
   loss, the same G and D), with the same epochs, widths and seed; their
   :class:`~callbacks.de_gan_eval.DEGANEvaluation` (pointed at stage 1's classifier) writes
   the label accuracy of 6,400 generated digits and rdd per digit after every epoch to
   ``<run>/de_gan/metrics.csv``, which the stage copies into the manifest.
4. ``tables`` -- from the manifest's ``models`` record: the label accuracy per epoch,
   mean and std over the seeds (Fig. 6, ``tables/fig6_accuracy.png``), the final accuracy
   (Table V), rdd per digit (Table VI) and accuracy per digit (Table VII), as CSV and
   Markdown under ``tables/``.

``SETTINGS["default"]`` is sized for 2 CPU cores (fewer epochs and half the widths of
Table II): it took 28.5 minutes with ``--jobs 2`` on two cores (docs/results/de_gan.md);
``SETTINGS["paper"]`` is Sec. IV-A's
setting (25 epochs, Table II's widths, 28x28) for full MNIST on a GPU.  Both use the
paper's 28x28 digits (``pad 0``), in the classifier, the VAE and the GANs alike.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

from core.errors import UserError
from tools import sweep
from tools.reproduce.common import classifier_stage, classifier_test_accuracy, fmt, markdown, mnist_overrides, write_csv
from tools.reproduce.pipeline import Pipeline, Stage
from tools.sweep import tensorboard_scalars

__all__ = ["MODELS", "SEEDS", "SETTINGS", "classifier_test_accuracy", "stages", "summarise"]

#: scale -> settings (recorded in the manifest).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "resolution": 28,  # the paper's 28x28 digits (Table II)
        "batch_size": 64,
        "num_workers": 0,  # 2 cores: the trainer's own process is busy enough
        "classifier_epochs": 15,
        "classifier_batch_size": 128,  # configs/classifier/mnist.yaml's
        "classifier_val_fraction": 0.05,
        "min_classifier_accuracy": 0.99,
        "vae_epochs": 10,
        "gan_epochs": 6,  # 6 x 112 iterations of 64 on 7,200 digits (the paper's epoch: 937 on 60,000)
        "g_width": 32,  # Table II: 64
        "d_width": 32,  # Table II: 64
        "eval_samples": 6400,  # Sec. IV-A.1: 6,400 generated digits
    },
    "paper": {
        "resolution": 28,
        "batch_size": 64,
        "num_workers": 4,
        "classifier_epochs": 15,
        "classifier_batch_size": 128,
        "classifier_val_fraction": 0.1,
        "min_classifier_accuracy": 0.99,
        "vae_epochs": 20,
        "gan_epochs": 25,  # Sec. IV-A.2: "totally 25 epochs"
        "g_width": 64,
        "d_width": 64,
        "eval_samples": 6400,
    },
}

SEEDS: dict[str, list[int]] = {"default": [0, 1, 2], "paper": [0, 1, 2, 3, 4]}

#: model tag -> (config, label in tables and figures).
MODELS: dict[str, tuple[str, str]] = {
    "de_gan": ("configs/de_gan/mnist.yaml", "DE-GAN"),
    "dcgan": ("configs/de_gan/mnist_dcgan.yaml", "DCGAN"),
}

_CLASSES = 10


def _data_overrides(pipeline: Pipeline, batch_size: int) -> list[str]:
    return mnist_overrides(pipeline, batch_size)


def _classifier(pipeline: Pipeline) -> dict[str, Any]:
    return classifier_stage(pipeline, "classifier")


def _vae(pipeline: Pipeline) -> dict[str, Any]:
    s = pipeline.settings
    overrides = _data_overrides(pipeline, s["batch_size"]) + [
        "--model.init_args.resolution", str(s["resolution"]),
        "--trainer.max_epochs", str(s["vae_epochs"]),
    ]  # fmt: skip
    pipeline.fit("vae", "configs/de_gan/mnist_vae.yaml", overrides)
    if pipeline.dry_run:
        return {}
    scalars = tensorboard_scalars(pipeline.fit_dir("vae"))
    return {k: v[-1][1] for k, v in scalars.items() if k.startswith("val/")}


def _models(pipeline: Pipeline) -> dict[str, Any]:
    from evaluation.de_gan_metrics import read_metrics_csv

    s = pipeline.settings
    fits = []
    for seed in pipeline.seeds:
        for tag, (config, _) in MODELS.items():
            overrides = _data_overrides(pipeline, s["batch_size"]) + sweep.seed_override(seed) + [
                "--model.init_args.resolution", str(s["resolution"]),
                "--model.init_args.g_width", str(s["g_width"]),
                "--model.init_args.d_width", str(s["d_width"]),
                "--model.init_args.vae_ckpt", pipeline.checkpoint("vae") if tag == "de_gan" else "null",
                "--trainer.max_epochs", str(s["gan_epochs"]),
                "--trainer.callbacks.init_args.classifier_ckpt", pipeline.checkpoint("classifier"),
                "--trainer.callbacks.init_args.num_samples", str(s["eval_samples"]),
            ]  # fmt: skip
            fits.append((f"{tag}/seed{seed}", config, overrides))
    pipeline.fit_many(fits)  # the seeds and both models: --jobs at a time
    if pipeline.dry_run:
        return {}
    runs = []
    for seed in pipeline.seeds:
        for tag in MODELS:
            rows = read_metrics_csv(pipeline.fit_dir(f"{tag}/seed{seed}"))
            runs.append({"model": tag, "seed": seed, "epochs": [_epoch_row(row) for row in rows]})
    return {"runs": runs}


def _epoch_row(row: dict[str, float]) -> dict[str, Any]:
    """One epoch's numbers of a metrics.csv row: epoch, iterations, label accuracy, rdd, per digit."""
    # one iteration = one D step + one G step, and Lightning's global_step counts optimiser steps
    out: dict[str, Any] = {"epoch": int(row["epoch"]), "iterations": int(row["global_step"]) // 2}
    out["label_accuracy"] = row["de_gan/label_accuracy"]
    out["rdd_mean"] = row["de_gan/rdd_mean"]
    out["label_accuracy_per_digit"] = [row[f"de_gan/label_accuracy/{c}"] for c in range(_CLASSES)]
    out["rdd_per_digit"] = [row[f"de_gan/rdd/{c}"] for c in range(_CLASSES)]
    return out


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of each model's per-epoch accuracy, final accuracy, rdd and accuracy per digit.

    ``runs``: the ``models`` stage's records (model, seed, epochs).  Only epochs that every
    run of a model reached enter its curve.
    """
    out: dict[str, Any] = {}
    for tag in MODELS:
        mine = [r for r in runs if r["model"] == tag and r["epochs"]]
        if not mine:
            continue
        last_epoch = min(r["epochs"][-1]["epoch"] for r in mine)
        curve = []
        for epoch in range(1, last_epoch + 1):
            rows = [next(e for e in r["epochs"] if e["epoch"] == epoch) for r in mine]
            mean, std = sweep.mean_std([e["label_accuracy"] for e in rows])
            curve.append({"epoch": epoch, "iterations": rows[0]["iterations"], "mean": mean, "std": std})
        finals = [next(e for e in r["epochs"] if e["epoch"] == last_epoch) for r in mine]
        stats = lambda values: dict(zip(("mean", "std"), sweep.mean_std(values)))  # noqa: E731
        out[tag] = {
            "seeds": [r["seed"] for r in mine],
            "curve": curve,
            "final_epoch": last_epoch,
            "final_accuracy": {**stats([e["label_accuracy"] for e in finals]),
                               "per_seed": [e["label_accuracy"] for e in finals]},  # fmt: skip
            "final_rdd_mean": stats([e["rdd_mean"] for e in finals]),
            "rdd_per_digit": [stats([e["rdd_per_digit"][c] for e in finals]) for c in range(_CLASSES)],
            "accuracy_per_digit": [stats([e["label_accuracy_per_digit"][c] for e in finals]) for c in range(_CLASSES)],
        }
    return out


def _figure(summary: dict[str, Any], path: str, judge: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for tag, data in summary.items():
        epochs = [p["epoch"] for p in data["curve"]]
        mean = [p["mean"] for p in data["curve"]]
        std = [0.0 if math.isnan(p["std"]) else p["std"] for p in data["curve"]]
        line = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{MODELS[tag][1]} ({len(data['seeds'])} seeds)")
        ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line[0].get_color(), alpha=0.2)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("label accuracy of 6,400 samples")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"DE-GAN Fig. 6 on real MNIST (judge: {judge:.2%} test acc.)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _tables(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        return {}
    models = pipeline.metrics("models").get("runs")
    judge = pipeline.metrics("classifier").get("test_accuracy")
    if not models or judge is None:
        raise UserError("stage 'tables': the manifest has no finished 'classifier' and 'models' stages")
    summary = summarise(models)
    folder = pipeline.path("tables")
    os.makedirs(folder, exist_ok=True)
    tags = list(summary)
    names = [MODELS[t][1] for t in tags]

    curve_rows = []
    for i, point in enumerate(summary[tags[0]]["curve"]):
        row: list[Any] = [point["epoch"], point["iterations"]]
        row += [fmt(summary[t]["curve"][i]) for t in tags if i < len(summary[t]["curve"])]
        curve_rows.append(row)
    write_csv(os.path.join(folder, "fig6_accuracy.csv"),
               ["epoch", "iterations"] + [f"{t}_{k}" for t in tags for k in ("mean", "std")],
               [[p["epoch"], p["iterations"]] + [summary[t]["curve"][i][k] for t in tags for k in ("mean", "std")]
                for i, p in enumerate(summary[tags[0]]["curve"])])  # fmt: skip
    final_rows = [[MODELS[t][1], summary[t]["final_epoch"], fmt(summary[t]["final_accuracy"]),
                   " ".join(f"{v:.3f}" for v in summary[t]["final_accuracy"]["per_seed"]),
                   fmt(summary[t]["final_rdd_mean"])] for t in tags]  # fmt: skip
    write_csv(os.path.join(folder, "table5_final_accuracy.csv"),
               ["model", "epoch", "accuracy_mean", "accuracy_std", "rdd_mean_mean", "rdd_mean_std"],
               [[MODELS[t][1], summary[t]["final_epoch"], summary[t]["final_accuracy"]["mean"],
                 summary[t]["final_accuracy"]["std"], summary[t]["final_rdd_mean"]["mean"],
                 summary[t]["final_rdd_mean"]["std"]] for t in tags])  # fmt: skip
    rdd_rows = [[c] + [fmt(summary[t]["rdd_per_digit"][c]) for t in tags] for c in range(_CLASSES)]
    write_csv(os.path.join(folder, "table6_rdd.csv"), ["digit"] + [f"{t}_{k}" for t in tags for k in ("mean", "std")],
               [[c] + [summary[t]["rdd_per_digit"][c][k] for t in tags for k in ("mean", "std")]
                for c in range(_CLASSES)])  # fmt: skip
    acc_rows = [[c] + [fmt(summary[t]["accuracy_per_digit"][c]) for t in tags] for c in range(_CLASSES)]
    write_csv(os.path.join(folder, "table7_accuracy_per_digit.csv"),
               ["digit"] + [f"{t}_{k}" for t in tags for k in ("mean", "std")],
               [[c] + [summary[t]["accuracy_per_digit"][c][k] for t in tags for k in ("mean", "std")]
                for c in range(_CLASSES)])  # fmt: skip
    _figure(summary, os.path.join(folder, "fig6_accuracy.png"), judge)

    seeds = ", ".join(str(s) for s in pipeline.seeds)
    text = [
        f"Judge: the MNIST classifier of stage `classifier`, {judge:.4f} accuracy on the real test digits. "
        f"Mean ± std over seeds {seeds}; accuracy = share of 6,400 generated digits (640 per label) "
        "that the judge assigns to the label they were generated for.",
        "",
        "### Fig. 6: label accuracy after every epoch",
        "",
        markdown(["epoch", "iterations"] + names, curve_rows),
        "",
        "### Table V: final label accuracy",
        "",
        markdown(["model", "epoch", "accuracy", "per seed", "mean rdd"], final_rows),
        "",
        "### Table VI: rdd per digit (final epoch)",
        "",
        markdown(["digit"] + names, rdd_rows),
        "",
        "### Table VII: label accuracy per digit (final epoch)",
        "",
        markdown(["digit"] + names, acc_rows),
        "",
    ]
    with open(os.path.join(folder, "tables.md"), "w") as handle:
        handle.write("\n".join(text))
    return {"classifier_test_accuracy": judge, "summary": summary,
            "files": sorted(os.path.join("tables", f) for f in os.listdir(folder))}  # fmt: skip


def stages(pipeline: Pipeline) -> list[Stage]:
    """The DE-GAN experiment's stages, reading the scale's settings from ``pipeline.settings``."""
    return [
        Stage("classifier", "the judge: the MNIST classifier, and its accuracy on the real test digits", _classifier),
        Stage("vae", "DE-GAN's VAE (Algorithm 1, line 1)", _vae),
        Stage("models", f"DE-GAN and the DCGAN baseline, seeds {' '.join(map(str, pipeline.seeds))}", _models),
        Stage("tables", "Fig. 6 and Tables V-VII (mean ± std over seeds)", _tables),
    ]
