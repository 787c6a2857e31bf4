"""The divergence-entropy function d(eps) of the seed "noise dimension" paper (Noise-dim Sec. 4.4, Eq. 11).

A generator whose noise carries at most eps bits cannot output a distribution q with more
than eps bits of entropy, so the best divergence it can reach from the data distribution p
over a finite alphabet is (Noise-dim Eq. 11)::

    d(eps) = min_q  D(p, q)   s.t.   H(q) <= eps,   q >= 0,   sum(q) = 1.

D is convex in q and H concave, so the feasible set {H(q) <= eps} is not convex. The paper
solves Noise-dim Eq. 11 as a disciplined convex-concave program (DCCP): variable q over the alphabet,
the simplex constraints, the concave entropy on the small side of ``<=``.
:func:`solve_dccp` builds exactly that problem in cvxpy and hands it to ``dccp``
(a local heuristic that linearises the entropy around the current iterate).

:func:`solve_exact` solves the same problem by another route. For eps < H(p) every global
minimiser lies on H(q) = eps (a local minimum of a convex D inside {H < eps} would be its
global one, q = p), is ordered like p (D is a sum of submodular terms f(p_i, q_i), so
swapping two masses of q into p's order keeps H and never raises D), and meets the Lagrange
condition dD/dq_i = nu (log q_i + 1) - lam with nu >= 0 (nats). Per symbol that condition
has two roots, an increasing and a decreasing branch in p_i; ordering allows at most one
symbol of distinct p on the decreasing branch, necessarily the argmax, and among tied
symbols two on that branch fail the second-order condition. What remains is one curve of
Lagrange points from q = p to the point mass on argmax p:

* ``kl``: KL(p||q), the paper's objective. The condition is p_i/q_i = a - nu log q_i; with
  u_i = p_i/(mu q_i) it becomes u_i - log u_i = const - log p_i, the two branches u >= 1
  and u <= 1 of a Lambert-W equation. With v = u_argmax in (0, inf) as parameter,
  q_i is proportional to p_i / u_i(v) (normalisation explicit), q = p as v -> inf. For
  v >= 1 the entropy provably falls as v falls (a covariance argument, in
  :class:`_KLCurve`); for v < 1, once the argmax has crossed branches, it can rise again
  (large flat alphabets, ties at the top), so that part is scanned.
* ``reverse-kl``: KL(q||p) = -H(q) + cross-entropy, and at fixed entropy the least
  cross-entropy is a tempered q proportional to p^beta (beta >= 1), so q = p^beta / Z with
  H(q) = eps; when eps is below log m for an m-fold tie at the top, d = -log p_max - eps.
* ``js``: Jensen-Shannon. The condition is q_i^alpha proportional to (p_i + q_i)/2, alpha in
  (0, 1); in t_i = q_i/(p_i + q_i), p_i is proportional to t_i^s (1 - t_i) with
  s = alpha/(1 - alpha). Fixing q_argmax leaves s, set by sum(q) = 1 (a monotone equation):
  a curve traced by a nested root-find, scanned whole.
* ``tv``: total variation. The TV ball of radius delta around p has a most-majorising
  element (delta moved from the smallest masses onto the largest); entropy is
  Schur-concave, so d(eps) is the least delta whose element has H <= eps.

Along a scanned curve every crossing of H = eps is bracketed (local extrema of H refined
first) and the one of least divergence kept; where the curve folds back, that is not always
the first. The root-finders work to machine precision.

Units: entropies and eps in bits; KL, reverse KL and JS in bits (log base 2); TV is a
plain number in [0, 1]. Symbols with p_i = 0 get q_i = 0 in both solvers: moving their
mass to the largest q_i lowers both D and H, so the optimum never uses them.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.optimize import brentq, minimize_scalar

__all__ = [
    "DIVERGENCES",
    "DIVERGENCE_NAMES",
    "DCCP_FORMS",
    "PAPER_EXAMPLE_P",
    "Solution",
    "check_distribution",
    "entropy_bits",
    "divergence_bits",
    "divergence_unit",
    "d_at_zero",
    "ExactSolver",
    "solve_exact",
    "sweep_exact",
    "solve_dccp",
    "kkt_residual",
]

LN2 = math.log(2.0)

DIVERGENCES = ("kl", "reverse-kl", "js", "tv")
DIVERGENCE_NAMES = {
    "kl": "KL(p||q)",
    "reverse-kl": "KL(q||p)",
    "js": "JS(p, q)",
    "tv": "TV(p, q)",
}

# The cvxpy objective handed to DCCP for each divergence (all four are convex in q, so all
# four are valid DCCP problems with the concave entropy constraint).
DCCP_FORMS = {
    "kl": "sum(rel_entr(p, q))",
    "reverse-kl": "sum(rel_entr(q, p))",
    "js": "sum(rel_entr(p, m) + rel_entr(q, m)) / 2, m = (p + q) / 2",
    "tv": "norm1(q - p) / 2",
}

# The default source: the paper's Fig. 1(a) is a 7-class distribution with H(X) = 1.857
# whose probabilities are not printed. This one (our choice: distinct two-decimal masses,
# decreasing) has H = 1.85731 bits.
PAPER_EXAMPLE_P = np.array([0.58, 0.19, 0.09, 0.07, 0.04, 0.02, 0.01])


@dataclass
class Solution:
    """One point of the d(eps) curve.

    Attributes:
        eps: the entropy budget, bits.
        d: the divergence reached (bits for kl/reverse-kl/js, plain for tv); nan where the
            solver failed, inf where no q with finite divergence has H(q) <= eps.
        q: the minimiser over the full alphabet (None where the solver failed).
        entropy: H(q) in bits.
        converged: whether the solver reports success.
        seconds: wall time of the solve.
        status: the solver's own word (e.g. "optimal", "infeasible", an error message).
        extra: solver details (DCCP: the sign-constraint form that converged, attempts).
    """

    eps: float
    d: float
    q: Optional[np.ndarray]
    entropy: float
    converged: bool
    seconds: float
    status: str = "optimal"
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Basic quantities


def check_distribution(p, tol: float = 1e-6) -> np.ndarray:
    """p as float64, checked: one-dimensional, finite, non-negative, sum 1 within ``tol``.

    Returns p rescaled to sum to exactly 1 (up to rounding). Raises ValueError naming
    what is wrong.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"p must be a non-empty 1-D list of probabilities, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("p has non-finite entries (nan or inf)")
    if np.any(arr < 0):
        bad = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"p has negative entries (p[{bad}] = {arr[bad]:g}); probabilities must be >= 0")
    total = float(arr.sum())
    if abs(total - 1.0) > tol:
        raise ValueError(f"p sums to {total:.10g}, not 1 (tolerance {tol:g}); give probabilities that sum to 1")
    return arr / total


def entropy_bits(q: np.ndarray) -> float:
    """Shannon entropy in bits (0 log 0 = 0)."""
    q = np.asarray(q, dtype=np.float64)
    nz = q[q > 0]
    return float(-(nz * np.log2(nz)).sum())


def divergence_unit(divergence: str) -> str:
    """The unit :func:`divergence_bits` reports ``divergence`` in."""
    _check_divergence(divergence)
    return "plain number in [0, 1]" if divergence == "tv" else "bits"


def _check_divergence(divergence: str) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of {', '.join(DIVERGENCES)}")


def divergence_bits(p: np.ndarray, q: np.ndarray, divergence: str) -> float:
    """D(p, q): KL(p||q), KL(q||p) or JS in bits; TV as a number in [0, 1]."""
    _check_divergence(divergence)
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if divergence == "tv":
        return float(0.5 * np.abs(p - q).sum())
    if divergence == "kl":
        a, b = p, q
    elif divergence == "reverse-kl":
        a, b = q, p
    else:
        m = 0.5 * (p + q)
        return 0.5 * _kl_bits(p, m) + 0.5 * _kl_bits(q, m)
    return _kl_bits(a, b)


def _kl_bits(a: np.ndarray, b: np.ndarray) -> float:
    mask = a > 0
    if np.any(b[mask] <= 0):
        return math.inf
    return float((a[mask] * (np.log(a[mask]) - np.log(b[mask]))).sum() / LN2)


def d_at_zero(p: np.ndarray, divergence: str) -> float:
    """d(0): only point masses have H = 0, and the best is the one on argmax p.

    * kl: KL(p||delta_k) is infinite unless p is itself a point mass (then 0).
    * reverse-kl: KL(delta_k||p) = -log2 p_k, least at the largest p_k.
    * js: JS(p, delta_k) = (p_k log2(2p_k/(1+p_k)) + 1 - p_k + log2(2/(1+p_k))) / 2, which
      decreases in p_k.
    * tv: 1 - p_max.
    """
    _check_divergence(divergence)
    p = np.asarray(p, dtype=np.float64)
    pk = float(p.max())
    if divergence == "kl":
        return 0.0 if pk == 1.0 else math.inf
    if divergence == "reverse-kl":
        return -math.log2(pk)
    if divergence == "js":
        return 0.5 * (pk * math.log2(2 * pk / (1 + pk)) + (1 - pk) + math.log2(2 / (1 + pk)))
    return 1.0 - pk


# --------------------------------------------------------------------------------------
# Exact solver


class ExactSolver:
    """The exact solver of Noise-dim Eq. 11 for one source p and divergence, for any number of budgets.

    For kl and js the curve of Lagrange points is scanned once, on the first budget that
    needs it (that solve's ``seconds`` include the scan), and shared by later budgets.

    Args:
        p: the source distribution (checked by :func:`check_distribution`).
        divergence: one of :data:`DIVERGENCES`.
    """

    def __init__(self, p, divergence: str = "kl") -> None:
        _check_divergence(divergence)
        self.p = check_distribution(p)
        self.divergence = divergence
        self.support = np.flatnonzero(self.p > 0)
        self.ps = self.p[self.support]
        self.h_p = entropy_bits(self.ps)
        self._curve: Optional[_Curve] = None

    def solve(self, eps: float) -> Solution:
        """d(eps) and its minimiser; eps in bits."""
        t0 = time.perf_counter()
        eps = float(eps)
        if not (eps >= 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0 (bits), got {eps}")
        ps, divergence = self.ps, self.divergence
        if eps >= self.h_p:
            q_s, d = ps.copy(), 0.0
        elif eps == 0.0:
            q_s = np.zeros_like(ps)
            q_s[int(np.argmax(ps))] = 1.0
            d = d_at_zero(ps, divergence)
        else:
            if divergence in ("kl", "js"):
                if self._curve is None:
                    self._curve = _KLCurve(ps) if divergence == "kl" else _JSCurve(ps)
                    self._curve.prepare()
                q_s = self._curve.solve(eps * LN2, divergence)
            elif divergence == "reverse-kl":
                q_s = _rkl_solve(ps, eps * LN2)
            else:
                q_s = _tv_solve(ps, eps * LN2)
            d = divergence_bits(ps, q_s, divergence)
        q = np.zeros_like(self.p)
        q[self.support] = q_s
        return Solution(
            eps=eps,
            d=float(d),
            q=q,
            entropy=entropy_bits(q_s),
            converged=True,
            seconds=time.perf_counter() - t0,
            status="optimal",
        )


def solve_exact(p, eps: float, divergence: str = "kl") -> Solution:
    """d(eps) of Noise-dim Eq. 11 for one budget (bits), from the Lagrange conditions (module docstring)."""
    return ExactSolver(p, divergence).solve(eps)


def sweep_exact(p, eps_values, divergence: str = "kl") -> list[Solution]:
    """:func:`solve_exact` for many budgets, sharing one :class:`ExactSolver`."""
    solver = ExactSolver(p, divergence)
    return [solver.solve(eps) for eps in eps_values]


def _entropy_nats(logq: np.ndarray) -> tuple[float, np.ndarray]:
    """(H in nats, q) of q = softmax(logq) (logq need not be normalised)."""
    m = logq.max()
    w = np.exp(logq - m)
    z = w.sum()
    q = w / z
    lq = logq - m - math.log(z)
    return float(-(q * lq).sum()), q


_XTOL = 1e-13
_RTOL = 4 * np.finfo(float).eps


class _Curve(abc.ABC):
    """A one-parameter curve of Lagrange points t -> q(t), from q = p toward a point mass.

    Subclasses give ``members(ts) -> (H in nats per t, q per row)`` for an array of
    parameters, the ``proven`` parameter intervals on which H is known to be monotone
    (scanned only to narrow the root-finder's bracket), and the ``grid`` on which the rest
    is scanned. The scan splits the curve into monotone pieces at its local extrema (each
    refined), so that every crossing H(t) = eps is bracketed; :meth:`solve` keeps the
    crossing of least divergence. Several crossings exist where the curve folds back, which
    happens for large, flat alphabets.
    """

    def __init__(self, p: np.ndarray) -> None:
        self.p = p
        self.proven: list[np.ndarray] = []
        self.grid: np.ndarray = np.zeros(0)
        self.tail: np.ndarray = np.zeros(0)  # scanned only for budgets below the grid's last H
        self.pieces: list[tuple[float, float, float, float]] = []

    @abc.abstractmethod
    def members(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H in nats, q) for each parameter in ``ts``."""

    def h(self, t: float) -> float:
        return float(self.members(np.array([t]))[0][0])

    def prepare(self) -> None:
        for ts in self.proven:
            hs = self.members(ts)[0]
            # monotone by proof: consecutive scan points are brackets; rounding noise is harmless
            self.pieces += [(ts[i], ts[i + 1], hs[i], hs[i + 1]) for i in range(len(ts) - 1)]
        if len(self.grid):
            self._scan(self.grid)

    def _scan(self, ts: np.ndarray) -> None:
        """Split H over ``ts`` into monotone pieces at its refined local extrema."""
        hs = self.members(ts)[0]
        knots = [(ts[0], hs[0])]
        diffs = np.diff(hs)
        tol = 1e-13 * max(1.0, float(np.abs(hs).max()))
        for i in range(1, len(ts) - 1):
            left, right = diffs[i - 1], diffs[i]
            if (left > tol and right < -tol) or (left < -tol and right > tol):
                sign = -1.0 if left > 0 else 1.0  # at a maximum, minimise -H
                res = minimize_scalar(
                    lambda t: sign * self.h(t),
                    bounds=(ts[i - 1], ts[i + 1]),
                    method="bounded",
                    options={"xatol": 1e-10},
                )
                t_ext, h_ext = float(res.x), self.h(float(res.x))
                if sign * h_ext > sign * hs[i]:
                    t_ext, h_ext = ts[i], hs[i]
                if t_ext > knots[-1][0]:
                    knots.append((t_ext, h_ext))
            else:
                knots.append((ts[i], hs[i]))
        knots.append((ts[-1], hs[-1]))
        self.pieces += [(a, b, ha, hb) for (a, ha), (b, hb) in zip(knots[:-1], knots[1:])]

    def solve(self, eps_nats: float, divergence: str) -> np.ndarray:
        if len(self.tail) and eps_nats < self.pieces[-1][3]:
            self._scan(self.tail)
            self.tail = np.zeros(0)
        candidates = []
        for a, b, ha, hb in self.pieces:
            if min(ha, hb) <= eps_nats <= max(ha, hb):
                if ha == eps_nats or a == b:
                    candidates.append(a)
                elif hb == eps_nats:
                    candidates.append(b)
                elif hasattr(self, "h_slope"):
                    candidates.append(_bracketed_newton(self.h_slope, eps_nats, a, b, ha, hb))
                else:
                    candidates.append(brentq(lambda t: self.h(t) - eps_nats, a, b, xtol=_XTOL, rtol=_RTOL, maxiter=300))
        if not candidates:  # eps within rounding of H(p) or of 0: the nearer end of the curve
            ends = [(abs(ha - eps_nats), a) for a, _, ha, _ in self.pieces]
            ends += [(abs(hb - eps_nats), b) for _, b, _, hb in self.pieces]
            candidates = [min(ends)[1]]
        qs = self.members(np.array(sorted(set(candidates))))[1]
        ds = [divergence_bits(self.p, q, divergence) for q in qs]
        return qs[int(np.argmin(ds))]


def _bracketed_newton(h_slope, target: float, a: float, b: float, ha: float, hb: float) -> float:
    """t in [a, b] with H(t) = target, H monotone there: Newton kept inside a shrinking bracket."""
    increasing = hb > ha
    lo, hi = a, b
    t = a + (b - a) * (target - ha) / (hb - ha)  # secant start
    for _ in range(100):
        h, dh = h_slope(t)
        f = h - target
        if f == 0:
            return t
        if (f < 0) == increasing:
            lo = t
        else:
            hi = t
        newton = t - f / dh if dh != 0 else math.nan
        t_new = newton if lo < newton < hi else 0.5 * (lo + hi)
        if abs(t_new - t) <= _XTOL * 0.01 + _RTOL * abs(t) or hi - lo <= _XTOL * 0.01 + _RTOL * abs(t):
            return t_new
        t = t_new
    return t


# KL(p||q) -------------------------------------------------------------------------------


class _KLCurve(_Curve):
    """Lagrange points of KL(p||q): q_i proportional to p_i / u_i, u_top = v, t = -log v.

    For i != top, u_i >= 1 solves u - log u = v - log v + k_i (k_i = log(p_top/p_i)).
    v >= 1 (t <= 0): every symbol on the u >= 1 branch. Along it dH/dv = -Cov_q(g, log q)
    with g_i = d log q_i / dv (up to a constant) = (u_i - v) / (v (u_i - 1)); g rises and
    log q falls with k_i, so the covariance is <= 0 and H is monotone: proven.
    v < 1 (t > 0): the argmax has crossed to the u < 1 branch; H can rise again there
    (seen for large flat alphabets), so that part is scanned for folds.
    """

    def __init__(self, p: np.ndarray) -> None:
        super().__init__(p)
        self.log_p = np.log(p)
        self.top = int(np.argmax(p))
        self.others = np.ones(len(p), dtype=bool)
        self.others[self.top] = False
        self.k = (self.log_p[self.top] - self.log_p)[self.others]
        # v = e^35 gives q = p to double precision; v = e^-700 a point mass.
        self.proven = [np.array([-35.0, -16.0, -8.0, -4.0, -2.0, -1.0, 0.0])]
        self.grid = np.array(
            [0.0, 0.03, 0.07, 0.12, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.5,
             8.5, 11.0, 15.0, 20.0]
        )  # fmt: skip
        self.tail = np.array([20.0, 30.0, 45.0, 70.0, 110.0, 170.0, 260.0, 400.0, 700.0])  # H below ~1e-5 bits

    def members(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, q, _ = self._members(ts, slope=False)
        return h, q

    def h_slope(self, t: float) -> tuple[float, float]:
        """(H, dH/dt) at one parameter: the 1-D path of :meth:`_members`, for the root-finder."""
        s = -t
        v = math.exp(s)
        logw = self.log_p.copy()
        g = np.zeros(len(self.p))
        if v >= 1.0:
            delta = _kl_delta(v, self.k)
            logw[self.others] -= np.log1p(delta / v)
            den = v + delta - 1.0
            g[self.others] = np.divide(delta, den, out=np.zeros_like(delta), where=den > 0)
        else:
            u = _kl_u(v - s + self.k)
            logw[self.others] += s - np.log(u)
            g[self.others] = (u - v) / (u - 1.0)
        m = logw.max()
        w = np.exp(logw - m)
        z = w.sum()
        q = w / z
        lq = logw - (m + math.log(z))
        h = -float(q @ lq)
        qg = q * g
        return h, float(qg @ lq) + float(qg.sum()) * h

    def _members(self, ts: np.ndarray, slope: bool):
        """(H, q, dH/dt) per parameter; dH/dt = Cov_q(g, log q), g_i = d log q_i / d log v + const."""
        s = -np.asarray(ts, dtype=np.float64)[:, None]
        v = np.exp(s)
        logw = np.repeat(self.log_p[None, :], len(s), axis=0)
        up = v[:, 0] >= 1.0
        rows = np.empty((len(s), len(self.k)))
        g = np.zeros((len(s), len(self.p))) if slope else None
        if up.any():
            delta = _kl_delta(v[up], self.k)
            rows[up] = -np.log1p(delta / v[up])
            if slope:
                den = v[up] + delta - 1.0
                g[np.ix_(up, self.others)] = np.divide(delta, den, out=np.zeros_like(delta), where=den > 0)
        if (~up).any():
            u = _kl_u(v[~up] - s[~up] + self.k)
            rows[~up] = s[~up] - np.log(u)
            if slope:
                g[np.ix_(~up, self.others)] = (u - v[~up]) / (u - 1.0)
        logw[:, self.others] += rows
        m = logw.max(axis=1, keepdims=True)
        w = np.exp(logw - m)
        z = w.sum(axis=1, keepdims=True)
        q = w / z
        lq = logw - m - np.log(z)
        h = -(q * lq).sum(axis=1)
        if not slope:
            return h, q, None
        eg = (q * g).sum(axis=1)
        cov = (q * g * lq).sum(axis=1) - eg * (-h)
        return h, q, cov  # dH/ds = -cov, and t = -s


def _kl_delta(v: np.ndarray, k: np.ndarray) -> np.ndarray:
    """delta = u - v >= 0 with delta - log1p(delta / v) = k, for v >= 1 (so u >= 1).

    The fixed point delta = k + log1p(delta / v) contracts by 1/u <= 1/v; one step of it
    from delta = k starts Newton (G convex and increasing in delta) close to the root.
    """
    delta = k + np.log1p(k / v)
    for _ in range(100):
        u = v + delta
        g = delta - np.log1p(delta / v) - k
        gp = (u - 1.0) / u
        step = np.divide(g, gp, out=np.zeros_like(g), where=gp > 0)
        delta = np.maximum(delta - step, 0.0)
        if np.all(np.abs(step) <= 1e-14 * (1.0 + delta)):
            break
    return delta


def _kl_u(b: np.ndarray) -> np.ndarray:
    """u >= 1 with u - log u = b (b >= 1): minus the lower branch of Lambert W at -e^-b.

    Started from the branch-point series (b near 1) or the asymptotic series (b large),
    then Halley's method on G(u) = u - log u - b (G' = 1 - 1/u, G'' = 1/u^2).
    """
    eta = np.maximum(b - 1.0, 0.0)
    r = np.sqrt(2.0 * -np.expm1(-eta))
    near = 1.0 + r * (1.0 + r * (1.0 / 3.0 + r * (11.0 / 72.0)))
    lb = np.log(np.maximum(b, 1.0))
    u = np.where(eta < 2.0, near, b + lb + lb / np.maximum(b, 1.0))
    for _ in range(100):
        g = u - np.log(u) - b
        gp = np.maximum(1.0 - 1.0 / u, 1e-300)
        step = g / gp
        step /= 1.0 - 0.5 * step / (u * u * gp)
        u_new = np.maximum(u - step, 1.0)
        done = np.all(np.abs(u_new - u) <= 1e-14 * u)
        u = u_new
        if done:
            break
    return u


# KL(q||p) -------------------------------------------------------------------------------


def _rkl_solve(p: np.ndarray, eps_nats: float) -> np.ndarray:
    """q proportional to p^beta with H(q) = eps (beta >= 1), or a split of the tied maxima."""
    log_p = np.log(p)
    top = log_p.max()
    ties = np.flatnonzero(log_p == top)
    m = len(ties)
    if eps_nats <= math.log(m):
        # every q on the m tied maxima with H = eps reaches -log p_max - eps: one mass a, the rest equal
        q = np.zeros_like(p)
        if m == 1 or eps_nats <= 0:
            q[ties[0]] = 1.0
            return q

        def h_of(a: float) -> float:
            rest = (1 - a) / (m - 1)
            return -(a * math.log(a)) - ((1 - a) * math.log(rest) if rest > 0 else 0.0)

        a = brentq(lambda a: h_of(a) - eps_nats, 1.0 / m, 1.0, xtol=1e-16, rtol=_RTOL)
        q[ties] = (1 - a) / (m - 1)
        q[ties[0]] = a
        return q
    rel = log_p - top  # <= 0
    # H of p^beta / Z falls monotonically in beta (dH/dbeta = -beta Var(log p) under q)
    hi = 1.0
    while _entropy_nats(math.exp(hi) * rel)[0] > eps_nats and hi < 700:
        hi += 2.0
    log_beta = brentq(
        lambda x: _entropy_nats(math.exp(x) * rel)[0] - eps_nats, 0.0, hi, xtol=_XTOL, rtol=_RTOL, maxiter=300
    )
    return _entropy_nats(math.exp(log_beta) * rel)[1]


# JS -------------------------------------------------------------------------------------


class _JSCurve(_Curve):
    """Lagrange points of JS(p, q), parameterised by t = log(q_top / p_top) in (0, -log p_top).

    The condition q_i^alpha proportional to (p_i + q_i)/2 reads, in t_i = q_i/(p_i + q_i),
    p_i = C t_i^s (1 - t_i) and q_i = C t_i^(s+1) (s = alpha/(1 - alpha) > 0). Given the
    argmax's t_top = tau (set by q_top), C = p_top / (tau^s (1 - tau)) and every other t_i
    is the lower-branch root of t^s (1 - t) = rho_i tau^s (1 - tau), rho_i = p_i/p_top. The
    sum of q rises with s from q_top (s -> 0) to q_top / p_top (s -> inf), so exactly one s
    makes q a distribution. The whole parameter range is scanned for folds.
    """

    def __init__(self, p: np.ndarray) -> None:
        super().__init__(p)
        self.top = int(np.argmax(p))
        self.others = np.ones(len(p), dtype=bool)
        self.others[self.top] = False
        self.log_rho = (np.log(p) - math.log(p[self.top]))[self.others]
        self.p_others = p[self.others]
        x_max = -math.log(p[self.top])
        self.grid = x_max * np.concatenate([np.linspace(1e-9, 0.6, 41)[:-1], np.linspace(0.6, 1 - 1e-14 / x_max, 13)])

    def _q_others(self, tau: np.ndarray, log_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of q_i (i != top) and their derivatives in log s, for columns tau and log s."""
        sigma = np.exp(log_sigma)
        log_tau = np.log(tau)
        log_y = self.log_rho + sigma * log_tau + np.log1p(-tau)
        log_t = _js_t(log_y, sigma)
        t = np.exp(log_t)
        q = self.p_others * t / (1 - t)
        # d t_i / d s from s log t + log(1 - t) = log rho + s log tau + log(1 - tau)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            denom = sigma / t - 1.0 / (1.0 - t)
            dt = np.where(denom > 0, (log_tau - log_t) / denom, 0.0)
        dq = self.p_others / (1 - t) ** 2 * dt * sigma
        return q, dq

    def members(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ts = np.asarray(ts, dtype=np.float64)
        p_top = self.p[self.top]
        w = p_top * np.exp(ts)[:, None]
        tau = w / (p_top + w)
        target = 1.0 - w[:, 0]
        # log sum(q_others) - log target rises with log s: safeguarded Newton, one root per row,
        # iterating only on the rows not yet converged
        x = np.full(len(ts), 1.0)
        lo, hi = np.full(len(ts), -60.0), np.full(len(ts), 60.0)
        active = np.arange(len(ts))
        for _ in range(200):
            xa = x[active]
            q, dq = self._q_others(tau[active], xa[:, None])
            total = q.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):  # total = 0: f = -inf, bisect
                f = np.log(total) - np.log(target[active])  # nearly linear in log s at both ends
                df = dq.sum(axis=1) / total
            lo[active] = np.where(f < 0, xa, lo[active])
            hi[active] = np.where(f > 0, xa, hi[active])
            la, ha = lo[active], hi[active]
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = xa - f / df
            ok = (df > 0) & (newton > la) & (newton < ha)
            x_new = np.where(ok, newton, 0.5 * (la + ha))
            x_new = np.where(f == 0, xa, x_new)
            x[active] = x_new
            done = (f == 0) | (np.abs(x_new - xa) <= 1e-15 * (1 + np.abs(xa))) | (ha - la <= 1e-14 * (1 + np.abs(xa)))
            active = active[~done]
            if len(active) == 0:
                break
        q_rows = np.empty((len(ts), len(self.p)))
        q_rows[:, self.top] = w[:, 0]
        q_rows[:, self.others] = self._q_others(tau, x[:, None])[0]
        q_rows /= q_rows.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(q_rows > 0, q_rows * np.log(q_rows), 0.0)
        return -plogp.sum(axis=1), q_rows


def _js_t(log_y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log t of the lower-branch root t in (0, s/(1+s)) of s log t + log(1 - t) = log y.

    In x = log t, G(x) = s x + log(1 - e^x) - log y is concave and increasing on the lower
    branch, and G(log(y)/s) = log(1 - y^(1/s)) <= 0, so Newton from there climbs
    monotonically to the root.
    """
    x_max = np.log(sigma / (1 + sigma))
    x = np.minimum(log_y / sigma, x_max)
    for _ in range(100):
        t = np.exp(x)
        g = sigma * x + np.log1p(-t) - log_y
        gp = sigma - t / (1 - t)
        step = np.divide(-g, gp, out=np.zeros_like(g), where=gp > 0)
        step = np.clip(step, 0.0, x_max - x)
        x = x + step
        if np.all(step <= 1e-14 * (1 + np.abs(x))):
            break
    return x


# TV -------------------------------------------------------------------------------------


def _tv_element(p_sorted_desc: np.ndarray, delta: float) -> np.ndarray:
    """The most-majorising distribution within TV distance delta of p (p sorted descending).

    delta goes onto the largest mass and is taken from the smallest ones, emptying them in
    turn; every partial sum of the sorted q is then the largest the ball allows.
    """
    q = p_sorted_desc.copy()
    q[0] += delta
    tail = np.cumsum(p_sorted_desc[::-1])  # tail[j] = mass of the j + 1 smallest
    j = int(np.searchsorted(tail, delta, side="right"))  # the j smallest are emptied
    j = min(j, len(q) - 1)
    if j > 0:
        q[len(q) - j :] = 0.0
    removed = tail[j - 1] if j > 0 else 0.0
    q[len(q) - 1 - j] -= delta - removed
    return q


def _tv_solve(p: np.ndarray, eps_nats: float) -> np.ndarray:
    order = np.argsort(-p, kind="stable")
    ps = p[order]

    def h(delta: float) -> float:
        q = _tv_element(ps, delta)
        nz = q[q > 0]
        return float(-(nz * np.log(nz)).sum())

    # H of the element falls monotonically with delta (the elements majorise one another)
    delta = brentq(lambda d: h(d) - eps_nats, 0.0, 1.0 - ps[0], xtol=1e-16, rtol=_RTOL, maxiter=300)
    q = np.empty_like(p)
    q[order] = _tv_element(ps, delta)
    return q


# --------------------------------------------------------------------------------------
# DCCP


def solve_dccp(
    p,
    eps: float,
    divergence: str = "kl",
    seed: int = 0,
    max_iter: int = 100,
    ep: float = 1e-8,
    max_slack: float = 1e-6,
    retry: bool = True,
) -> Solution:
    """d(eps) of Noise-dim Eq. 11 as the paper's DCCP program, solved by ``dccp`` (cvxpy + Clarabel).

    Variable q over the support of p, started at a random q ~ Dirichlet(1, ..., 1) drawn
    with ``seed`` (a symmetric start such as the uniform q never breaks ties in p, and
    then stalls at a symmetric local optimum far above d); constraints
    q >= 0, sum(q) = 1 and the concave sum(entr(q)) <= eps ln 2 (entr is in nats); objective
    :data:`DCCP_FORMS`. ``ep`` and ``max_slack`` are tighter than dccp's defaults (1e-5,
    1e-3), which leave errors near 1e-5 in d. ``dccp`` is a local method and its convex
    sub-problems sometimes fail in Clarabel: the sign constraint is written first as
    ``q >= 0`` (kl, js) or as a non-negative variable (reverse-kl, tv), whichever failed
    less often here, and with ``retry`` the other way (and the next seed) after a failure.
    A solve that still fails is returned with ``converged=False`` and d = nan, never raised.
    """
    import warnings

    import cvxpy as cp
    import dccp  # noqa: F401  (registers method="dccp")

    start = time.perf_counter()
    _check_divergence(divergence)
    p = check_distribution(p)
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0 (bits), got {eps}")
    support = np.flatnonzero(p > 0)
    ps = p[support]
    n = len(ps)
    ways = ["constraint", "attribute"] if divergence in ("kl", "js") else ["attribute", "constraint"]
    if not retry:
        ways = ways[:1]
    status, value, attempts = "not run", None, 0
    for way in ways:
        attempts += 1
        q = cp.Variable(n, nonneg=(way == "attribute"))
        q.value = np.random.default_rng(seed + attempts - 1).dirichlet(np.ones(n))
        if divergence == "kl":
            objective = cp.sum(cp.rel_entr(ps, q))
        elif divergence == "reverse-kl":
            objective = cp.sum(cp.rel_entr(q, ps))
        elif divergence == "js":
            m = 0.5 * (ps + q)
            objective = 0.5 * cp.sum(cp.rel_entr(ps, m)) + 0.5 * cp.sum(cp.rel_entr(q, m))
        else:
            objective = 0.5 * cp.norm1(q - ps)
        constraints = ([q >= 0] if way == "constraint" else []) + [cp.sum(q) == 1, cp.sum(cp.entr(q)) <= eps * LN2]
        problem = cp.Problem(cp.Minimize(objective), constraints)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "solution may be inaccurate" from sub-problems
                problem.solve(
                    method="dccp", solver=cp.CLARABEL, seed=seed, max_iter=max_iter, ep=ep, max_slack=max_slack
                )
            status = str(problem.status)
        except Exception as err:  # cvxpy SolverError, dccp NonDCCPError, numerical failures
            status = f"{type(err).__name__}: {err}".split("\n")[0][:120]
        value = q.value
        if status == "optimal" and value is not None:
            break
    seconds = time.perf_counter() - start
    if status != "optimal" or value is None:
        return Solution(
            eps=float(eps),
            d=math.nan,
            q=None,
            entropy=math.nan,
            converged=False,
            seconds=seconds,
            status=status,
            extra={"attempts": attempts},
        )
    qs = np.clip(np.asarray(value, dtype=np.float64), 0.0, None)
    qs /= qs.sum()
    full = np.zeros_like(p)
    full[support] = qs
    return Solution(
        eps=float(eps),
        d=divergence_bits(ps, qs, divergence),
        q=full,
        entropy=entropy_bits(qs),
        converged=True,
        seconds=seconds,
        status=status,
        extra={"sign_constraint": way, "attempts": attempts},
    )


# --------------------------------------------------------------------------------------
# Checks


def kkt_residual(p, q, divergence: str = "kl") -> tuple[float, float]:
    """(largest stationarity residual, multiplier nu) of q for Noise-dim Eq. 11 on the support of q.

    The Lagrange condition with the active constraint H(q) = eps is
    grad D(q) - nu (log q_i + 1) + lam = 0 for every i with q_i > 0 (nats), nu >= 0. The
    best (nu, lam) are fitted by least squares; the residual is the largest leftover,
    relative to the size of grad D. Not defined for tv (not differentiable).
    """
    _check_divergence(divergence)
    if divergence == "tv":
        raise ValueError("kkt_residual: TV is not differentiable")
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    mask = q > 0
    pm, qm = p[mask], q[mask]
    if divergence == "kl":
        grad = -pm / qm
    elif divergence == "reverse-kl":
        grad = np.log(qm / pm) + 1.0
    else:
        grad = 0.5 * np.log(2 * qm / (pm + qm))
    a = np.column_stack([np.log(qm) + 1.0, -np.ones_like(qm)])
    coef, *_ = np.linalg.lstsq(a, grad, rcond=None)
    resid = grad - a @ coef
    scale = max(float(np.ptp(grad)), float(np.abs(grad).max()), 1e-300)
    return float(np.abs(resid).max() / scale), float(coef[0])
