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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

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
    x: np.ndarray, max_dim: int, floor: float = 1e-9, svdvals: Optional[Callable[[np.ndarray], np.ndarray]] = None
) -> tuple[np.ndarray, float, int]:
    """Eigenvalues of the sample covariance of the rows of ``x`` [N, D]: the top ``max_dim`` above ``floor``.

    Computed as squared singular values of the centred data / (N - 1), so no D x D matrix
    is formed.  Returns (eigenvalues, descending; share of the total variance they hold;
    number of positive eigenvalues dropped).  Zero eigenvalues (constant pixels) are
    always dropped: rho(s, 0) is infinite on them.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an [N, D] array with N >= 2, got shape {x.shape}")
    centred = x - x.mean(0, keepdims=True)
    sv = (svdvals or (lambda a: np.linalg.svd(a, compute_uv=False)))(centred)
    eig = np.sort(sv**2 / (len(x) - 1))[::-1]
    total = eig.sum()
    positive = eig[eig > floor * max(eig[0], 1e-300)]
    kept = positive[:max_dim]
    if kept.size == 0:
        raise ValueError("the data has no variance")
    return kept, float(kept.sum() / total), int(positive.size - kept.size)
