"""Training-noise level for Gaussian noise injection in I2I translation (seed "I2I Gaussian noise injection").

Set-up of the poster (Theorem 2 and the corollary "Training Noise Intensity"): the source
image X ~ N(mu_s, Sigma_s) in d dimensions.  In training the generator sees
X_bar = X + sigma_t N with N ~ N(0, I_d); at inference it sees X_hat = X + E with
E ~ N(0, Sigma_e).  Both inputs are Gaussian::

    P_bar = N(mu_s, Sigma_s + sigma_t^2 I)      (training input)
    P_hat = N(mu_s, Sigma_s + Sigma_e)          (inference input)

and rho(sigma_t^2, Sigma_e) is the KL divergence between them.  Reading choices (the
I2I poster does not print its Eq. 6-7):

* **Direction.**  Theorem 3 writes theta = D_KL(P_hat_{X+E} || P_bar_{X+sigma_t N}),
  inference distribution first; we read rho the same way (``direction="inference"``).
  This is the reading under which the stated average optimum lambda_max/2 holds: with
  Sigma_e = sigma_e^2 I and r_i = (lambda_i + sigma_e^2)/(lambda_i + sigma_t^2) on the
  eigenvalues lambda_i of Sigma_s,

      rho = 1/2 sum_i (r_i - 1 - ln r_i),

  whose mean over sigma_e^2 ~ U(0, lambda_max) is minimised exactly at sigma_t^2 =
  E[sigma_e^2] = lambda_max/2 in every coordinate.  The reverse order
  (``direction="training"``, r_i -> 1/r_i) gives another optimum,
  lambda + sigma_t^2 = 1 / E[1/(lambda + sigma_e^2)] per coordinate, which is not
  lambda_max/2; :func:`average_optimal_sigma_t2` computes either.
* **Joint or marginal.**  rho is stated for the joint laws of (input, G(input)); for a
  deterministic G the map x -> (x, G(x)) is injective, so the KL of the joints equals
  the KL of the inputs computed here.
* **Noise added, not whitened.**  The noise is added to the raw source (covariance
  Sigma_s + sigma^2 I); the source is not whitened.  Whitening would make every
  lambda_i = 1.  The average optimum lambda_max/2 does not depend on the spectrum;
  the minimax optimum does.
* **lambda_max** is the top of the inference-noise range, 0 <= sigma_e^2 <= lambda_max
  (the poster's M).  The name suggests the largest eigenvalue of Sigma_s, and the
  command uses that as its default, but nothing here needs the two to be equal.

The minimax optimum sigma_t,o^2 = argmin_{sigma_t^2} max_{0 <= sigma_e^2 <= lambda_max} rho
satisfies rho(sigma_t,o^2, 0) = rho(sigma_t,o^2, lambda_max I) (stated); with the forward
direction the equalising equation reads sum_i lambda_max/(lambda_i + s) =
sum_i ln(1 + lambda_max/lambda_i), and for an isotropic source lambda_i = lambda it has
the closed form s = lambda_max / ln(1 + lambda_max/lambda) - lambda (our algebra, not the
poster's).  The same equation is the stationarity condition of the *reverse-order*
average, sum_i E[1/(lambda_i + sigma_e^2)] = sum_i 1/(lambda_i + s), so the forward
minimax optimum and the reverse-order average optimum coincide for every spectrum.
Every lambda_i must be positive: with a zero eigenvalue rho(s, 0) is infinite.
Because the minimax equation weighs the smallest lambda_i most, the number of eigenvalues
kept from a sample covariance is a setting (:func:`minimax_by_truncation` shows how the
minimax optimum moves with it); the average optimum lambda_max/2 does not depend on it.

The poster's other two theorems are identities, computed here so that the tests can
check them against independent computations:

* **Theorem 1 (Eq. 1-2)**, dD_f(P_bar || Q_bar)/dsigma^2 = -eta_f/2, for jointly Gaussian
  (X, Y) with the noise on X only (:func:`theorem1_divergence`, :func:`theorem1_eta`;
  f = KL or squared Hellinger, the closed-form cases).
* **Theorem 3 (Eq. 9-10)** for a one-dimensional Gaussian-mixture X
  (:class:`GaussianMixture1D`, :func:`theorem3_theta`, :func:`theorem3_eq10`), and Eq. 10 in
  closed form for a Gaussian X (:func:`theorem3_eq10_gaussian`).  Readings: E independent
  of X (Eq. 9 fails without it), and both scores of Eq. 10 evaluated at the same point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from scipy import integrate, optimize

__all__ = [
    "DIRECTIONS",
    "gaussian_kl",
    "rho_general",
    "rho",
    "worst_case_rho",
    "average_rho",
    "minimax_sigma_t2",
    "minimax_sigma_t2_grid",
    "isotropic_minimax_sigma_t2",
    "average_optimal_sigma_t2",
    "average_optimal_sigma_t2_grid",
    "TheoremChecks",
    "theorem2_checks",
    "spectrum_from_data",
    "TRUNCATIONS",
    "parse_truncation",
    "truncation_label",
    "minimax_by_truncation",
    "theorem1_noisy_covariance",
    "theorem1_divergence",
    "theorem1_eta",
    "F_DIVERGENCES",
    "GaussianMixture1D",
    "theorem3_theta",
    "theorem3_eq10",
    "theorem3_eq10_gaussian",
    "THEOREM3_NOISES",
]

DIRECTIONS = ("inference", "training")
"""Which distribution comes first in the KL: inference P_hat (default, as Theorem 3) or training P_bar."""

Float = Union[float, np.ndarray]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _check_spectrum(eigenvalues: np.ndarray) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if lam.size == 0:
        raise ValueError("the source spectrum is empty")
    if not np.isfinite(lam).all() or (lam <= 0).any():
        bad = lam[~np.isfinite(lam) | (lam <= 0)]
        raise ValueError(f"source eigenvalues must be positive and finite, got {bad[:5].tolist()}")
    return lam


def gaussian_kl(mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray) -> float:
    """D_KL(N(mean_p, cov_p) || N(mean_q, cov_q)) in nats, closed form.

    1/2 [ tr(cov_q^-1 cov_p) + (mu_q - mu_p)^T cov_q^-1 (mu_q - mu_p) - d + ln det cov_q - ln det cov_p ],
    with Cholesky factors (both covariances must be positive definite).
    """
    mean_p, mean_q = np.asarray(mean_p, float).ravel(), np.asarray(mean_q, float).ravel()
    cov_p, cov_q = np.atleast_2d(np.asarray(cov_p, float)), np.atleast_2d(np.asarray(cov_q, float))
    d = mean_p.size
    lp = np.linalg.cholesky(cov_p)
    lq = np.linalg.cholesky(cov_q)
    a = np.linalg.solve(lq, lp)  # L_q^-1 L_p: tr(cov_q^-1 cov_p) = ||a||_F^2
    b = np.linalg.solve(lq, mean_q - mean_p)
    logdet_q = 2.0 * np.log(np.diag(lq)).sum()
    logdet_p = 2.0 * np.log(np.diag(lp)).sum()
    return 0.5 * float((a**2).sum() + (b**2).sum() - d + logdet_q - logdet_p)


def rho_general(sigma_t2: float, cov_e: np.ndarray, cov_s: np.ndarray, direction: str = "inference") -> float:
    """rho(sigma_t^2, Sigma_e) for any source covariance Sigma_s and inference-noise covariance Sigma_e.

    KL(N(mu_s, Sigma_s + Sigma_e) || N(mu_s, Sigma_s + sigma_t^2 I)) for ``direction="inference"``,
    the two swapped for ``"training"``; mu_s cancels.
    """
    _check_direction(direction)
    cov_s = np.atleast_2d(np.asarray(cov_s, float))
    zero = np.zeros(len(cov_s))
    inference = cov_s + np.atleast_2d(np.asarray(cov_e, float))
    training = cov_s + sigma_t2 * np.eye(len(cov_s))
    if direction == "inference":
        return gaussian_kl(zero, inference, zero, training)
    return gaussian_kl(zero, training, zero, inference)


def rho(sigma_t2: Float, sigma_e2: Float, eigenvalues: np.ndarray, direction: str = "inference") -> Float:
    """rho(sigma_t^2, sigma_e^2 I) = 1/2 sum_i (r_i - 1 - ln r_i) for isotropic inference noise.

    r_i = (lambda_i + sigma_e^2) / (lambda_i + sigma_t^2) (inverted for ``direction="training"``),
    lambda_i the eigenvalues of Sigma_s: both covariances share Sigma_s's eigenvectors.
    ``sigma_t2`` and ``sigma_e2`` broadcast against each other.
    """
    _check_direction(direction)
    lam = _check_spectrum(eigenvalues)
    s = np.asarray(sigma_t2, dtype=np.float64)[..., None]
    e = np.asarray(sigma_e2, dtype=np.float64)[..., None]
    r = (lam + e) / (lam + s)
    if direction == "training":
        r = 1.0 / r
    value = 0.5 * (r - 1.0 - np.log(r)).sum(-1)
    return float(value) if value.ndim == 0 else value


def worst_case_rho(sigma_t2: float, eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference", grid: int = 401) -> float:
    """max over sigma_e^2 in [0, lambda_max] of rho, on a grid of ``grid`` points (endpoints included).

    No convexity is assumed (for the reverse direction rho need not be convex in sigma_e^2).
    """
    e = np.linspace(0.0, lambda_max, grid)
    return float(np.max(rho(sigma_t2, e, eigenvalues, direction)))


def average_rho(sigma_t2: float, eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference") -> float:
    """E_{sigma_e^2 ~ U(0, lambda_max)} rho(sigma_t^2, sigma_e^2 I), by adaptive quadrature (scipy quad)."""
    value, _ = integrate.quad(lambda e: rho(sigma_t2, e, eigenvalues, direction), 0.0, lambda_max, epsabs=1e-12, epsrel=1e-11, limit=200)
    return value / lambda_max


def minimax_sigma_t2(eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference") -> float:
    """The root in (0, lambda_max) of rho(s, 0) = rho(s, lambda_max I) (Brent's method).

    rho(s, 0) rises and rho(s, lambda_max I) falls in s on [0, lambda_max], from
    rho(0, 0) = 0 to rho(lambda_max, lambda_max I) = 0, so the root is unique.  It is the
    minimax optimum when the worst case over sigma_e^2 is at an end of the range, which
    convexity in sigma_e^2 (Theorem 2.1) guarantees for the forward direction;
    :func:`minimax_sigma_t2_grid` checks that without assuming it.
    """
    lam = _check_spectrum(eigenvalues)

    def gap(s: float) -> float:
        return rho(s, 0.0, lam, direction) - rho(s, lambda_max, lam, direction)

    return optimize.brentq(gap, 0.0, lambda_max, xtol=1e-14 * max(lambda_max, 1.0), rtol=1e-14, maxiter=500)


def minimax_sigma_t2_grid(
    eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference", t_grid: int = 2001, e_grid: int = 401, t_top: float = 2.0
) -> tuple[float, float]:
    """Direct minimax on grids: argmin over sigma_t^2 in [0, t_top * lambda_max] of max over sigma_e^2 in [0, lambda_max].

    Returns (sigma_t,o^2 on the grid, the grid step): the answer is good to about one step.
    """
    lam = _check_spectrum(eigenvalues)
    s = np.linspace(0.0, t_top * lambda_max, t_grid)
    e = np.linspace(0.0, lambda_max, e_grid)
    worst = np.empty(t_grid)
    for start in range(0, t_grid, 256):  # bounded memory: 256 x e_grid x d at a time
        worst[start : start + 256] = rho(s[start : start + 256, None], e[None, :], lam, direction).max(axis=1)
    return float(s[np.argmin(worst)]), float(s[1] - s[0])


def isotropic_minimax_sigma_t2(source_variance: float, lambda_max: float) -> float:
    """Closed form of the forward-direction equalising root for Sigma_s = lambda I (our algebra).

    lambda_max / (lambda + s) = ln(1 + lambda_max / lambda)  =>  s = lambda_max / ln(1 + lambda_max/lambda) - lambda.
    """
    lam, m = float(source_variance), float(lambda_max)
    return m / math.log1p(m / lam) - lam


def average_optimal_sigma_t2(
    eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference", t_top: float = 2.0
) -> float:
    """argmin over sigma_t^2 in [0, t_top * lambda_max] of :func:`average_rho` (bounded Brent minimisation)."""
    lam = _check_spectrum(eigenvalues)
    found = optimize.minimize_scalar(
        lambda s: average_rho(s, lam, lambda_max, direction),
        bounds=(0.0, t_top * lambda_max),
        method="bounded",
        options={"xatol": 1e-10 * max(lambda_max, 1e-300)},
    )
    return float(found.x)


def average_optimal_sigma_t2_grid(
    eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference", t_grid: int = 2001, e_grid: int = 401, t_top: float = 2.0
) -> tuple[float, float]:
    """The average over a sigma_e^2 grid (trapezoid rule) minimised over a sigma_t^2 grid; (argmin, grid step)."""
    lam = _check_spectrum(eigenvalues)
    s = np.linspace(0.0, t_top * lambda_max, t_grid)
    e = np.linspace(0.0, lambda_max, e_grid)
    mean = np.empty(t_grid)
    for start in range(0, t_grid, 64):
        values = rho(s[start : start + 64, None], e[None, :], lam, direction)
        mean[start : start + 64] = np.trapezoid(values, e, axis=1) / lambda_max
    return float(s[np.argmin(mean)]), float(s[1] - s[0])


@dataclass
class TheoremChecks:
    """Numerical checks of Theorem 2 on a grid.

    Attributes:
        min_second_difference: smallest second difference of rho in sigma_e^2 (>= 0 if convex, 2.1).
        max_property2_gap: largest rho(s, e I) - rho(0, e I) over 0 < s <= lambda_max,
            s/2 <= e <= lambda_max (< 0 if property 2.2 holds there).
    """

    min_second_difference: float
    max_property2_gap: float


def theorem2_checks(eigenvalues: np.ndarray, lambda_max: float, direction: str = "inference", grid: int = 201) -> TheoremChecks:
    """Theorem 2.1 (convexity of rho in sigma_e^2) and 2.2 (rho(s, Sigma_e) < rho(0, Sigma_e) if Sigma_e >= s/2 I)."""
    lam = _check_spectrum(eigenvalues)
    s = np.linspace(0.0, lambda_max, grid)
    e = np.linspace(0.0, lambda_max, grid)
    values = rho(s[:, None], e[None, :], lam, direction)  # [s, e]
    second = values[:, 2:] - 2 * values[:, 1:-1] + values[:, :-2]
    at_zero = rho(0.0, e, lam, direction)
    region = (s[:, None] > 0) & (e[None, :] >= s[:, None] / 2)
    gap = (values - at_zero[None, :])[region]
    return TheoremChecks(min_second_difference=float(second.min()), max_property2_gap=float(gap.max()))


def spectrum_from_data(
    x: np.ndarray, max_dim: Optional[int], floor: float = 1e-9, svdvals: Optional[Callable[[np.ndarray], np.ndarray]] = None
) -> tuple[np.ndarray, float, int]:
    """Eigenvalues of the sample covariance of the rows of ``x`` [N, D]: the top ``max_dim`` above ``floor``.

    Computed as squared singular values of the centred data / (N - 1), so no D x D matrix
    is formed.  ``max_dim=None`` keeps every eigenvalue above the floor (at most N - 1 of
    them: with fewer images than pixels the sample covariance is singular).  Returns
    (eigenvalues, descending; share of the total variance they hold; number of positive
    eigenvalues dropped).  Eigenvalues at or below ``floor`` times the largest (constant
    pixels, rounding) are always dropped: rho(s, 0) is infinite on a zero eigenvalue.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an [N, D] array with N >= 2, got shape {x.shape}")
    if max_dim is not None and max_dim < 1:
        raise ValueError(f"max_dim must be >= 1 or None (all), got {max_dim}")
    centred = x - x.mean(0, keepdims=True)
    sv = (svdvals or (lambda a: np.linalg.svd(a, compute_uv=False)))(centred)
    eig = np.sort(sv**2 / (len(x) - 1))[::-1]
    total = eig.sum()
    positive = eig[eig > floor * max(eig[0], 1e-300)]
    kept = positive if max_dim is None else positive[:max_dim]
    if kept.size == 0:
        raise ValueError("the data has no variance")
    return kept, float(kept.sum() / total), int(positive.size - kept.size)


# ---------------------------------------------------------------------- truncation of the spectrum
TRUNCATIONS: tuple[Optional[int], ...] = (8, 16, 32, 64, 128, None)
"""Numbers k of top eigenvalues at which :func:`minimax_by_truncation` reports the minimax optimum (None = all)."""


def parse_truncation(value: Union[str, int, None]) -> Optional[int]:
    """``"all"`` or None -> None (every eigenvalue above the floor); else a count k >= 1."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    k = int(value)
    if k < 1:
        raise ValueError(f"a truncation must be a count >= 1 or 'all', got {value!r}")
    return k


def truncation_label(max_dim: Optional[int]) -> str:
    """``"top 64 eigenvalues"`` or ``"all positive eigenvalues"``: how the theory's spectrum was cut, for tables and logs."""
    return "all positive eigenvalues" if max_dim is None else f"top {max_dim} eigenvalues"


def minimax_by_truncation(
    eigenvalues: np.ndarray, lambda_max: float, truncations: Sequence[Optional[int]] = TRUNCATIONS, direction: str = "inference"
) -> list[dict[str, Any]]:
    """The minimax optimum :func:`minimax_sigma_t2` on the top k of ``eigenvalues`` for each k of ``truncations``.

    ``eigenvalues``: the full positive spectrum (any order).  The average optimum
    lambda_max/2 does not depend on k; the minimax one does, through the smallest kept
    eigenvalues (module docstring: sum_i lambda_max/(lambda_i + s) = sum_i ln(1 + lambda_max/lambda_i)).
    Returns one dict per k: ``k`` (None = all), ``kept`` (min(k, number available)),
    ``variance_share`` (of the given spectrum), ``smallest_kept`` and ``minimax_sigma_t2``.
    """
    lam = np.sort(_check_spectrum(eigenvalues))[::-1]
    total = lam.sum()
    out = []
    for k in truncations:
        kept = lam if k is None else lam[: parse_truncation(k)]
        out.append(
            {
                "k": None if k is None else int(k),
                "kept": int(kept.size),
                "variance_share": float(kept.sum() / total),
                "smallest_kept": float(kept[-1]),
                "minimax_sigma_t2": minimax_sigma_t2(kept, lambda_max, direction),
            }
        )
    return out


# ---------------------------------------------------------------------- Theorem 1 (Eq. 1-2)
F_DIVERGENCES = ("kl", "hellinger")
"""Generators f of :func:`theorem1_divergence`: ``kl`` f(t) = t ln t, ``hellinger`` f(t) = (sqrt(t) - 1)^2."""


def theorem1_noisy_covariance(cov: np.ndarray, sigma2: float, dim_x: int) -> np.ndarray:
    """Covariance of (X + sigma N, Y) for (X, Y) of covariance ``cov``, X its first ``dim_x`` coordinates (I2I poster Theorem 1).

    Only the source X is perturbed; N ~ N(0, I_d) is independent of (X, Y).
    """
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if not 1 <= dim_x <= len(cov):
        raise ValueError(f"dim_x must be in [1, {len(cov)}], got {dim_x}")
    mask = np.zeros(len(cov))
    mask[:dim_x] = 1.0
    return cov + sigma2 * np.diag(mask)


def _check_f(f: str) -> None:
    if f not in F_DIVERGENCES:
        raise ValueError(f"f must be one of {F_DIVERGENCES}, got {f!r}")


def _bhattacharyya(mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray) -> float:
    """int sqrt(p q) for two Gaussians (closed form)."""
    m = (cov_p + cov_q) / 2
    delta = mean_q - mean_p
    _, logdet_m = np.linalg.slogdet(m)
    _, logdet_p = np.linalg.slogdet(cov_p)
    _, logdet_q = np.linalg.slogdet(cov_q)
    quad = float(delta @ np.linalg.solve(m, delta))
    return math.exp(0.25 * (logdet_p + logdet_q) - 0.5 * logdet_m - quad / 8)


def theorem1_divergence(
    sigma2: float, mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray, dim_x: int, f: str = "kl"
) -> float:
    """D_f(P_bar_{X_bar,Y} || Q_bar_{X_bar,Y}) of I2I poster Theorem 1 for Gaussian joints P = N(mean_p, cov_p), Q = N(mean_q, cov_q).

    X_bar = X + sigma N on the first ``dim_x`` coordinates (:func:`theorem1_noisy_covariance`).
    Closed forms: ``kl`` (f(t) = t ln t) by :func:`gaussian_kl`; ``hellinger``
    (f(t) = (sqrt(t) - 1)^2) as 2 - 2 int sqrt(p_bar q_bar).
    """
    _check_f(f)
    mean_p, mean_q = np.asarray(mean_p, float).ravel(), np.asarray(mean_q, float).ravel()
    cp, cq = theorem1_noisy_covariance(cov_p, sigma2, dim_x), theorem1_noisy_covariance(cov_q, sigma2, dim_x)
    if f == "kl":
        return gaussian_kl(mean_p, cp, mean_q, cq)
    return 2.0 - 2.0 * _bhattacharyya(mean_p, cp, mean_q, cq)


def theorem1_eta(
    sigma2: float, mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray, dim_x: int, f: str = "kl"
) -> float:
    """eta_f(sigma^2) of I2I poster Eq. 2 for Gaussian joints, closed form; I2I poster Eq. 1 says dD_f/dsigma^2 = -eta_f/2.

    eta_f = E_{P_bar}[ t f''(t) ||grad_x log p_bar - grad_x log q_bar||^2 ], t = p_bar/q_bar, the
    gradient over the noisy source x_bar only (the first ``dim_x`` coordinates).  With
    A = cov_p_bar^-1, B = cov_q_bar^-1 (rows of x: A_x, B_x) the score difference is the affine
    map K z + c, K = B_x - A_x, c = A_x mean_p - B_x mean_q.  The weight t f''(t) is 1 for
    ``kl``; for ``hellinger`` it is 1/(2 sqrt t), so eta = 1/2 int sqrt(p_bar q_bar) ||K z + c||^2,
    and sqrt(p_bar q_bar) is the Bhattacharyya coefficient times N(m_h, C_h),
    C_h = ((A + B)/2)^-1, m_h = C_h (A mean_p + B mean_q)/2.  Both are
    E_{N(m, C)} ||K z + c||^2 = tr(K C K^T) + ||K m + c||^2.
    """
    _check_f(f)
    mean_p, mean_q = np.asarray(mean_p, float).ravel(), np.asarray(mean_q, float).ravel()
    cp, cq = theorem1_noisy_covariance(cov_p, sigma2, dim_x), theorem1_noisy_covariance(cov_q, sigma2, dim_x)
    a, b = np.linalg.inv(cp), np.linalg.inv(cq)
    k = (b - a)[:dim_x]
    c = a[:dim_x] @ mean_p - b[:dim_x] @ mean_q

    def expected_square(m: np.ndarray, cov: np.ndarray) -> float:
        shift = k @ m + c
        return float(np.trace(k @ cov @ k.T) + shift @ shift)

    if f == "kl":
        return expected_square(mean_p, cp)
    ch = np.linalg.inv((a + b) / 2)
    mh = ch @ (a @ mean_p + b @ mean_q) / 2
    return 0.5 * _bhattacharyya(mean_p, cp, mean_q, cq) * expected_square(mh, ch)


# ---------------------------------------------------------------------- Theorem 3 (Eq. 9-10)
@dataclass(frozen=True)
class GaussianMixture1D:
    """A one-dimensional Gaussian mixture: the "arbitrary distribution" of X in the checks of I2I poster Theorem 3.

    Attributes:
        weights: mixture weights (positive, summing to 1).
        means: component means.
        variances: component variances (positive).
    """

    weights: tuple[float, ...]
    means: tuple[float, ...]
    variances: tuple[float, ...]

    def __post_init__(self) -> None:
        w, v = np.asarray(self.weights, float), np.asarray(self.variances, float)
        if not (len(w) == len(self.means) == len(v) >= 1):
            raise ValueError("weights, means and variances must have the same length >= 1")
        if (w <= 0).any() or abs(w.sum() - 1) > 1e-12 or (v <= 0).any():
            raise ValueError("weights must be positive and sum to 1; variances must be positive")

    def smoothed(self, noise_variance: float) -> "GaussianMixture1D":
        """The law of X + sqrt(noise_variance) N, N ~ N(0, 1) independent of X: every variance grows by it."""
        return GaussianMixture1D(self.weights, self.means, tuple(v + noise_variance for v in self.variances))

    def _terms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, float)[..., None]
        m, v, w = np.asarray(self.means), np.asarray(self.variances), np.asarray(self.weights)
        log_terms = np.log(w) - 0.5 * np.log(2 * np.pi * v) - 0.5 * (x - m) ** 2 / v
        return log_terms, -(x - m) / v

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        log_terms, _ = self._terms(x)
        top = log_terms.max(-1, keepdims=True)
        return (top + np.log(np.exp(log_terms - top).sum(-1, keepdims=True)))[..., 0]

    def score(self, x: np.ndarray) -> np.ndarray:
        """d/dx log p(x): the posterior-weighted mean of the component scores."""
        log_terms, scores = self._terms(x)
        post = np.exp(log_terms - log_terms.max(-1, keepdims=True))
        return (post * scores).sum(-1) / post.sum(-1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
        return np.asarray(self.means)[k] + np.sqrt(np.asarray(self.variances))[k] * rng.standard_normal(n)

    def grid(self, points: int = 20001, sds: float = 12.0, extra_sd: float = 0.0) -> np.ndarray:
        """An evenly spaced quadrature grid covering every component +- ``sds`` standard deviations."""
        m, sd = np.asarray(self.means), np.sqrt(np.asarray(self.variances) + extra_sd**2)
        return np.linspace((m - sds * sd).min(), (m + sds * sd).max(), points)


THEOREM3_NOISES = ("gaussian", "uniform", "signal_dependent")
"""Inference noise E of :func:`theorem3_theta`: the two signal-independent kinds, and one that is not."""


def _inference_density(source: GaussianMixture1D, sigma_e2: float, noise: str, x: np.ndarray) -> np.ndarray:
    """Density of X_hat = X + E on the points ``x``."""
    from scipy import special

    if noise == "gaussian":
        return np.exp(source.smoothed(sigma_e2).logpdf(x))
    if noise == "uniform":  # E ~ U(-a, a), a = sqrt(3 sigma_e^2): each component is a normal CDF difference
        a = math.sqrt(3.0 * sigma_e2)
        m, sd, w = np.asarray(source.means), np.sqrt(np.asarray(source.variances)), np.asarray(source.weights)
        lo, hi = (x[:, None] - a - m) / sd, (x[:, None] + a - m) / sd
        mass = np.where(lo > 0, special.ndtr(-lo) - special.ndtr(-hi), special.ndtr(hi) - special.ndtr(lo))
        return (w * mass).sum(-1) / (2 * a)
    # E | X = x ~ N(0, sigma_e^2 g(x)), g(x) = (1 + x^2) / E[1 + X^2]: the same power, variance growing with the signal
    # (the salt-and-pepper law's E[(x_hat - x)^2 | x] = p (1 + x^2)); p_hat by quadrature over x.
    second = float(np.dot(source.weights, np.asarray(source.means) ** 2 + np.asarray(source.variances)))
    grid = source.grid(6001, sds=10.0)
    var = sigma_e2 * (1 + grid**2) / (1 + second)
    weight = np.exp(source.logpdf(grid) - 0.5 * np.log(2 * np.pi * var))
    out = np.empty(len(x))
    for start in range(0, len(x), 512):  # bounded memory: 512 x 6001 at a time
        part = x[start : start + 512, None]
        out[start : start + 512] = np.trapezoid(weight * np.exp(-0.5 * (part - grid) ** 2 / var), grid, axis=1)
    return out


def theorem3_theta(
    sigma_t2: float, sigma_e2: float, source: GaussianMixture1D, noise: str = "gaussian", points: int = 20001
) -> float:
    """theta(sigma_t^2, sigma_e^2) = D_KL(P_hat_{X+E} || P_bar_{X+sigma_t N}) of I2I poster Theorem 3, one dimension, by quadrature.

    X: a Gaussian mixture (a non-Gaussian source with finite entropy).  E: ``noise`` of
    variance ``sigma_e2``, independent of X for ``gaussian`` (theta_g) and ``uniform``;
    ``signal_dependent`` has E | X = x ~ N(0, sigma_e^2 (1 + x^2)/E[1 + X^2]), the same power
    but not independent of X, outside the theorem's assumptions (its Eq. 9 then fails:
    theta - theta_g is of order sigma_e^2).  sigma_t2 > 0 (p_bar must be smooth; with
    sigma_t = 0 and a singular X the KL is infinite).
    """
    if noise not in THEOREM3_NOISES:
        raise ValueError(f"noise must be one of {THEOREM3_NOISES}, got {noise!r}")
    if not (sigma_t2 > 0 and sigma_e2 > 0):
        raise ValueError(f"sigma_t2 and sigma_e2 must be > 0, got {sigma_t2}, {sigma_e2}")
    x = source.grid(points, extra_sd=math.sqrt(max(sigma_e2, sigma_t2)))
    p_hat = _inference_density(source, sigma_e2, noise, x)
    log_bar = source.smoothed(sigma_t2).logpdf(x)
    with np.errstate(divide="ignore"):
        integrand = np.where(p_hat > 0, p_hat * (np.log(np.where(p_hat > 0, p_hat, 1.0)) - log_bar), 0.0)
    return float(np.trapezoid(integrand, x))


def theorem3_eq10(sigma_t2: float, sigma_e2: float, source: GaussianMixture1D, points: int = 20001) -> float:
    """Right-hand side of I2I poster Eq. 10 for a one-dimensional Gaussian-mixture X, by quadrature.

    E_{p_hat}[ -1/2 (d/dx log p_hat)^2 + 1/2 (d/dx log p_hat)(d/dx log p_bar) ], both scores
    taken at the same point x_hat (the poster writes the second with x_bar as its argument),
    p_hat the law of X + sigma_e N and p_bar of X + sigma_t N.  Eq. 10 says it equals
    d theta_g / d sigma_e^2 (:func:`theorem3_theta` with ``noise="gaussian"``); it is zero at
    sigma_e^2 = sigma_t^2, where theta_g has its minimum 0.
    """
    hat, bar = source.smoothed(sigma_e2), source.smoothed(sigma_t2)
    x = hat.grid(points)
    s_hat = hat.score(x)
    integrand = np.exp(hat.logpdf(x)) * (-0.5 * s_hat**2 + 0.5 * s_hat * bar.score(x))
    return float(np.trapezoid(integrand, x))


def theorem3_eq10_gaussian(sigma_t2: float, sigma_e2: float, eigenvalues: np.ndarray) -> float:
    """I2I poster Eq. 10 for a Gaussian source with covariance eigenvalues lambda_i: 1/2 sum_i (1/(lambda_i + sigma_t^2) - 1/(lambda_i + sigma_e^2)).

    The scores are -x_i/(lambda_i + sigma_e^2) and -x_i/(lambda_i + sigma_t^2) per eigen-coordinate,
    and E x_i^2 = lambda_i + sigma_e^2 under p_hat.  It is d/d sigma_e^2 of :func:`rho` (inference
    first), so theta_g = rho for a Gaussian source.
    """
    lam = _check_spectrum(eigenvalues)
    return float(0.5 * (1.0 / (lam + sigma_t2) - 1.0 / (lam + sigma_e2)).sum())
