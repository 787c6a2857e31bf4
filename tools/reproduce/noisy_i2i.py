"""The I2I poster's experiment on real MNIST: ``python -m tools reproduce noisy_i2i --data-root ../shared/data``.

Seed poster "On the analysis of GAN-based image-to-image translation using Gaussian noise
injection" (Shi et al.; docs/noisy-i2i.md): a paired translator trained on inputs with
Gaussian noise of variance sigma_t^2 ("Method: Noise Injection"), tested on inputs with
inference noise of power sigma_e^2 in [0, lambda_max], against the corollary "Training
Noise Intensity": the average-case optimum sigma_t^2 = lambda_max / 2 and the minimax one.
The task is ``configs/i2i/mnist_sr4.yaml``: pix2pix (``NoisyI2I``) for 4x super-resolution
of the real digits (8x8 -> 32x32), a digit-sized stand-in for the poster's HiFaceGAN face
super-resolution.  Stages (:mod:`tools.reproduce.pipeline`):

1. ``models`` -- one ``train.py fit`` per training noise sigma_t^2 of ``sigma_t2`` (0 is
   plain pix2pix) and seed, ``--jobs`` at a time; the seed sets ``seed_everything`` and
   ``noise_seed`` (data order, dropout, the training noise).  Records each fit's last
   validation PSNR / SSIM / L1 (clean inputs).
2. ``robustness`` -- in this process, every checkpoint of stage 1 on the first
   ``eval_images`` real test digits: the five inference-noise types of
   :mod:`evaluation.corruptions` (Gaussian, uniform, salt-and-pepper, Poisson, JPEG) at
   ``num_levels`` powers from 0 to ``lambda_max``, scored against the clean targets with
   :func:`evaluation.robustness.robustness_rows` (PSNR, SSIM, L1; the corruptions of each
   cell depend on ``eval_seed`` alone, so every model sees the same inputs), and the
   poster's Gaussian-source theory fitted once to the clean test inputs
   (:func:`evaluation.robustness.theory`: lambda_max / 2 and the minimax sigma_t^2 on the
   top ``theory_max_dim`` eigenvalues, with the minimax value at other truncations) --
   exactly what ``train.py test`` with the config's ``NoiseRobustness`` callback computes,
   without a process start per checkpoint.  The data module is built from the fits' own
   saved ``config.yaml``.  Each run's table also goes to ``runs/<tag>/robustness/``.
3. ``tables`` -- from the manifest's ``robustness`` record: per noise type and sigma_t^2
   the PSNR and SSIM averaged over the sigma_e^2 grid and their worst case, mean ± std over
   the seeds; the full curves (mean ± std per sigma_e^2); which sigma_t^2 did best (by the
   seed mean, and in each seed) next to the theory's two predictions; as Markdown, CSV
   and PNG (the poster's curves, one per sigma_t^2, with std bands, and the training-noise
   panel with lambda_max / 2 and the minimax value drawn) under ``tables/``.

``SETTINGS["default"]`` is sized for 2 CPU cores (short fits of a quarter-width pix2pix);
``SETTINGS["paper"]`` has pix2pix's widths, about 20 epochs of the real training digits, a
finer sigma_t^2 and sigma_e^2 grid and five seeds, for one GPU.  The poster gives no
training settings for its translators; the paper scale is pix2pix's recipe at 32 px.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import yaml

from core.errors import UserError
from tools import sweep
from tools.reproduce.common import build_datamodule, fmt, markdown, write_csv
from tools.reproduce.pipeline import Pipeline, Stage

__all__ = ["CONFIG", "SEEDS", "SETTINGS", "evaluate", "stages", "summarise", "tag"]

CONFIG = "configs/i2i/mnist_sr4.yaml"

#: scale -> settings (recorded in the manifest).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "sigma_t2": [0.0, 0.05, 0.1, 0.2, 0.4],  # as docs/noisy-i2i.md's digits sweep; 0 = plain pix2pix
        "iterations": 600,  # ~2.5 epochs of 7,600 digits; pix2pix trains for hundreds of epochs
        "batch_size": 32,
        "num_workers": 0,  # 2 cores: the trainer's own process is busy enough
        "g_width": 16,  # pix2pix: 64
        "g_max_width": 128,  # pix2pix: 512
        "d_width": 16,  # pix2pix: 64
        "d_max_width": 128,  # pix2pix: 512
        "val_fraction": 0.05,  # 400 of the 8,000 training digits held out (7,600 train)
        "val_batches": 4,  # clean validation PSNR after each epoch, on 128 of them
        "lambda_max": 0.4,  # the top of the inference-noise range, [-1, 1] scale (as digits_sr8)
        "num_levels": 5,  # sigma_e^2 = 0, 0.1, 0.2, 0.3, 0.4
        "noise_types": ["gaussian", "uniform", "salt_and_pepper", "poisson", "jpeg"],
        "eval_images": 500,  # of the 1,000 real test digits
        "eval_batch_size": 64,  # NoiseRobustness's default
        "eval_seed": 0,  # the corruptions: the same for every model
        "theory_max_dim": 64,  # the 8x8 inputs have 64 degrees of freedom (before the upsampling's clamp)
    },
    "paper": {
        "sigma_t2": [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4],
        "iterations": 4750,  # 20 epochs of 7,600 digits at batch 32
        "batch_size": 32,
        "num_workers": 4,
        "g_width": 64,  # pix2pix's U-Net widths
        "g_max_width": 512,
        "d_width": 64,
        "d_max_width": 512,
        "val_fraction": 0.05,
        "val_batches": 8,
        "lambda_max": 0.4,
        "num_levels": 9,  # sigma_e^2 = 0, 0.05, ..., 0.4
        "noise_types": ["gaussian", "uniform", "salt_and_pepper", "poisson", "jpeg"],
        "eval_images": 1000,
        "eval_batch_size": 64,
        "eval_seed": 0,
        "theory_max_dim": 64,
    },
}

SEEDS: dict[str, list[int]] = {"default": [0, 1, 2], "paper": [0, 1, 2, 3, 4]}

NOISE_LABELS = {"gaussian": "Gaussian", "uniform": "uniform", "salt_and_pepper": "salt & pepper",
                "poisson": "Poisson", "jpeg": "JPEG"}  # fmt: skip


def tag(sigma_t2: float, seed: int) -> str:
    """The fit's tag (its folder under ``runs/``): ``sigma_t2_0.1/seed2``."""
    return f"sigma_t2_{sigma_t2:g}/seed{seed}"


def _fit_overrides(pipeline: Pipeline, sigma_t2: float, seed: int) -> list[str]:
    s = pipeline.settings
    return sweep.seed_override(seed) + [
        "--data.init_args.source.init_args.root", os.path.join(pipeline.data_root, "mnist"),
        "--data.init_args.source.init_args.batch_size", str(s["batch_size"]),
        "--data.init_args.source.init_args.num_workers", str(s["num_workers"]),
        "--data.init_args.source.init_args.val_fraction", str(s["val_fraction"]),
        "--trainer.enable_progress_bar", "false",
        "--trainer.max_steps", str(2 * s["iterations"]),  # optimiser steps: one D and one G step per iteration
        "--trainer.limit_val_batches", str(s["val_batches"]),
        "--model.init_args.sigma_t2", repr(float(sigma_t2)),
        "--model.init_args.noise_seed", str(seed),
        "--model.init_args.g_width", str(s["g_width"]),
        "--model.init_args.g_max_width", str(s["g_max_width"]),
        "--model.init_args.d_width", str(s["d_width"]),
        "--model.init_args.d_max_width", str(s["d_max_width"]),
    ]  # fmt: skip


def _points(pipeline: Pipeline) -> list[tuple[float, int]]:
    return [(float(v), seed) for v in pipeline.settings["sigma_t2"] for seed in pipeline.seeds]


def _models(pipeline: Pipeline) -> dict[str, Any]:
    fits = [(tag(v, seed), CONFIG, _fit_overrides(pipeline, v, seed)) for v, seed in _points(pipeline)]
    pipeline.fit_many(fits)  # every sigma_t^2 and seed: --jobs at a time
    if pipeline.dry_run:
        return {}
    runs = []
    for v, seed in _points(pipeline):
        scalars = sweep.tensorboard_scalars(pipeline.fit_dir(tag(v, seed)))
        final = {k.split("/", 1)[1]: vals[-1][1] for k, vals in scalars.items() if k.startswith("val/") and vals}
        runs.append({"sigma_t2": v, "seed": seed, "tag": tag(v, seed), "val": final})
    return {"runs": runs}


# ---------------------------------------------------------------------- evaluation
def _data_section(fit_dir: str) -> Any:
    with open(os.path.join(fit_dir, "config.yaml")) as handle:
        return yaml.safe_load(handle)["data"]


def evaluate(checkpoint: str, inputs, targets, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The robustness rows of one NoisyI2I checkpoint, as ``NoiseRobustness`` computes them at ``train.py test``."""
    import torch

    from evaluation.robustness import robustness_rows, sigma_e2_grid
    from lightning_modules.noisy_i2i import NoisyI2I

    model = NoisyI2I.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    generator = torch.Generator(device=model.device).manual_seed(settings["eval_seed"])
    return robustness_rows(
        lambda x: model.translate(x, generator=generator),
        inputs,
        targets,
        sigma_e2_grid(settings["lambda_max"], settings["num_levels"]),
        settings["noise_types"],
        sigma_t2=float(model.sigma_t2),
        seed=settings["eval_seed"],
        batch_size=settings["eval_batch_size"],
    )


def _test_pairs(datamodule, count: int):
    """The first ``count`` (input, target) pairs of the test split, in order (as ``NoiseRobustness.pairs``)."""
    import torch

    datamodule.setup("test")
    dataset = datamodule.test_set
    count = min(count, len(dataset))
    if count < 2:
        raise UserError(f"the test split has {len(dataset)} pairs; the robustness evaluation needs at least 2")
    items = [dataset[i] for i in range(count)]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def _robustness(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        print(f"  # in this process: robustness of the {len(_points(pipeline))} checkpoints of stage 'models'")
        return {}
    import torch

    from evaluation.robustness import theory, write_table

    s = pipeline.settings
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    fit_dirs = [pipeline.fit_dir(tag(v, seed)) for v, seed in _points(pipeline)]
    sections = {d: _data_section(d) for d in fit_dirs}
    first = sections[fit_dirs[0]]
    for d, section in sections.items():
        if section != first:
            raise UserError(f"stage 'robustness': {d} was trained on other data than {fit_dirs[0]}; "
                            "rerun with --force models")  # fmt: skip
    inputs, targets = _test_pairs(build_datamodule(fit_dirs[0]), s["eval_images"])
    fitted = theory(inputs, s["lambda_max"], s["theory_max_dim"])
    runs = []
    for (v, seed), fit_dir in zip(_points(pipeline), fit_dirs):
        checkpoint = pipeline.checkpoint(tag(v, seed))
        rows = evaluate(checkpoint, inputs, targets, s)
        folder = os.path.join(os.path.dirname(fit_dir), "robustness")
        write_table(rows, folder, fitted)
        with open(pipeline.log_path("robustness"), "a") as log:
            log.write(f"{tag(v, seed)}: {len(rows)} rows -> {folder}\n")
        print(f"  # evaluated: {tag(v, seed)}", flush=True)
        runs.append({"sigma_t2": v, "seed": seed, "tag": tag(v, seed),
                     "checkpoint": os.path.relpath(checkpoint, pipeline.out), "rows": rows})  # fmt: skip
    return {"theory": fitted, "images": int(inputs.shape[0]), "runs": runs}


# ---------------------------------------------------------------------- tables
def _stats(values: Sequence[float]) -> dict[str, float]:
    mean, std = sweep.mean_std(values)
    return {"mean": mean, "std": std}


def summarise(runs: Sequence[dict[str, Any]], theory_values: dict[str, Any]) -> dict[str, Any]:
    """Mean and std over seeds of the robustness rows of the ``robustness`` stage's ``runs``.

    Returns ``curves`` (per noise, sigma_e^2, sigma_t^2 and metric: the measured power and
    mean/std of the metric), ``summary`` (per noise, sigma_t^2 and metric: mean/std over
    seeds of the average and of the worst over the sigma_e^2 grid, and the per-seed values)
    and ``best`` (per noise and metric: the sigma_t^2 with the best seed-mean average and
    worst case, the best of each seed, and the grid points nearest the theory's two
    predictions).
    """
    from evaluation.robustness import summary as per_seed_summary

    metrics = ("psnr", "ssim")
    ts = sorted({float(r["sigma_t2"]) for r in runs})
    seeds = sorted({int(r["seed"]) for r in runs})
    noises = [n for n in NOISE_LABELS if any(row["noise"] == n for r in runs for row in r["rows"])]
    curves = []
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        for row in r["rows"]:
            cells.setdefault((row["noise"], float(row["sigma_e2"]), float(r["sigma_t2"])), []).append(row)
    for noise in noises:
        for level in sorted({k[1] for k in cells if k[0] == noise}):
            for t in ts:
                rows = cells.get((noise, level, t), [])
                if not rows:
                    continue
                entry = {"noise": noise, "sigma_e2": level, "sigma_t2": t, "seeds": len(rows),
                         "noise_power": sum(float(x["noise_power"]) for x in rows) / len(rows)}  # fmt: skip
                for m in metrics:
                    entry[m] = _stats([float(x[m]) for x in rows])
                curves.append(entry)
    # per seed: the average and worst over sigma_e^2 of each (noise, sigma_t^2), via evaluation.robustness.summary
    per_seed: dict[int, dict[tuple, dict[str, Any]]] = {}
    for seed in seeds:
        rows = [row for r in runs if int(r["seed"]) == seed for row in r["rows"]]
        per_seed[seed] = {}
        for m in metrics:
            for e in per_seed_summary(rows, m):
                per_seed[seed].setdefault((e["noise"], float(e["sigma_t2"])), {}).update(
                    {f"{m}_average": e[f"{m}_average"], f"{m}_worst": e[f"{m}_worst"],
                     f"{m}_best_average": e["best_average"], f"{m}_best_worst": e["best_worst"]})  # fmt: skip
    summary = []
    for noise in noises:
        for t in ts:
            have = [seed for seed in seeds if (noise, t) in per_seed[seed]]
            entry = {"noise": noise, "sigma_t2": t, "seeds": have}
            for m in metrics:
                for kind in ("average", "worst"):
                    values = [per_seed[seed][(noise, t)][f"{m}_{kind}"] for seed in have]
                    entry[f"{m}_{kind}"] = {**_stats(values), "per_seed": values}
            summary.append(entry)
    nearest = lambda target: min(ts, key=lambda v: (abs(v - target), v))  # noqa: E731
    best = []
    for noise in noises:
        mine = [e for e in summary if e["noise"] == noise]
        for m in metrics:
            item = {"noise": noise, "metric": m,
                    "nearest_average_rule": nearest(theory_values["average_sigma_t2"]),
                    "nearest_minimax": nearest(theory_values["minimax_sigma_t2"])}  # fmt: skip
            for kind in ("average", "worst"):
                top = max(mine, key=lambda e: e[f"{m}_{kind}"]["mean"])
                item[f"best_{kind}"] = top["sigma_t2"]
                item[f"best_{kind}_per_seed"] = [
                    next(t for t in ts if per_seed[seed].get((noise, t), {}).get(f"{m}_best_{kind}")) for seed in seeds
                ]
            best.append(item)
    return {"sigma_t2": ts, "seeds": seeds, "noises": noises, "curves": curves, "summary": summary, "best": best}


def _get(summary: dict[str, Any], noise: str, t: float) -> dict[str, Any]:
    return next(e for e in summary["summary"] if e["noise"] == noise and e["sigma_t2"] == t)


def _best(summary: dict[str, Any], noise: str, metric: str) -> dict[str, Any]:
    return next(b for b in summary["best"] if b["noise"] == noise and b["metric"] == metric)


def _figure(summary: dict[str, Any], theory_values: dict[str, Any], metric: str, path: str, title: str) -> None:
    """The poster's curves (metric vs measured sigma_e^2 per noise, one curve per sigma_t^2, ± std
    over seeds) and a last panel: Gaussian average / worst case vs sigma_t^2 with both predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation.robustness import minimax_label

    ts, noises = summary["sigma_t2"], summary["noises"]
    cmap = plt.get_cmap("viridis")
    colors = {t: cmap(i / max(len(ts) - 1, 1)) for i, t in enumerate(ts)}
    panels = len(noises) + 1
    cols = min(panels, 3)
    fig, axes = plt.subplots(math.ceil(panels / cols), cols, figsize=(3.6 * cols, 2.9 * math.ceil(panels / cols)),
                             squeeze=False)  # fmt: skip
    label = metric.upper() + (" (dB)" if metric == "psnr" else "")
    band = lambda s: 0.0 if math.isnan(s) else s  # noqa: E731
    for ax, noise in zip(axes.flat, noises):
        for t in ts:
            pts = sorted((c["noise_power"], c[metric]["mean"], band(c[metric]["std"]))
                         for c in summary["curves"] if c["noise"] == noise and c["sigma_t2"] == t)  # fmt: skip
            if not pts:
                continue
            x, mean, std = zip(*pts)
            ax.plot(x, mean, marker="o", ms=2.5, color=colors[t], label=f"σ_t²={t:g}")
            ax.fill_between(x, [a - b for a, b in zip(mean, std)], [a + b for a, b in zip(mean, std)],
                            color=colors[t], alpha=0.15)  # fmt: skip
        ax.set_title(NOISE_LABELS[noise], fontsize=9)
        ax.set_xlabel("measured inference noise power σ_e²", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=6)
    ax = axes.flat[len(noises)]
    focus = "gaussian" if "gaussian" in noises else noises[0]
    for kind, marker in (("average", "o"), ("worst", "s")):
        entries = [_get(summary, focus, t) for t in ts]
        ax.errorbar(ts, [e[f"{metric}_{kind}"]["mean"] for e in entries],
                    yerr=[band(e[f"{metric}_{kind}"]["std"]) for e in entries], marker=marker, ms=3, capsize=2,
                    label=f"{kind} over σ_e²")  # fmt: skip
    ax.axvline(theory_values["average_sigma_t2"], color="tab:green", ls="--",
               label=f"λ_max/2 = {theory_values['average_sigma_t2']:.3g}")  # fmt: skip
    ax.axvline(theory_values["minimax_sigma_t2"], color="tab:red", ls=":", label=minimax_label(theory_values))
    ax.set_title(f"{NOISE_LABELS[focus]}: training noise", fontsize=9)
    ax.set_xlabel("training noise σ_t²", fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    for extra in list(axes.flat)[panels:]:
        extra.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _tables(pipeline: Pipeline) -> dict[str, Any]:
    if pipeline.dry_run:
        return {}
    from evaluation.robustness import minimax_label, truncation_markdown

    record = pipeline.metrics("robustness")
    if not record.get("runs"):
        raise UserError("stage 'tables': the manifest has no finished 'robustness' stage")
    theory_values, runs = record["theory"], record["runs"]
    summary = summarise(runs, theory_values)
    folder = pipeline.path("tables")
    os.makedirs(folder, exist_ok=True)
    ts, noises = summary["sigma_t2"], summary["noises"]
    seeds = ", ".join(str(s) for s in summary["seeds"])
    digits = {"psnr": 2, "ssim": 3}

    text = [
        f"Real MNIST, 4× super-resolution (8×8 → 32×32), pix2pix (`{CONFIG}`); {record['images']} real test "
        f"digits; mean ± std over seeds {seeds}. Inference noise σ_e² from 0 to λ_max = "
        f"{theory_values['lambda_max']:g} ([-1, 1] scale), {pipeline.settings['num_levels']} powers per type; "
        "'avg' is the mean over those powers, 'worst' the lowest.",
        "",
        f"Theory (Gaussian source fitted to the {theory_values['images']} clean test inputs, "
        f"{theory_values['eigenvalues_kept']} eigenvalues holding {100 * theory_values['variance_share']:.2f} % of the "
        f"variance): average-case σ_t² = λ_max/2 = {theory_values['average_sigma_t2']:g}; "
        f"{minimax_label(theory_values)}. {truncation_markdown(theory_values)}",
        "",
    ]
    csv_rows = []
    for metric in ("psnr", "ssim"):
        d = digits[metric]
        header = ["σ_t²"] + [f"clean ({'σ_e² = 0'})", "Gaussian avg", "Gaussian worst"]
        header += [f"{NOISE_LABELS[n]} avg" for n in noises if n != "gaussian"]
        rows = []
        best_avg = {n: _best(summary, n, metric)["best_average"] for n in noises}
        best_worst = _best(summary, "gaussian", metric)["best_worst"] if "gaussian" in noises else None
        clean = {t: next(c[metric] for c in summary["curves"] if c["noise"] == noises[0] and c["sigma_t2"] == t
                         and c["sigma_e2"] == 0.0) for t in ts}  # fmt: skip
        best_clean = max(ts, key=lambda t: clean[t]["mean"])
        for t in ts:
            cell = lambda n, kind: _get(summary, n, t)[f"{metric}_{kind}"]  # noqa: E731
            bold = lambda text, yes: f"**{text}**" if yes else text  # noqa: E731
            row = [f"{t:g}" + (" (= λ_max/2)" if t == theory_values["average_sigma_t2"] else ""),
                   bold(fmt(clean[t], d), t == best_clean)]  # fmt: skip
            if "gaussian" in noises:
                row += [bold(fmt(cell("gaussian", "average"), d), t == best_avg["gaussian"]),
                        bold(fmt(cell("gaussian", "worst"), d), t == best_worst)]  # fmt: skip
            row += [bold(fmt(cell(n, "average"), d), t == best_avg[n]) for n in noises if n != "gaussian"]
            rows.append(row)
            for n in noises:
                e = _get(summary, n, t)
                csv_rows.append([metric, n, t, len(e["seeds"]), e[f"{metric}_average"]["mean"],
                                 e[f"{metric}_average"]["std"], e[f"{metric}_worst"]["mean"],
                                 e[f"{metric}_worst"]["std"]])  # fmt: skip
        text += [f"### {metric.upper()}: average and worst case over the σ_e² grid (bold: best σ_t² by the mean)",
                 "", markdown(header, rows), ""]  # fmt: skip
    write_csv(os.path.join(folder, "summary.csv"),
              ["metric", "noise", "sigma_t2", "seeds", "average_mean", "average_std", "worst_mean", "worst_std"],
              csv_rows)  # fmt: skip

    verdict = []
    for n in noises:
        for metric in ("psnr", "ssim"):
            b = _best(summary, n, metric)
            verdict.append([NOISE_LABELS[n], metric.upper(), f"{b['best_average']:g}",
                            " ".join(f"{v:g}" for v in b["best_average_per_seed"]), f"{b['best_worst']:g}",
                            " ".join(f"{v:g}" for v in b["best_worst_per_seed"]),
                            f"{b['nearest_average_rule']:g}", f"{b['nearest_minimax']:g}"])  # fmt: skip
    text += ["### Best σ_t² against the theory", "",
             markdown(["noise", "metric", "best avg (seed mean)", "best avg per seed", "best worst (seed mean)",
                       "best worst per seed", "grid point nearest λ_max/2", "nearest minimax"], verdict), ""]  # fmt: skip

    curve_csv = []
    for n in noises:
        levels = sorted({c["sigma_e2"] for c in summary["curves"] if c["noise"] == n})
        rows = []
        for level in levels:
            cs = {c["sigma_t2"]: c for c in summary["curves"] if c["noise"] == n and c["sigma_e2"] == level}
            power = next(iter(cs.values()))["noise_power"]
            top = max(cs, key=lambda t: cs[t]["psnr"]["mean"])
            rows.append([f"{level:g}", f"{power:.4g}"]
                        + [(f"**{fmt(cs[t]['psnr'], 2)}**" if t == top else fmt(cs[t]["psnr"], 2)) if t in cs else ""
                           for t in ts])  # fmt: skip
            curve_csv += [[n, level, cs[t]["noise_power"], t, cs[t]["seeds"], cs[t]["psnr"]["mean"], cs[t]["psnr"]["std"],
                           cs[t]["ssim"]["mean"], cs[t]["ssim"]["std"]] for t in ts if t in cs]  # fmt: skip
        text += [f"### PSNR (dB) under {NOISE_LABELS[n]} noise, per σ_e²", "",
                 markdown(["σ_e²", "measured power"] + [f"σ_t² = {t:g}" for t in ts], rows), ""]  # fmt: skip
    write_csv(os.path.join(folder, "curves.csv"),
              ["noise", "sigma_e2", "noise_power", "sigma_t2", "seeds", "psnr_mean", "psnr_std", "ssim_mean",
               "ssim_std"], curve_csv)  # fmt: skip
    for metric in ("psnr", "ssim"):
        _figure(summary, theory_values, metric, os.path.join(folder, f"robustness_{metric}.png"),
                f"I2I poster on real MNIST (SR ×4, pix2pix): {metric.upper()}, mean ± std over seeds {seeds}")  # fmt: skip
    with open(os.path.join(folder, "tables.md"), "w") as handle:
        handle.write("\n".join(text))
    return {"summary": summary, "theory": theory_values,
            "files": sorted(os.path.join("tables", f) for f in os.listdir(folder))}  # fmt: skip


def stages(pipeline: Pipeline) -> list[Stage]:
    """The I2I poster's experiment's stages, reading the scale's settings from ``pipeline.settings``."""
    ts = " ".join(f"{v:g}" for v in pipeline.settings["sigma_t2"])
    return [
        Stage("models", f"pix2pix (NoisyI2I) at σ_t² = {ts}, seeds {' '.join(map(str, pipeline.seeds))}", _models),
        Stage("robustness", "every model under five inference-noise types and powers; the theory's σ_t²", _robustness),
        Stage("tables", "robustness tables and curves (mean ± std over seeds) with the theory's σ_t²", _tables),
    ]
