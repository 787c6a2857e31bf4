"""Levina-Bickel maximum-likelihood intrinsic dimension, as in seed DE-GAN Sec. III (Eq. 15-17).

For N points x_i on a manifold, with T_j(x) the distance from x to its j-th nearest
neighbour (the point itself excluded), DE-GAN Definition 2 reads::

    m_k(x_i) = [ 1/(k-1) * sum_{j=1}^{k-1} log( T_k(x_i) / T_j(x_i) ) ]^{-1}      (DE-GAN Eq. 15)
    M_k      = 1/N * sum_i m_k(x_i)                                               (DE-GAN Eq. 16)
    M        = lim_{k -> inf} M_k                                                 (DE-GAN Eq. 17)

and Fig. 4 plots M_k against k.  DE-GAN Eq. 16 is the arithmetic mean of the per-point
estimates; that is the default here (``average="mean"``).  Because
sum_{j<k} log(T_k/T_j) is Gamma(k-1, rate m) distributed for a locally uniform density,
E[m_k(x)] = m (k-1)/(k-2): DE-GAN Eq. 16 is biased upwards by the factor (k-1)/(k-2) (12.5 % at
k = 10).  MacKay & Ghahramani (2005) average the inverses instead,
M_k = [1/N sum_i 1/m_k(x_i)]^{-1}, which is unbiased in that model; ``average="inverse"``.

The neighbour search is exact and brute force, in torch, in chunks of query rows and of
reference rows, so memory is bounded by ``query_chunk x ref_chunk`` and never N x N
(:func:`knn_distances`).  Distances of exact duplicates are 0 and make log(T_k/T_j)
infinite, so :func:`levina_bickel` removes duplicate rows first (:func:`unique_rows`)
and reports how many it dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch

__all__ = [
    "AVERAGES",
    "unique_rows",
    "knn_distances",
    "mle_per_point",
    "average_estimates",
    "LevinaBickelResult",
    "levina_bickel",
]

AVERAGES = ("mean", "inverse")
"""``mean``: Eq. 16 of DE-GAN (arithmetic mean of m_k); ``inverse``: MacKay-Ghahramani (inverse of the mean of 1/m_k)."""

ArrayLike = Union[np.ndarray, torch.Tensor]
Progress = Callable[[Iterable, int], Iterable]


def unique_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The distinct rows of ``x`` (first occurrences, original order) and how many duplicates were dropped."""
    x = np.ascontiguousarray(x)
    keys = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return x[first], len(x) - len(first)


def _float32_error_bound(sq_norm_a: torch.Tensor, sq_norm_b_max: float, dim: int) -> torch.Tensor:
    """A bound on |computed - exact| for ||a||^2 + ||b||^2 - 2 a.b evaluated in float32.

    Each term is a sum of at most ``dim`` products; the standard bound for a recursively
    summed dot product is dim * eps * sum |a_i b_i| <= dim * eps * ||a|| ||b|| (Cauchy-
    Schwarz), so the whole expression is off by at most (dim + 2) * eps * (||a|| + ||b||)^2.
    Blocked BLAS sums are far more accurate than that; the bound is deliberately loose.
    """
    eps = float(torch.finfo(torch.float32).eps)
    return (dim + 2) * eps * (sq_norm_a.sqrt() + sq_norm_b_max**0.5) ** 2


def knn_distances(
    x: ArrayLike,
    k: int,
    query_chunk: int = 1024,
    ref_chunk: int = 16384,
    precision: str = "float32",
    margin: int = 8,
    progress: Optional[Progress] = None,
    stats: Optional[dict] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean distances and indices of each row's ``k`` nearest other rows.

    Args:
        x: [N, D] points.
        k: neighbours per point (the point itself excluded, by index); needs k < N.
        query_chunk: query rows per chunk.
        ref_chunk: reference rows per block; memory is O(query_chunk * ref_chunk).
        precision: ``float32``: squared distances ||a||^2 + ||b||^2 - 2 a.b in float32
            pick ``k + margin`` candidates, whose distances are then recomputed in float64
            from coordinate differences, ||a - b||; a row whose k-th distance is not
            separated from the non-candidates by a float32 rounding bound is searched
            again in float64, so the neighbours are exact.  ``float64``: the search in
            float64 (same expansion), distances again from coordinate differences.
        margin: extra float32 candidates per row.
        progress: wraps the iterable of chunks, ``progress(iterable, total)`` (e.g. a tqdm bar).
        stats: if given, ``stats["rechecked_rows"]`` is set to the number of rows searched
            again in float64.

    Returns:
        ``(distances, indices)``, each [N, k], sorted by distance (float64, int64).
    """
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be float32 or float64, got {precision!r}")
    data64 = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(torch.float64)
    if data64.ndim != 2:
        raise ValueError(f"x must be [N, D], got shape {tuple(data64.shape)}")
    n, dim = data64.shape
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N - 1] = [1, {n - 1}], got {k}")
    # Centring changes no distance and shrinks the norms, so the expansion cancels less.
    data64 = data64 - data64.mean(0, keepdim=True)
    data = data64.to(torch.float32) if precision == "float32" else data64
    sq_norms = (data.to(torch.float64) ** 2).sum(1).to(data.dtype)
    candidates = min(k + (margin if precision == "float32" else 0), n - 1)
    max_sq_norm = float(sq_norms.max())

    out_d = np.empty((n, k), dtype=np.float64)
    out_i = np.empty((n, k), dtype=np.int64)
    rechecked = 0
    sq64: Optional[torch.Tensor] = None
    buffer = torch.empty(min(query_chunk, n), min(ref_chunk, n), dtype=data.dtype)
    starts = range(0, n, query_chunk)
    iterator = progress(starts, len(starts)) if progress is not None else starts
    for start in iterator:
        stop = min(start + query_chunk, n)
        rows = torch.arange(start, stop)
        cand_d2, cand_i = _chunk_topk(data, sq_norms, rows, candidates, ref_chunk, buffer)
        # Exact float64 distances of the candidates, from coordinate differences, re-sorted.
        exact = _exact_sq_distances(data64, rows, cand_i)
        exact, order = exact.sort(dim=1)
        cand_i = cand_i.gather(1, order)
        # Rows whose k-th exact squared distance is within the rounding bound of the first
        # non-candidate may have missed a neighbour: search them again in float64.
        if precision == "float32" and candidates < n - 1:
            bound = _float32_error_bound(sq_norms[start:stop].to(torch.float64), max_sq_norm, dim)
            excluded_floor = cand_d2[:, -1].to(torch.float64) - bound
            unsure = torch.nonzero(exact[:, k - 1] >= excluded_floor).flatten()
        else:
            unsure = torch.empty(0, dtype=torch.long)
        d = exact[:, :k].sqrt()
        idx = cand_i[:, :k].clone()
        rechecked += len(unsure)
        if len(unsure):
            if sq64 is None:
                sq64 = (data64**2).sum(1)
            again = rows[unsure]
            _, r_i = _chunk_topk(data64, sq64, again, min(k + margin, n - 1), ref_chunk)
            r_exact, order = _exact_sq_distances(data64, again, r_i).sort(dim=1)
            d[unsure] = r_exact[:, :k].sqrt()
            idx[unsure] = r_i.gather(1, order)[:, :k]
        out_d[start:stop], out_i[start:stop] = d.numpy(), idx.numpy()
    if stats is not None:
        stats["rechecked_rows"] = rechecked
    return out_d, out_i


def _chunk_topk(
    data: torch.Tensor,
    sq_norms: torch.Tensor,
    rows: torch.Tensor,
    count: int,
    ref_chunk: int,
    buffer: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` smallest squared distances (expansion form) of the rows ``rows`` to all other rows.

    Per reference block, ||b||^2 - 2 a.b is written into ``buffer`` (reused, so no large
    allocation per block); ||a||^2 is the same along a row, so it is added only to the
    selected values.
    """
    queries = data[rows]
    q = len(rows)
    best_d: Optional[torch.Tensor] = None
    best_i: Optional[torch.Tensor] = None
    n = len(data)
    if buffer is None or buffer.shape[0] < q or buffer.shape[1] < min(ref_chunk, n) or buffer.dtype != data.dtype:
        buffer = torch.empty(q, min(ref_chunk, n), dtype=data.dtype)
    for r0 in range(0, n, ref_chunk):
        r1 = min(r0 + ref_chunk, n)
        d2 = buffer[:q, : r1 - r0]
        torch.addmm(sq_norms[None, r0:r1], queries, data[r0:r1].T, beta=1.0, alpha=-2.0, out=d2)
        inside = (rows >= r0) & (rows < r1)
        if inside.any():  # the query itself is never its own neighbour
            d2[inside.nonzero().flatten(), rows[inside] - r0] = float("inf")
        take = min(count, r1 - r0)
        block_d, block_i = torch.topk(d2, take, dim=1, largest=False, sorted=False)
        block_i = block_i + r0
        if best_d is None:
            best_d, best_i = block_d, block_i
        else:
            merged_d = torch.cat([best_d, block_d], 1)
            merged_i = torch.cat([best_i, block_i], 1)
            best_d, pos = torch.topk(merged_d, min(count, merged_d.shape[1]), dim=1, largest=False, sorted=False)
            best_i = merged_i.gather(1, pos)
    assert best_d is not None and best_i is not None
    best_d, order = (best_d + sq_norms[rows, None]).sort(dim=1)
    return best_d, best_i.gather(1, order)


def _exact_sq_distances(data64: torch.Tensor, rows: torch.Tensor, candidates: torch.Tensor, rows_per_step: int = 128) -> torch.Tensor:
    """||a - b||^2 in float64 for the query rows ``rows`` and their candidate indices ``candidates`` [q, c]."""
    out = torch.empty(candidates.shape, dtype=torch.float64)
    for s in range(0, len(candidates), rows_per_step):  # small steps keep the gathered block in cache
        diff = data64[candidates[s : s + rows_per_step]]
        diff.sub_(data64[rows[s : s + len(diff)], None, :])
        out[s : s + len(diff)] = torch.einsum("qcd,qcd->qc", diff, diff)
    return out


def mle_per_point(distances: np.ndarray, ks: Iterable[int]) -> np.ndarray:
    """DE-GAN Eq. 15: m_k(x_i) for every point (rows) and every k in ``ks`` (columns).

    ``distances`` is [N, K] with T_1 <= ... <= T_K > 0 in each row; each k needs 2 <= k <= K.
    m_k = 1 / (log T_k - mean_{j<k} log T_j), computed from cumulative sums of log T_j.
    """
    ks = list(ks)
    if any(k < 2 or k > distances.shape[1] for k in ks):
        raise ValueError(f"every k must be in [2, {distances.shape[1]}], got {ks}")
    if (distances <= 0).any():
        raise ValueError("distances must be positive (remove duplicate points first)")
    logs = np.log(distances)
    cum = np.cumsum(logs, axis=1)
    cols = []
    for k in ks:
        inner = logs[:, k - 1] - cum[:, k - 2] / (k - 1)
        with np.errstate(divide="ignore"):
            cols.append(1.0 / inner)  # inner = 0 (T_1 = ... = T_k) gives m_k = inf
    return np.stack(cols, axis=1)


def average_estimates(m: np.ndarray, average: str = "mean") -> np.ndarray:
    """DE-GAN Eq. 16 (``mean``) or MacKay-Ghahramani (``inverse``) over the rows of ``m`` [N, len(ks)]."""
    if average == "mean":
        return m.mean(axis=0)
    if average == "inverse":
        return 1.0 / (1.0 / m).mean(axis=0)
    raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")


@dataclass
class LevinaBickelResult:
    """M_k over a range of k, both averages, and what was done to the data.

    Attributes:
        ks: the k values.
        mean: DE-GAN Eq. 16, the arithmetic mean of m_k (the paper's definition).
        inverse: MacKay-Ghahramani, [mean of 1/m_k]^{-1}.
        per_point_sd: standard deviation of m_k(x_i) over the points.
        n_points: points used (after removing duplicates).
        n_duplicates: duplicate rows removed.
        dim: ambient dimension D.
        rechecked_rows: rows whose float32 search was redone in float64 (see :func:`knn_distances`).
    """

    ks: list[int]
    mean: np.ndarray
    inverse: np.ndarray
    per_point_sd: np.ndarray
    n_points: int
    n_duplicates: int
    dim: int
    rechecked_rows: int = 0

    def estimate(self, average: str = "mean") -> np.ndarray:
        """M_k by the chosen average."""
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        return self.mean if average == "mean" else self.inverse


def levina_bickel(
    x: ArrayLike,
    k_min: int,
    k_max: int,
    query_chunk: int = 1024,
    ref_chunk: int = 16384,
    precision: str = "float32",
    progress: Optional[Progress] = None,
) -> LevinaBickelResult:
    """M_k (DE-GAN Eq. 15-16, both averages) for k = k_min..k_max of the rows of ``x`` [N, D].

    Duplicate rows are removed first (their zero distances would make DE-GAN Eq. 15 0 or
    undefined); at least k_max + 1 distinct rows are needed.
    """
    points = np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x)
    if points.ndim != 2:
        raise ValueError(f"x must be [N, D], got shape {points.shape}")
    if not 2 <= k_min <= k_max:
        raise ValueError(f"need 2 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    points, duplicates = unique_rows(points)
    if len(points) <= k_max:
        raise ValueError(f"k_max = {k_max} needs at least {k_max + 1} distinct points, got {len(points)}")
    stats: dict = {}
    distances, _ = knn_distances(points, k_max, query_chunk, ref_chunk, precision, progress=progress, stats=stats)
    ks = list(range(k_min, k_max + 1))
    m = mle_per_point(distances, ks)
    return LevinaBickelResult(
        ks=ks,
        mean=average_estimates(m, "mean"),
        inverse=average_estimates(m, "inverse"),
        per_point_sd=m.std(axis=0),
        n_points=len(points),
        n_duplicates=duplicates,
        dim=points.shape[1],
        rechecked_rows=stats.get("rechecked_rows", 0),
    )
