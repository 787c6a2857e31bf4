"""The DE-GAN paper's evaluation, as pure functions (seed paper "GANs with decoder-encoder output noise").

* :func:`label_accuracy`, :func:`label_accuracy_per_class` -- the paper's "test accuracy"
  (Sec. IV-A.1, Table V, Fig. 6; per class Table VII): the generator is conditional, each
  sample is generated for a label y, and the accuracy is the share of samples that a
  classifier trained on the real data (test error < 0.5% in the paper) assigns to y.
  Tracked per epoch it is the convergence curve of Fig. 6.
* :func:`confident_accuracy` -- the project's own measure for an *unconditional* generator,
  which has no label to compare with: the share of samples whose top class probability
  is strictly greater than a threshold tau (logged as ``de_gan/confident_share``).
* :func:`diversity_degree`, :func:`class_diversity`, :func:`relative_diversity` -- the
  diversity degree of Definition 3, normalised per sample,
  D(X) = (1/|X|) sum_i ||x_i - mean(X)||^2, and the relative diversity degree
  rdd_c = D(X_gen,c) / D(X_real,c) per class c (Table VI; 1 = as diverse as the data).
* :func:`pca_2d` -- the 2-D PCA embedding of noise vectors of Fig. 11.
* :func:`convergence_figure`, :func:`pca_figure` -- matplotlib figures of Fig. 6 and Fig. 11.
* :func:`read_metrics_csv` -- a run's ``de_gan/metrics.csv``; ``python -m tools de-gan-metrics``
  turns several into the accuracy table and Fig. 6.

Images are compared as flat vectors on whatever scale they come in (the callers use
[-1, 1]); rdd is a ratio, so the scale cancels as long as both sets share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "class_diversity",
    "confident_accuracy",
    "label_accuracy",
    "label_accuracy_per_class",
    "convergence_figure",
    "diversity_degree",
    "pca_2d",
    "pca_figure",
    "read_metrics_csv",
    "relative_diversity",
]


def confident_accuracy(probs: torch.Tensor, threshold: float = 0.9) -> float:
    """Share of samples whose top class probability is strictly greater than ``threshold``.

    Args:
        probs: class probabilities [N, K] (rows sum to 1), e.g. ``Classifier.predict_proba``.
        threshold: tau in [0, 1); 0 counts every sample whose top probability is positive.
    """
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"expected class probabilities of shape [N > 0, K], got {list(probs.shape)}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"the confidence threshold must be in [0, 1), got {threshold}")
    return (probs.max(dim=1).values > threshold).double().mean().item()


def label_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of samples the classifier assigns to the label they were generated for: mean(argmax_k p_k == y).

    The paper's test accuracy of a conditional generator (DE-GAN Table V, Fig. 6).  ``probs``
    are class probabilities (or logits: only the argmax counts) [N, K], ``labels`` [N].
    """
    if probs.ndim != 2 or probs.shape[0] == 0 or labels.shape != probs.shape[:1]:
        raise ValueError(f"expected scores [N > 0, K] and labels [N], got {list(probs.shape)} and {list(labels.shape)}")
    return (probs.argmax(dim=1) == labels.to(probs.device)).double().mean().item()


def label_accuracy_per_class(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`label_accuracy` of the samples of each class c in 0..K-1 (DE-GAN Table VII), float64 [K]; NaN for a class without samples."""
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"expected scores [N, K] and labels [N], got {list(probs.shape)} and {list(labels.shape)}")
    labels = labels.to(probs.device)
    hit = (probs.argmax(dim=1) == labels).double()
    out = torch.full((probs.shape[1],), float("nan"), dtype=torch.float64)
    for c in range(probs.shape[1]):
        members = labels == c
        if members.any():
            out[c] = hit[members].mean().item()
    return out


def diversity_degree(x: torch.Tensor) -> float:
    """D(X) = (1/|X|) sum_i ||x_i - mean(X)||^2 of Definition 3 (per sample); 0 for fewer than 2 items.

    ``x`` is [N, ...]; each item is flattened.  Computed in float64.
    """
    if x.shape[0] < 2:
        return 0.0
    flat = x.reshape(x.shape[0], -1).double()
    return (flat - flat.mean(0)).pow(2).sum(1).mean().item()


def class_diversity(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """D(X_c) for each class c in 0..num_classes-1, float64 [num_classes]; 0 where a class has < 2 items."""
    if labels.shape != x.shape[:1]:
        raise ValueError(f"need one label per item, got {list(labels.shape)} for {x.shape[0]} items")
    labels = labels.to(x.device)
    return torch.tensor([diversity_degree(x[labels == c]) for c in range(num_classes)], dtype=torch.float64)


def relative_diversity(
    generated: torch.Tensor,
    generated_labels: torch.Tensor,
    real_diversity: torch.Tensor,
) -> torch.Tensor:
    """rdd_c = D(X_gen,c) / D(X_real,c) per class (Table VI), float64 [num_classes].

    Args:
        generated: generated images [N, ...].
        generated_labels: their class, e.g. the classifier's predicted label [N].
        real_diversity: D(X_real,c) per class, from :func:`class_diversity` on the real data.

    A class with no (or one) generated image has D = 0 and so rdd 0: dropping a mode
    counts as no diversity.  A class whose real diversity is 0 gives NaN.
    """
    gen = class_diversity(generated, generated_labels, real_diversity.numel())
    real = real_diversity.double().cpu()
    return torch.where(real > 0, gen / real.clamp_min(1e-300), torch.full_like(real, float("nan")))


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project [N, D] vectors onto their top two principal components (Fig. 11).

    Returns the centred projections [N, 2] (float64) and the share of the total variance
    each of the two components explains [2].  Each component's sign is fixed so that its
    largest-magnitude loading is positive (the embedding is deterministic).
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs [N >= 2, D] vectors, got {list(x.shape)}")
    centred = x.double() - x.double().mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    if components.shape[0] < 2:  # D = 1: pad with a zero axis
        components = torch.cat([components, torch.zeros_like(components)])
        s = torch.cat([s, torch.zeros(1, dtype=s.dtype)])
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    total = s.pow(2).sum()
    explained = s[:2].pow(2) / total if total > 0 else torch.zeros(2, dtype=torch.float64)
    return centred @ components.T, explained


def convergence_figure(
    curves: dict[str, Sequence[tuple[int, float]]],
    threshold: Optional[float] = None,
    title: Optional[str] = None,
    ylabel: Optional[str] = None,
) -> "Figure":
    """Fig. 6: classifier accuracy of generated samples against epochs, one line per run.

    Args:
        curves: run name -> [(epoch, accuracy), ...] (epochs counted from 1).
        threshold: the confidence threshold of :func:`confident_accuracy`, for the axis label.
        title: the figure title.
        ylabel: the axis label (default: the classifier accuracy of samples).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in curves.items():
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    label = ylabel or "classifier accuracy of samples"
    ax.set_ylabel(label if threshold is None else f"{label}\n(top probability > {threshold:g})")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=7 if len(curves) > 4 else None)
    ax.set_title(title or "convergence (DE-GAN paper, Fig. 6)")
    fig.tight_layout()
    return fig


def pca_figure(
    z_noise: torch.Tensor,
    z_prime: torch.Tensor,
    explained: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
) -> "Figure":
    """Fig. 11: 2-D PCA embeddings of the raw noise z_n (left) and the preconditioned z' (right).

    Both panels share their axis limits, so the spreads compare directly.

    Args:
        z_noise: 2-D embedding of z_n [N, 2] (from :func:`pca_2d`).
        z_prime: 2-D embedding of z' [N, 2].
        explained: the explained-variance shares of both embeddings, for the titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    names = ["original noise $z_n$", "posterior noise $z'$"]
    for i, (ax, points, name) in enumerate(zip(axes, (z_noise, z_prime), names)):
        points = points.detach().double().cpu()
        ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), s=3, alpha=0.5)
        if explained is not None:
            share = explained[i].sum().item()
            name = f"{name}\n(PC1+PC2: {100 * share:.1f}% of the variance)"
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("PC1")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PC2")
    fig.suptitle("PCA of the generator's input (DE-GAN paper, Fig. 11)", fontsize=10)
    fig.tight_layout()
    return fig


#: The column older runs wrote for the confidence-threshold share, now ``de_gan/confident_share``.
LEGACY_COLUMNS = {"de_gan/accuracy": "de_gan/confident_share"}


def read_metrics_csv(run: str) -> list[dict[str, float]]:
    """Rows of ``<run>/de_gan/metrics.csv`` (written by ``callbacks.de_gan_eval.DEGANEvaluation``).

    Older runs' ``de_gan/accuracy`` column (the confidence-threshold share) is read as
    ``de_gan/confident_share``.
    """
    import csv
    import os

    path = run if run.endswith(".csv") else os.path.join(run, "de_gan", "metrics.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: a run trained with callbacks.de_gan_eval.DEGANEvaluation writes it")
    with open(path, newline="") as f:
        return [
            {LEGACY_COLUMNS.get(k, k): float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


if __name__ == "__main__":  # deprecated alias of `python -m tools de-gan-metrics` (removed in the next release)
    from core.errors import run_alias

    run_alias("python -m evaluation.de_gan_metrics", "tools", "de-gan-metrics")
