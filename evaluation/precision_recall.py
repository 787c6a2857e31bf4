"""Improved precision and recall of a generative model (Kynkäänniemi et al. 2019).

"Improved Precision and Recall Metric for Assessing Generative Models" (NeurIPS 2019)
estimates each feature manifold as the union of hyperspheres around its points, each
sphere reaching the point's k-th nearest neighbour in its own set.  improved P&R Eq. 1:

    f(phi, Phi) = 1  if ||phi - phi'||_2 <= ||phi' - NN_k(phi')||_2 for at least one phi' in Phi,
                  0  otherwise;

improved P&R Eq. 2:

    precision(Phi_r, Phi_g) = 1/|Phi_g| sum_{phi_g in Phi_g} f(phi_g, Phi_r)    (fakes inside the real manifold)
    recall(Phi_r, Phi_g)    = 1/|Phi_r| sum_{phi_r in Phi_r} f(phi_r, Phi_g)    (reals inside the fake manifold)

Precision measures sample quality, recall the coverage of the real distribution: a
generator that collapses to a few modes keeps a high precision and loses recall.  The
paper uses k = 3 and 50k images per set on VGG-16 features; here any feature extractor.

Distances are computed in row blocks (``torch.cdist`` of ``chunk`` rows against a whole
set), so memory is O(chunk * N), never an N x N x F tensor.
"""

from __future__ import annotations

import torch

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]


def _check(features: torch.Tensor, name: str) -> torch.Tensor:
    if features.dim() != 2:
        raise ValueError(f"{name} must be a [N, F] matrix, got shape {tuple(features.shape)}")
    return features


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance of every row to its k-th nearest neighbour among the other rows, shape [N].

    The point itself (distance 0) is not one of its neighbours; duplicates of it are.
    """
    _check(features, "features")
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k-NN radii need 1 <= k < number of points, got k={k} for {n} points")
    radii = []
    for start in range(0, n, chunk):
        block = features[start : start + chunk]
        distances = torch.cdist(block, features)
        # Position k+1 in sorted order: the smallest is the point itself. kthvalue is 1-based.
        radii.append(distances.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def manifold_coverage(
    queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 1024
) -> torch.Tensor:
    """improved P&R Eq. 1 per query row: 1.0 if it lies in a sphere ``(support[i], radii[i])``, else 0.0; [M]."""
    _check(queries, "queries")
    _check(support, "support")
    inside = []
    for start in range(0, queries.shape[0], chunk):
        distances = torch.cdist(queries[start : start + chunk], support)
        inside.append((distances <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside).to(queries.dtype)


def precision_recall(
    real_features: torch.Tensor,
    fake_features: torch.Tensor,
    k: int = 3,
    chunk: int = 1024,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, Eq. 1-2) of fakes against reals.

    Args:
        real_features: [N_r, F] features of real images.
        fake_features: [N_g, F] features of generated images (same F).
        k: the k of the k-NN radius (3 in the paper); both sets need more than k points.
        chunk: rows per distance block (memory ~ chunk * max(N_r, N_g) distances).

    Returns:
        ``(precision, recall)``, each in [0, 1].
    """
    _check(real_features, "real_features")
    _check(fake_features, "fake_features")
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            f"real and fake features differ in dimension: {real_features.shape[1]} vs {fake_features.shape[1]}"
        )
    dtype = torch.promote_types(real_features.dtype, fake_features.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    # Centring on the real mean changes no distance but shrinks the norms, which limits the
    # cancellation of cdist's ||a||^2 + ||b||^2 - 2 a.b on large feature vectors.
    center = real_features.to(dtype).mean(dim=0, keepdim=True)
    real = real_features.to(dtype) - center
    fake = fake_features.to(device=real.device, dtype=dtype) - center
    real_radii = knn_radii(real, k, chunk)
    fake_radii = knn_radii(fake, k, chunk)
    precision = manifold_coverage(fake, real, real_radii, chunk).mean().item()
    recall = manifold_coverage(real, fake, fake_radii, chunk).mean().item()
    return precision, recall
