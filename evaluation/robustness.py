r"""Robustness of a translator to inference noise, and the I2I poster's theory next to it.

Seed poster "On the analysis of GAN-based image-to-image translation using Gaussian noise
injection": a translator G trained on x + sigma_t N is tested on x + E, E of power
sigma_e^2 in [0, lambda_max].  This module

1. **measures** (:func:`robustness_rows`): for each noise type of
   :mod:`evaluation.corruptions` and each sigma_e^2 of a grid, corrupt the test inputs,
   translate, and score the outputs against the *clean* targets (PSNR, SSIM, L1, and
   optionally FID/KID of the outputs against the targets).  The corruption of each
   (type, sigma_e^2) cell is drawn from a generator seeded by (seed, type, sigma_e^2) only,
   so every trained model of a sweep is tested on identical inputs;
2. **predicts** (:func:`theory`): the Gaussian-source model of the poster's Theorem 2 for
   the actual inputs -- the eigenvalues of the input covariance (top ``max_dim``, the
   truncation, reported with the prediction; None keeps all;
   :func:`analysis.i2i_noise.spectrum_from_data`), the average-case optimum
   sigma_t^2 = lambda_max / 2 (the poster's corollary "Training Noise Intensity") and the
   minimax optimum (:func:`analysis.i2i_noise.minimax_sigma_t2`), also at several
   truncations (:func:`analysis.i2i_noise.minimax_by_truncation`);
3. **summarises** a sweep over sigma_t^2 (:func:`summary`): for each noise type, the
   average and worst-case metric over the sigma_e^2 grid per trained sigma_t^2, which
   sigma_t^2 did best, and which trained sigma_t^2 is nearest each prediction;
4. **writes** the table (CSV, JSON, Markdown) and the figure (:func:`plot_robustness`):
   metric against sigma_e^2 with one curve per sigma_t^2 (the poster's curves), and the
   average / worst-case metric against sigma_t^2 with the two predictions marked.

Noise powers and variances are on the project's [-1, 1] image scale.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import warnings
import zlib
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from analysis.i2i_noise import (
    TRUNCATIONS,
    average_optimal_sigma_t2,
    minimax_by_truncation,
    minimax_sigma_t2,
    spectrum_from_data,
    truncation_label,
)
from core.io import atomic_path
from core.seeding import seeded_generator
from evaluation.corruptions import CORRUPTIONS, corrupt, noise_power
from evaluation.features import PrecomputedFeatures
from lightning_modules.reconstruction import psnr, ssim

__all__ = [
    "COLUMNS",
    "METRIC_HIGHER_IS_BETTER",
    "plot_robustness",
    "read_csv",
    "robustness_rows",
    "sigma_e2_grid",
    "summary",
    "summary_markdown",
    "table_markdown",
    "theory",
    "minimax_label",
    "truncation_markdown",
    "write_table",
]

COLUMNS = ["sigma_t2", "noise", "sigma_e2", "noise_power", "psnr", "ssim", "l1", "fid", "kid", "images"]
METRIC_HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "fid": False, "kid": False}


def sigma_e2_grid(lambda_max: float, num_levels: int) -> list[float]:
    """``num_levels`` evenly spaced inference-noise powers from 0 to ``lambda_max`` inclusive."""
    if not (math.isfinite(lambda_max) and lambda_max > 0):
        raise ValueError(f"lambda_max must be a positive noise power, got {lambda_max}")
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2 (0 and lambda_max at least), got {num_levels}")
    return [float(v) for v in np.linspace(0.0, lambda_max, num_levels)]


def cell_generator(seed: int, noise: str, sigma_e2: float) -> torch.Generator:
    """The CPU generator of one (noise type, sigma_e^2) cell: depends on nothing else."""
    entropy = [int(seed), zlib.crc32(noise.encode()), zlib.crc32(f"{sigma_e2:.12g}".encode())]
    return seeded_generator(None, torch.device("cpu"), *entropy)


@torch.no_grad()
def robustness_rows(
    translate: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    sigma_e2: Sequence[float],
    noise_types: Sequence[str] = ("gaussian",),
    sigma_t2: float = float("nan"),
    seed: int = 0,
    batch_size: int = 64,
    features: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    kid_subset_size: int = 100,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (noise type, sigma_e^2): the translator's scores on corrupted inputs.

    Args:
        translate: ``[B, C, H, W]`` inputs in [-1, 1] -> outputs in [-1, 1] (e.g.
            ``NoisyI2I.translate``); called on CPU tensors, may return any device.
        inputs: the clean test inputs ``[N, C, H, W]`` in [-1, 1] (CPU).
        targets: their clean targets ``[N, C', H, W]`` in [-1, 1].
        sigma_e2: the inference-noise powers.
        noise_types: keys of :data:`evaluation.corruptions.CORRUPTIONS`.
        sigma_t2: the translator's training noise, copied into every row.
        seed: seeds the corruptions (see :func:`cell_generator`).
        batch_size: translation batch size.
        features: a feature extractor (images in [-1, 1] -> ``[B, F]``) for FID/KID of the
            outputs against the targets; ``None`` leaves those columns empty.
        kid_subset_size: KID's subset size (capped at N).
        progress: show a tqdm bar over the cells.

    Returns:
        Rows with the keys of :data:`COLUMNS`: PSNR / SSIM / L1 are means over the images
        (PSNR per image, then averaged), ``noise_power`` is the measured mean (x_hat - x)^2.
    """
    unknown = sorted(set(noise_types) - set(CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown noise types {unknown}; expected some of {sorted(CORRUPTIONS)}")
    if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise ValueError(f"need as many inputs as targets (> 0), got {inputs.shape[0]} and {targets.shape[0]}")
    inputs, targets = inputs.detach().float().cpu(), targets.detach().float().cpu()
    real_features = _features(features, targets, batch_size) if features is not None else None
    cells = [(noise, float(level)) for noise in noise_types for level in sigma_e2]
    rows = []
    for noise, level in tqdm(cells, desc="robustness", disable=not progress, leave=False):
        corrupted = corrupt(inputs, noise, level, cell_generator(seed, noise, level))
        outputs = torch.cat(
            [
                translate(corrupted[i : i + batch_size]).detach().float().cpu()
                for i in range(0, len(corrupted), batch_size)
            ]
        )
        row: dict[str, Any] = {
            "sigma_t2": float(sigma_t2),
            "noise": noise,
            "sigma_e2": level,
            "noise_power": noise_power(corrupted, inputs),
            "psnr": psnr(outputs, targets, reduction="mean").item(),
            "ssim": ssim(outputs, targets).mean().item(),
            "l1": F.l1_loss(outputs, targets).item(),
            "fid": float("nan"),
            "kid": float("nan"),
            "images": int(inputs.shape[0]),
        }
        if real_features is not None:
            row["fid"], row["kid"] = _fid_kid(
                real_features, _features(features, outputs, batch_size), kid_subset_size, seed
            )
        rows.append(row)
    return rows


def _features(extract: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([extract(images[i : i + batch_size]).float().cpu() for i in range(0, len(images), batch_size)])


def _fid_kid(real: torch.Tensor, fake: torch.Tensor, kid_subset_size: int, seed: int) -> tuple[float, float]:
    """torchmetrics' FID and KID (mean) on precomputed features."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    identity = PrecomputedFeatures(real.shape[1])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        fid = FrechetInceptionDistance(feature=identity, sync_on_compute=False).double()
        subset = min(kid_subset_size, len(real), len(fake))
        kid = KernelInceptionDistance(feature=identity, subsets=10, subset_size=subset, sync_on_compute=False)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global CPU generator
        torch.manual_seed(seed)
        kid_mean, _ = kid.compute()
    return float(fid.compute()), float(kid_mean)


# ---------------------------------------------------------------------- the theory
def theory(
    clean_inputs: torch.Tensor,
    lambda_max: float,
    max_dim: Optional[int] = 64,
    truncations: Sequence[Optional[int]] = TRUNCATIONS,
) -> dict[str, Any]:
    """The Gaussian-source predictions of the poster for these inputs and inference-noise range.

    The source X is modelled as N(mean, Sigma_s) with Sigma_s the sample covariance of the
    flattened clean inputs: its top ``max_dim`` eigenvalues (None: every positive one, at
    most N - 1 for N inputs; constant directions are always dropped, since the KL of
    Theorem 2 is infinite on them).  Returns the eigenvalues' summary, the truncation
    (``max_dim`` and its ``truncation`` label), the average-case optimum lambda_max / 2 (the
    poster's corollary; checked numerically with
    :func:`analysis.i2i_noise.average_optimal_sigma_t2`), the minimax optimum on the kept
    eigenvalues, and ``minimax_by_truncation``: the minimax optimum for each k of
    ``truncations`` (:func:`analysis.i2i_noise.minimax_by_truncation`), to show how much
    the prediction moves with the truncation.
    """
    x = clean_inputs.detach().double().flatten(1).cpu().numpy()
    full, share_all, _ = spectrum_from_data(x, None)
    eigenvalues = full if max_dim is None else full[:max_dim]
    if eigenvalues.size == 0:
        raise ValueError(f"max_dim must be >= 1 or None (all), got {max_dim}")
    return {
        "lambda_max": float(lambda_max),
        "average_sigma_t2": float(lambda_max) / 2.0,
        "average_sigma_t2_numeric": average_optimal_sigma_t2(eigenvalues, lambda_max),
        "minimax_sigma_t2": minimax_sigma_t2(eigenvalues, lambda_max),
        "max_dim": max_dim,
        "truncation": truncation_label(max_dim),
        "eigenvalues_kept": int(eigenvalues.size),
        "eigenvalues_positive": int(full.size),
        "variance_share": float(share_all * eigenvalues.sum() / full.sum()),
        "eigenvalue_max": float(eigenvalues[0]),
        "eigenvalue_min_kept": float(eigenvalues[-1]),
        "minimax_by_truncation": minimax_by_truncation(full, lambda_max, truncations),
        "images": int(x.shape[0]),
        "dimension": int(x.shape[1]),
    }


def minimax_label(theory_values: dict[str, Any]) -> str:
    """``"minimax σ_t² (top 64 eigenvalues) = 0.0528"``: the prediction with the truncation it was made at."""
    truncation = theory_values.get("truncation") or f"top {theory_values.get('eigenvalues_kept', '?')} eigenvalues"
    return f"minimax σ_t² ({truncation}) = {_fmt(theory_values['minimax_sigma_t2'])}"


def truncation_markdown(theory_values: dict[str, Any]) -> str:
    """One line: the minimax prediction at each truncation of ``theory_values["minimax_by_truncation"]`` ('' if absent)."""
    rows = theory_values.get("minimax_by_truncation")
    if not rows:
        return ""
    cells = []
    for t in rows:
        k = "all" if t["k"] is None else str(t["k"])
        kept = f" ({t['kept']} kept)" if t["k"] is None or t["kept"] < t["k"] else ""
        cells.append(f"k = {k}{kept}: {_fmt(t['minimax_sigma_t2'])}")
    return "Minimax σ_t² on the top k eigenvalues: " + "; ".join(cells) + "."


# ---------------------------------------------------------------------- summaries
def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def summary(
    rows: Sequence[dict[str, Any]], metric: str = "psnr", theory_values: Optional[dict[str, Any]] = None
) -> list[dict[str, Any]]:
    """Per noise type and trained sigma_t^2: the average and worst ``metric`` over the sigma_e^2 grid.

    Each result row also says whether that sigma_t^2 is the best of the sweep on average
    (``best_average``) and in the worst case (``best_worst``), and, given ``theory_values``,
    whether it is the trained sigma_t^2 nearest lambda_max / 2 (``nearest_average_rule``) or
    the minimax prediction (``nearest_minimax``).
    """
    higher = METRIC_HIGHER_IS_BETTER[metric]
    out = []
    for noise in sorted({r["noise"] for r in rows}, key=_noise_order):
        by_t: dict[float, list[float]] = {}
        for r in rows:
            if r["noise"] == noise:
                by_t.setdefault(float(r["sigma_t2"]), []).append(float(r[metric]))
        entries = []
        for t in sorted(by_t):
            values = _finite(by_t[t])
            if not values:
                continue
            worst = min(values) if higher else max(values)
            entries.append(
                {"noise": noise, "sigma_t2": t, f"{metric}_average": float(np.mean(values)), f"{metric}_worst": worst}
            )
        if not entries:
            continue
        pick = max if higher else min
        best_avg = pick(entries, key=lambda e: e[f"{metric}_average"])["sigma_t2"]
        best_worst = pick(entries, key=lambda e: e[f"{metric}_worst"])["sigma_t2"]
        trained = [e["sigma_t2"] for e in entries]
        for e in entries:
            e["best_average"] = e["sigma_t2"] == best_avg
            e["best_worst"] = e["sigma_t2"] == best_worst
            if theory_values:
                e["nearest_average_rule"] = e["sigma_t2"] == _nearest(trained, theory_values["average_sigma_t2"])
                e["nearest_minimax"] = e["sigma_t2"] == _nearest(trained, theory_values["minimax_sigma_t2"])
        out.extend(entries)
    return out


def _nearest(values: Sequence[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), v))


def _noise_order(noise: str) -> tuple[int, str]:
    order = list(CORRUPTIONS)
    return (order.index(noise) if noise in order else len(order), noise)


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def table_markdown(rows: Sequence[dict[str, Any]], metric: str = "psnr") -> str:
    """``metric`` as a Markdown table: one line per (noise type, sigma_e^2), one column per sigma_t^2."""
    ts = sorted({float(r["sigma_t2"]) for r in rows})
    cells: dict[tuple[str, float], dict[float, float]] = {}
    powers: dict[tuple[str, float], float] = {}
    for r in rows:
        key = (r["noise"], float(r["sigma_e2"]))
        cells.setdefault(key, {})[float(r["sigma_t2"])] = float(r[metric])
        powers[key] = float(r["noise_power"])
    lines = [
        "| noise | σ_e² | measured power | " + " | ".join(f"{metric} σ_t²={_fmt(t)}" for t in ts) + " |",
        "|---|---|---|" + "---|" * len(ts),
    ]
    for key in sorted(cells, key=lambda k: (_noise_order(k[0]), k[1])):
        best = _best(cells[key], metric)
        values = []
        for t in ts:
            v = cells[key].get(t, float("nan"))
            text = _fmt(v, 4 if metric != "psnr" else 5)
            values.append(f"**{text}**" if t == best else text)
        lines.append(f"| {key[0]} | {_fmt(key[1])} | {_fmt(powers[key])} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def _best(cell: dict[float, float], metric: str) -> Optional[float]:
    finite = {t: v for t, v in cell.items() if math.isfinite(v)}
    if not finite:
        return None
    pick = max if METRIC_HIGHER_IS_BETTER[metric] else min
    return pick(finite, key=finite.get)


def summary_markdown(
    rows: Sequence[dict[str, Any]], metric: str = "psnr", theory_values: Optional[dict[str, Any]] = None
) -> str:
    """The :func:`summary` as Markdown, the theory's predictions above it."""
    lines = []
    if theory_values:
        lines += [
            f"Theory (Gaussian source fitted to {theory_values['images']} clean inputs, "
            f"{theory_values['eigenvalues_kept']} eigenvalues holding {100 * theory_values['variance_share']:.1f}% of "
            f"the variance, λ_max = {_fmt(theory_values['lambda_max'])}): average-case σ_t² = λ_max/2 = "
            f"{_fmt(theory_values['average_sigma_t2'])} (numeric {_fmt(theory_values['average_sigma_t2_numeric'])}), "
            f"{minimax_label(theory_values)}.",
            "",
        ]
        if truncation_markdown(theory_values):
            lines += [truncation_markdown(theory_values), ""]
    lines += [
        f"| noise | σ_t² | {metric} average over σ_e² | {metric} worst | best average | best worst |"
        + (" nearest λ_max/2 | nearest minimax |" if theory_values else ""),
        "|---|---|---|---|---|---|" + ("---|---|" if theory_values else ""),
    ]
    for e in summary(rows, metric, theory_values):
        cells = [e["noise"], _fmt(e["sigma_t2"]), _fmt(e[f"{metric}_average"], 5), _fmt(e[f"{metric}_worst"], 5)]
        cells += ["yes" if e["best_average"] else "", "yes" if e["best_worst"] else ""]
        if theory_values:
            cells += ["yes" if e["nearest_average_rule"] else "", "yes" if e["nearest_minimax"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- files
def write_table(
    rows: Sequence[dict[str, Any]],
    folder: str,
    theory_values: Optional[dict[str, Any]] = None,
    stem: str = "robustness",
) -> dict[str, str]:
    """``<folder>/<stem>.csv``, ``.json`` (rows and theory) and ``.md`` (tables); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = {ext: os.path.join(folder, f"{stem}.{ext}") for ext in ("csv", "json", "md")}
    # All three are written before any is renamed into place: an error leaves the old ones.
    with contextlib.ExitStack() as files:
        tmp = {ext: files.enter_context(atomic_path(path)) for ext, path in paths.items()}
        with open(tmp["csv"], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in COLUMNS})
        with open(tmp["json"], "w") as handle:
            json.dump({"rows": list(rows), "theory": theory_values}, handle, indent=1, allow_nan=True)
        parts = []
        for metric in ("psnr", "ssim"):
            parts += [
                f"## {metric.upper()}",
                "",
                summary_markdown(rows, metric, theory_values),
                "",
                table_markdown(rows, metric),
                "",
            ]
        with open(tmp["md"], "w") as handle:
            handle.write("\n".join(parts))
    return paths


def read_csv(path: str) -> list[dict[str, Any]]:
    """Rows written by :func:`write_table` (numbers back as floats, ``images`` as int)."""
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {"noise": raw["noise"]}
            for key in COLUMNS:
                if key == "noise":
                    continue
                text = raw.get(key, "")
                row[key] = (int(text) if key == "images" else float(text)) if text not in ("", None) else float("nan")
            rows.append(row)
    return rows


def plot_robustness(
    rows: Sequence[dict[str, Any]],
    path: str,
    metric: str = "psnr",
    theory_values: Optional[dict[str, Any]] = None,
    title: str = "",
):
    """The poster's curves: per noise type, ``metric`` vs sigma_e^2 with one curve per sigma_t^2;
    and a last panel with the Gaussian average / worst case vs sigma_t^2, the predictions marked.

    The x axis of the curves is the *measured* noise power (JPEG's saturates, see
    :mod:`evaluation.corruptions`, so its points bunch up where the codec can go no further).

    Writes a PNG at ``path`` (when not empty) and returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({r["noise"] for r in rows}, key=_noise_order)
    ts = sorted({float(r["sigma_t2"]) for r in rows})
    cmap = plt.get_cmap("viridis")
    colors = {t: cmap(i / max(len(ts) - 1, 1)) for i, t in enumerate(ts)}
    panels = len(noises) + 1
    cols = min(panels, 3)
    nrows = math.ceil(panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    label = metric.upper() + (" (dB)" if metric == "psnr" else "")
    for ax, noise in zip(axes.flat, noises):
        for t in ts:
            pts = sorted(
                (float(r["noise_power"]), float(r[metric]))
                for r in rows
                if r["noise"] == noise and float(r["sigma_t2"]) == t
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, color=colors[t], label=f"σ_t²={_fmt(t, 3)}")
        ax.set_title(noise.replace("_", " "))
        ax.set_xlabel("measured inference noise power σ_e²")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    ax = axes.flat[len(noises)]
    focus = "gaussian" if "gaussian" in noises else noises[0]
    entries = [e for e in summary(rows, metric) if e["noise"] == focus]
    if entries:
        x = [e["sigma_t2"] for e in entries]
        ax.plot(x, [e[f"{metric}_average"] for e in entries], marker="o", label="average over σ_e²")
        ax.plot(x, [e[f"{metric}_worst"] for e in entries], marker="s", label="worst over σ_e²")
    if theory_values:
        ax.axvline(
            theory_values["average_sigma_t2"],
            color="tab:green",
            ls="--",
            label=f"λ_max/2 = {_fmt(theory_values['average_sigma_t2'], 3)}",
        )
        ax.axvline(
            theory_values["minimax_sigma_t2"],
            color="tab:red",
            ls=":",
            label=f"minimax ({theory_values.get('truncation', 'top ? eigenvalues')}) = {_fmt(theory_values['minimax_sigma_t2'], 3)}",
        )
    ax.set_title(f"{focus.replace('_', ' ')}: training noise")
    ax.set_xlabel("training noise σ_t²")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for extra in list(axes.flat)[panels:]:
        extra.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
