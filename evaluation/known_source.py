"""A generator's distribution over the prototypes of a known source, against d(eps) (Noise-dim Eq. 11).

On :class:`datamodules.KnownSourceDataModule` the data X takes K values (prototype
images) with known probabilities p.  A generator's output is mapped to its nearest
prototype in L2, which turns it into a categorical q over the same K values; then

* D(p || q) is the divergence the generator reached (``divergence_bits`` of
  :mod:`analysis.divergence_entropy`, the definition the d(eps) solvers use);
* eps = H(Z) is the entropy of its noise (``NoiseSpec.entropy_bits``), and Lemma 4.1
  with the data processing inequality gives H(q) <= H(G(Z)) <= eps;
* d(eps) = min { D(p || q') : H(q') <= eps } (Noise-dim Eq. 11, :func:`analysis.divergence_entropy.
  solve_exact`), so every learned q lies on or above the curve: D(p || q) >= d(eps).

That inequality holds **by construction**: an enumerated q is the image of 2^eps equally
likely noise values, so it has at most 2^eps outcomes and H(q) <= eps, i.e. q is one of the
distributions d(eps) minimises over.  ``above_curve_<name>`` therefore tests the solver, not
the GAN.  The result about the GAN is the gap ``gap_<name>`` = D(p || q) - d(eps) >= 0: how
far the trained generator is from the best distribution its noise allows.

How q is measured.  Discrete noise of at most ``max_enumerate`` values (2^eps, eps =
bits x dim) is **enumerated**: every noise value once, each of probability 2^-eps, so q
is exact, and H(q) <= eps holds by construction.  Other noise (Gaussian, float formats)
is sampled: ``num_samples`` draws from a seeded generator, q the empirical frequencies.

Zero cells.  KL(p || q) is infinite when q misses a prototype of positive p (for an
enumerated q that is the truth, not a sampling artefact); that is reported as ``inf``.
``kl_smoothed_bits`` adds a pseudo-count ``smoothing`` (0.5, Krichevsky-Trofimov) to every
cell of the counts before normalising -- a finite estimate for plots and tables, but not a
quantity the theorem bounds (smoothing adds entropy), so the check D >= d(eps) uses the
unsmoothed q.  JS and TV are finite for every q.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from analysis.divergence_entropy import divergence_bits, divergence_unit, entropy_bits, solve_exact, sweep_exact
from core.noise import NoiseSpec

__all__ = [
    "nearest_prototype",
    "enumerate_discrete_noise",
    "prototype_counts",
    "known_source_report",
    "plot_tradeoff",
    "BY_CONSTRUCTION",
    "DEFAULT_DIVERGENCES",
]

DEFAULT_DIVERGENCES = ("kl", "js", "tv")

#: Why D(p || q) >= d(eps) cannot fail for an enumerated q: say it with every result.
BY_CONSTRUCTION = (
    "D(p||q) >= d(eps) holds by construction: q is the image of 2^eps equally likely noise values, so it has at "
    "most 2^eps outcomes and H(q) <= eps, and d(eps) is the least D over all such q. The above_curve check tests "
    "the d(eps) solver, not the GAN; the result about the GAN is the gap D(p||q) - d(eps)."
)


def nearest_prototype(images: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Index of the nearest prototype (L2 over all pixels) of each image, [N] int64."""
    flat = images.reshape(images.shape[0], -1).float()
    protos = prototypes.reshape(prototypes.shape[0], -1).to(flat)
    return torch.cdist(flat, protos).argmin(dim=1)


def enumerate_discrete_noise(spec: NoiseSpec) -> torch.Tensor:
    """Every value of discrete noise, [2^(bits*dim), dim] in the spec's dtype (each equally likely)."""
    if spec.distribution != "discrete":
        raise ValueError(f"only discrete noise can be enumerated, not {spec.distribution}")
    levels = 2**spec.bits
    index = torch.arange(levels**spec.dim)
    digits = (index[:, None] // (levels ** torch.arange(spec.dim))[None, :]) % levels
    return spec.levels()[digits]


def prototype_counts(
    generate: Callable[[torch.Tensor], torch.Tensor],
    spec: NoiseSpec,
    prototypes: torch.Tensor,
    max_enumerate: int = 2**16,
    num_samples: int = 16384,
    batch_size: int = 4096,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """(counts of nearest prototypes over the noise, ``"exact"`` or ``"sampled"``).

    ``generate`` maps noise [B, dim] to images; exact enumeration when the noise is
    discrete with at most ``max_enumerate`` values, else ``num_samples`` seeded draws.
    """
    exact = spec.distribution == "discrete" and spec.bits * spec.dim <= math.log2(max_enumerate)
    if exact:
        noise = enumerate_discrete_noise(spec)
    else:
        noise = spec.sample(num_samples, generator=torch.Generator().manual_seed(seed))
    counts = torch.zeros(prototypes.shape[0], dtype=torch.int64)
    with torch.no_grad():
        for block in noise.split(batch_size):
            labels = nearest_prototype(generate(block).cpu(), prototypes.cpu())
            counts += torch.bincount(labels, minlength=prototypes.shape[0])
    return counts.numpy(), "exact" if exact else "sampled"


def known_source_report(
    p: np.ndarray,
    counts: np.ndarray,
    eps: float,
    divergences: Sequence[str] = DEFAULT_DIVERGENCES,
    smoothing: float = 0.5,
    method: Optional[str] = None,
) -> dict[str, Any]:
    """D(p || q), H(q) and d(eps) for each divergence, from the prototype counts of a generator.

    Keys: ``eps_bits``, ``H_p_bits``, ``H_q_bits``, ``q`` (list), ``counts``, ``method``,
    ``kl_smoothed_bits``, ``smoothing``, and per divergence name (``kl``, ``js``, ``tv``,
    ``reverse-kl``): ``D_<name>`` = D(p || q), ``d_eps_<name>`` = d(eps) of Noise-dim Eq. 11,
    ``gap_<name>`` = D(p || q) - d(eps) (inf where D is), and ``above_curve_<name>`` =
    D(p || q) >= d(eps) (up to 1e-9; true by construction for an exact q with H(q) <= eps, so
    a false one means the solver missed the minimum).  KL, reverse KL and JS are in bits, TV is
    a number in [0, 1].
    """
    p = np.asarray(p, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != p.shape or counts.sum() <= 0:
        raise ValueError(f"counts must be {p.shape[0]} non-negative numbers with a positive sum")
    q = counts / counts.sum()
    smoothed = (counts + smoothing) / (counts.sum() + smoothing * len(counts))
    out: dict[str, Any] = {
        "eps_bits": float(eps),
        "p": p.tolist(),
        "H_p_bits": entropy_bits(p),
        "H_q_bits": entropy_bits(q),
        "q": q.tolist(),
        "counts": [int(c) for c in counts],
        "method": method,
        "smoothing": smoothing,
        "kl_smoothed_bits": divergence_bits(p, smoothed, "kl"),
    }
    for name in divergences:
        value = divergence_bits(p, q, name)
        bound = solve_exact(p, eps, name).d
        out[f"D_{name}"] = value
        out[f"d_eps_{name}"] = bound
        out[f"gap_{name}"] = value - bound
        out[f"above_curve_{name}"] = bool(value >= bound - 1e-9)
    return out


def _group_runs(reports: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Reports of one grid point together (same ``bits`` and ``dim`` where given, same eps): e.g. one per seed."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in reports:
        groups.setdefault((r.get("bits"), r.get("dim"), r["eps_bits"]), []).append(r)
    return list(groups.values())


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value, which draws no error bar)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def plot_tradeoff(
    reports: Sequence[dict[str, Any]],
    path: str,
    divergences: Sequence[str] = DEFAULT_DIVERGENCES,
    title: Optional[str] = None,
) -> str:
    """One panel per divergence: the d(eps) curve of Noise-dim Eq. 11 for the reports' p, H(X), and the learned points.

    Reports of one grid point (same ``bits``, ``dim`` and eps; e.g. one per seed) make one
    point: their mean D(p || q) with a mean ± std error bar (sample std over the runs), and each
    run as a small dot.  Runs with KL = inf (a prototype never generated) are drawn as upward
    triangles at the top edge, labelled with how many of the point's runs they are; the KL
    of the smoothed q is drawn as grey crosses (mean ± std).  All reports must share p.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("plot_tradeoff needs at least one report")
    p = np.asarray(reports[0]["p"], dtype=np.float64)
    if any(not np.allclose(r["p"], p) for r in reports):
        raise ValueError("the reports come from sources with different p; plot them separately")
    h_p = entropy_bits(p)
    groups = _group_runs(reports)
    runs = max(len(g) for g in groups)
    eps_max = max(max(r["eps_bits"] for r in reports), h_p) * 1.15
    grid = np.linspace(0.02, eps_max, 200)
    fig, axes = plt.subplots(1, len(divergences), figsize=(4.2 * len(divergences), 4.1), squeeze=False)
    for ax, name in zip(axes[0], divergences):
        curve = np.array([s.d for s in sweep_exact(p, grid, name)])
        ax.plot(grid, curve, color="black", lw=1.5, label="d(eps), Noise-dim Eq. 11")
        finite = [r[f"D_{name}"] for r in reports if math.isfinite(r[f"D_{name}"])]
        top = max(finite + [float(curve[np.isfinite(curve)][0])]) * 1.15
        if name == "kl":
            top = max(top, max(r["kl_smoothed_bits"] for r in reports) * 1.15)
        for group in groups:
            eps = group[0]["eps_bits"]
            values = [r[f"D_{name}"] for r in group]
            ok = [v for v in values if math.isfinite(v)]
            if runs > 1 and ok:
                ax.scatter([eps] * len(ok), ok, s=8, color="tab:red", alpha=0.35, zorder=3)
            if len(ok) == len(values):
                mean, std = _mean_std(ok)
                ax.errorbar([eps], [mean], yerr=[std], fmt="o", color="tab:red", capsize=3, zorder=4)
            else:
                ax.scatter([eps], [top], marker="^", color="tab:red", facecolors="none", zorder=3)
                if runs > 1:
                    ax.annotate(f"{len(values) - len(ok)}/{len(values)}", (eps, top), textcoords="offset points",
                                xytext=(0, -11), ha="center", fontsize=6, color="tab:red")  # fmt: skip
            if name == "kl":  # a finite estimate where KL is infinite; smoothing adds entropy, so it is not bound
                mean, std = _mean_std([r["kl_smoothed_bits"] for r in group])
                ax.errorbar([eps], [mean], yerr=[std], fmt="x", color="tab:gray", capsize=3, zorder=3)
        ax.axvline(h_p, color="tab:blue", ls="--", lw=1, label=f"H(X) = {h_p:.3f} bits")
        ax.set_ylim(0, top * 1.05)
        ax.set_xlabel("eps = H(Z) (bits)")
        unit = divergence_unit(name)
        ax.set_ylabel(f"{name.upper()}(p, q)" + (" (bits)" if unit == "bits" else ""))
        ax.grid(alpha=0.3)
    legend = axes[0][0]  # proxies: every marker the figure can hold, once
    legend.plot([], [], "o", color="tab:red",
                label="trained GAN, D(p||q)" + (f" (mean ± std over {runs} runs)" if runs > 1 else ""))  # fmt: skip
    legend.scatter([], [], marker="^", color="tab:red", facecolors="none",
                   label="D = inf (a prototype never generated)" + ("; n/k: runs with inf" if runs > 1 else ""))
    if "kl" in divergences:
        legend.plot([], [], "x", color="tab:gray", label=f"KL, q smoothed (+{reports[0]['smoothing']:g} per cell)")
    handles, labels = legend.get_legend_handles_labels()  # below the panels, where no point can hide behind it
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
