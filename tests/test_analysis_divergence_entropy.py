"""The divergence-entropy function d(eps) of Eq. 11 (seed "noise dimension" Sec. 4.4): solvers and command."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import brentq, minimize_scalar

from analysis.__main__ import main
from analysis.divergence_entropy import (
    DIVERGENCES,
    PAPER_EXAMPLE_P,
    _JSCurve,
    _KLCurve,
    check_distribution,
    d_at_zero,
    divergence_bits,
    entropy_bits,
    kkt_residual,
    solve_dccp,
    solve_exact,
    sweep_exact,
)


def _binary_entropy(b: float) -> float:
    return -(b * math.log2(b) + (1 - b) * math.log2(1 - b)) if 0 < b < 1 else 0.0


def _simplex_grid(steps: int) -> np.ndarray:
    """Every point (i, j, k) / steps of the 2-simplex, as rows."""
    i, j = np.meshgrid(np.arange(steps + 1), np.arange(steps + 1), indexing="ij")
    keep = i + j <= steps
    i, j = i[keep], j[keep]
    return np.stack([i, j, steps - i - j], axis=1) / steps


def _rows_entropy_bits(q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(q > 0, q * np.log2(q), 0.0).sum(axis=1)


def _rows_divergence(p: np.ndarray, q: np.ndarray, divergence: str) -> np.ndarray:
    """D(p, q) in bits (TV plain) for every row q, written out independently of the module."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if divergence == "tv":
            return 0.5 * np.abs(q - p).sum(axis=1)
        if divergence == "kl":
            return np.where(p > 0, p * np.log2(p / q), 0.0).sum(axis=1)
        if divergence == "reverse-kl":
            return np.where(q > 0, q * np.log2(q / p), 0.0).sum(axis=1)
        m = (p + q) / 2
        return 0.5 * np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1) + 0.5 * np.where(
            q > 0, q * np.log2(q / m), 0.0
        ).sum(axis=1)


def _h3(q0: float, q1: float) -> float:
    return -sum(x * math.log2(x) for x in (q0, q1, 1 - q0 - q1) if x > 0)


def _slice_minimum(p: np.ndarray, eps: float, divergence: str, q0: float) -> float:
    """min D over the (two) points of H(q) = eps with first coordinate q0; inf where there are none."""
    r = 1 - q0
    if not 0 < q0 < 1 or _binary_entropy(q0) > eps or _h3(q0, r / 2) < eps:
        return math.inf
    a = 0.0 if _h3(q0, 0.0) >= eps else brentq(lambda x: _h3(q0, x) - eps, 0.0, r / 2, xtol=1e-17, rtol=1e-15)
    pts = np.array([[q0, a, r - a], [q0, r - a, a]])
    return float(_rows_divergence(p, pts, divergence).min())


def _boundary_minimum(p: np.ndarray, eps: float, divergence: str, n1: int = 2000) -> float:
    """min D over the curve H(q) = eps of the 3-simplex: a grid of q0, refined around the best
    values, plus the points of the curve on the simplex's edges and on its lines q_i = q_j."""
    q0 = np.linspace(0, 1, n1 + 1)[1:-1]
    values = np.array([_slice_minimum(p, eps, divergence, x) for x in q0])
    best = float(values.min())
    for i in np.argsort(values)[:4]:
        with np.errstate(invalid="ignore"):  # inf outside the slices that meet the curve
            res = minimize_scalar(
                lambda x: _slice_minimum(p, eps, divergence, x),
                bounds=(q0[i] - 1.0 / n1, q0[i] + 1.0 / n1),
                method="bounded",
                options={"xatol": 1e-13},
            )
        best = min(best, float(res.fun))
    # where a slice's two points merge (q1 = q2) the grid of q0 meets a wall: add those points too
    g = lambda x: _h3(x, (1 - x) / 2) - eps  # noqa: E731
    sym = [brentq(g, lo, hi, xtol=1e-17) for lo, hi in ((1 / 3, 1 - 1e-16), (1e-300, 1 / 3)) if g(lo) * g(hi) < 0]
    sym_pts = [np.roll([x, (1 - x) / 2, (1 - x) / 2], k) for x in sym for k in range(3)]
    if sym_pts:
        best = min(best, float(_rows_divergence(p, np.array(sym_pts), divergence).min()))
    if eps < 1:
        b = brentq(lambda x: _binary_entropy(x) - eps, 0.5, 1 - 1e-16, xtol=1e-17)
        edges = [np.roll([x, 1 - x, 0.0], k) for x in (b, 1 - b) for k in range(3)]
        best = min(best, float(_rows_divergence(p, np.array(edges), divergence).min()))
    return best


# --- closed forms --------------------------------------------------------------------------


def test_default_example_has_the_papers_entropy():
    assert entropy_bits(PAPER_EXAMPLE_P) == pytest.approx(1.857, abs=5e-4)
    assert PAPER_EXAMPLE_P.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_binary_alphabet_matches_closed_form(divergence):
    """Two symbols: the q with H(q) = eps are (b, 1-b) and (1-b, b); ordering like p picks b > p_0."""
    p = np.array([0.7, 0.3])
    for eps in (0.1, 0.4, 0.8):
        b = brentq(lambda x: _binary_entropy(x) - eps, 0.7, 1 - 1e-15, xtol=1e-16)
        expected = divergence_bits(p, np.array([b, 1 - b]), divergence)
        got = solve_exact(p, eps, divergence)
        assert got.d == pytest.approx(expected, rel=1e-10, abs=1e-13)
        assert got.q[0] == pytest.approx(b, abs=1e-10)
    assert expected < divergence_bits(p, np.array([1 - b, b]), divergence)  # the other point is worse


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_zero_at_and_above_the_source_entropy(divergence):
    p = np.array([0.5, 0.25, 0.125, 0.125])  # H = 1.75 bits
    for eps in (1.75, 1.9, 5.0):
        sol = solve_exact(p, eps, divergence)
        assert sol.d == 0.0 and np.array_equal(sol.q, p)
    assert solve_exact(p, 1.75 - 1e-3, divergence).d > 0


def test_d_at_zero_closed_forms_and_point_mass():
    p = np.array([0.2, 0.5, 0.3])
    assert d_at_zero(p, "kl") == math.inf
    assert d_at_zero(np.array([0.0, 1.0, 0.0]), "kl") == 0.0
    assert d_at_zero(p, "reverse-kl") == pytest.approx(1.0)  # -log2 0.5
    assert d_at_zero(p, "tv") == pytest.approx(0.5)
    # JS(p, delta_1) by hand: m = (0.1, 0.75, 0.15)
    js = 0.5 * (0.2 * math.log2(0.2 / 0.1) + 0.5 * math.log2(0.5 / 0.75) + 0.3 * math.log2(0.3 / 0.15))
    js += 0.5 * math.log2(1 / 0.75)
    assert d_at_zero(p, "js") == pytest.approx(js, rel=1e-12)
    for divergence in DIVERGENCES:
        sol = solve_exact(p, 0.0, divergence)
        assert np.array_equal(sol.q, [0.0, 1.0, 0.0])
        assert sol.d == d_at_zero(p, divergence)


@pytest.mark.parametrize("divergence", ["reverse-kl", "js", "tv"])
def test_finite_d0_is_the_limit_of_small_budgets(divergence):
    p = np.array([0.1, 0.45, 0.3, 0.15])
    sol = solve_exact(p, 1e-7, divergence)
    assert sol.q.max() == sol.q[1] > 1 - 1e-6
    assert sol.d == pytest.approx(d_at_zero(p, divergence), abs=1e-5)
    assert sol.d < d_at_zero(p, divergence)


def test_kl_grows_without_bound_as_the_budget_vanishes():
    p = np.array([0.1, 0.45, 0.3, 0.15])
    ds = [solve_exact(p, eps, "kl").d for eps in (1e-2, 1e-4, 1e-6)]
    assert ds[0] < ds[1] < ds[2] and ds[2] > 10


def test_reverse_kl_is_a_tempered_source():
    """KL(q||p) at fixed entropy is least for q proportional to p^beta: log q is affine in log p."""
    p = np.random.default_rng(3).dirichlet(np.ones(9))
    q = solve_exact(p, 1.2, "reverse-kl").q
    slope, intercept = np.polyfit(np.log(p), np.log(q), 1)
    assert slope > 1
    assert np.abs(np.log(q) - (slope * np.log(p) + intercept)).max() < 1e-9
    # with a 4-fold tie at the top and eps below log2 4 = 2 bits: d = -log2 p_max - eps
    tied = np.array([0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    assert solve_exact(tied, 1.5, "reverse-kl").d == pytest.approx(-math.log2(0.2) - 1.5, abs=1e-10)


# --- invariants ----------------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_curve_is_non_increasing_and_the_budget_binds(divergence):
    p = np.random.default_rng(1).dirichlet(np.ones(12) * 0.5)
    h_p = entropy_bits(p)
    eps = np.linspace(0.0, h_p + 0.2, 30)
    sols = sweep_exact(p, eps, divergence)
    ds = np.array([s.d for s in sols])
    assert np.all(np.diff(ds[1:]) <= 1e-12)  # from the first eps > 0 on
    assert ds[0] >= ds[1]
    for s in sols:
        if 0 < s.eps < h_p:
            assert s.entropy == pytest.approx(s.eps, abs=1e-9)  # on the boundary H(q) = eps
            assert s.q.sum() == pytest.approx(1.0, abs=1e-12) and s.q.min() >= 0
            order = np.argsort(-p, kind="stable")
            assert np.all(np.diff(s.q[order]) <= 1e-12)  # q ordered like p


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_relabelling_and_unused_symbols_change_nothing(divergence):
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(6))
    perm = rng.permutation(6)
    padded = np.concatenate([p, np.zeros(3)])[[0, 6, 1, 2, 7, 3, 4, 8, 5]]
    for eps in (0.3, 1.5):
        d = solve_exact(p, eps, divergence).d
        assert solve_exact(p[perm], eps, divergence).d == pytest.approx(d, rel=1e-10, abs=1e-14)
        sol = solve_exact(padded, eps, divergence)
        assert sol.d == pytest.approx(d, rel=1e-10, abs=1e-14)
        assert np.all(sol.q[padded == 0] == 0)


@pytest.mark.parametrize("divergence", ["kl", "reverse-kl", "js"])
def test_kkt_residuals_vanish(divergence):
    p = np.random.default_rng(5).dirichlet(np.ones(10))
    for eps in np.array([0.15, 0.55, 0.95]) * entropy_bits(p):
        sol = solve_exact(p, eps, divergence)
        residual, nu = kkt_residual(p, sol.q, divergence)
        assert residual < 1e-8
        assert nu > 0  # the multiplier of H(q) <= eps has the right sign
    # a feasible point that is not optimal fails the same check
    q = 0.5 * sol.q + 0.5 * np.eye(10)[np.argmax(p)]
    assert kkt_residual(p, q, divergence)[0] > 1e-3


# --- global optimality against brute force on 3 symbols -------------------------------------

_GRID = _simplex_grid(500)
_GRID_H = _rows_entropy_bits(_GRID)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("p", [(0.6, 0.3, 0.1), (0.45, 0.45, 0.1), (0.34, 0.33, 0.33), (0.8, 0.15, 0.05)])
def test_three_symbols_against_brute_force(divergence, p):
    p = np.array(p)
    grid_d = _rows_divergence(p, _GRID, divergence)
    h_p = entropy_bits(p)
    for frac in (0.15, 0.5, 0.85):
        eps = frac * h_p
        d = solve_exact(p, eps, divergence).d
        # no feasible point of the grid does better, and the grid comes close
        feasible = grid_d[_GRID_H <= eps]
        assert d <= feasible.min() + 1e-12
        assert d >= 0.95 * feasible.min() - 1e-3
        # the optimum lies on H(q) = eps: a fine search of that curve matches to high precision
        assert d == pytest.approx(_boundary_minimum(p, eps, divergence), abs=1e-8 if divergence == "tv" else 1e-11)


@pytest.mark.parametrize(
    "divergence, eps_bits, t_range",
    [("kl", (4.845, 4.866, 4.888), (-3.0, 6.0)), ("js", (4.46, 4.495, 4.53), (0.5, 2.0))],
)
def test_folded_curve_keeps_the_best_crossing(divergence, eps_bits, t_range):
    """A flat alphabet with a 5-fold tie at the top: H along the curve of Lagrange points rises
    again after the argmax leaves the others, so these budgets have three Lagrange points; the
    least is not on the first branch, and the solver must find it."""
    p = np.r_[np.full(5, 3.0), np.ones(45)] / 60
    curve = _KLCurve(p) if divergence == "kl" else _JSCurve(p)
    ts = np.linspace(*t_range, 301)
    hs, _ = curve.members(ts)
    for eps in eps_bits:
        eps_nats = eps * math.log(2)
        crossings = []
        for i in np.flatnonzero((hs[:-1] - eps_nats) * (hs[1:] - eps_nats) < 0):
            t = brentq(lambda x: curve.h(x) - eps_nats, ts[i], ts[i + 1], xtol=1e-14)
            crossings.append(divergence_bits(p, curve.members(np.array([t]))[1][0], divergence))
        assert len(crossings) == 3
        got = solve_exact(p, eps, divergence).d
        assert got == pytest.approx(min(crossings), abs=1e-10)
        assert crossings[0] - got > 3e-5  # the first crossing (nearest q = p) is worse


# --- DCCP ----------------------------------------------------------------------------------


def test_dccp_agrees_with_the_exact_solver_where_it_converges():
    rng = np.random.default_rng(11)
    sizes = [(5, "kl"), (12, "kl"), (6, "reverse-kl"), (6, "js"), (6, "tv")]
    cases = [(rng.dirichlet(np.ones(n)), div) for n, div in sizes]
    converged = 0
    for p, divergence in cases:
        h_p = entropy_bits(p)
        for eps in (0.3 * h_p, 0.7 * h_p):
            d = solve_dccp(p, eps, divergence, seed=0)
            if d.converged:
                converged += 1
                assert d.d == pytest.approx(solve_exact(p, eps, divergence).d, abs=1e-4)
                assert d.entropy <= eps + 1e-5
    assert converged >= 8


def test_dccp_reports_failure_instead_of_raising():
    sol = solve_dccp(np.array([0.5, 0.5]), 0.5, "kl", max_iter=1, retry=False)
    assert not sol.converged and math.isnan(sol.d) and sol.q is None


# --- input checks --------------------------------------------------------------------------


def test_check_distribution_messages():
    with pytest.raises(ValueError, match="sums to 0.9"):
        check_distribution([0.5, 0.4])
    with pytest.raises(ValueError, match=r"negative entries \(p\[1\] = -0.1\)"):
        check_distribution([0.6, -0.1, 0.5])
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        solve_exact([0.5, 0.5], -0.1)


# --- the command ---------------------------------------------------------------------------


def test_command_default_sweep_both_solvers(tmp_path, capsys):
    out = tmp_path / "d.json"
    plot = tmp_path / "d.png"
    assert main(["divergence-entropy", "--num", "3", "--eps-max", "1.95", "--out", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "H(p) = 1.85731 bits" in printed and "d in bits" in printed and "d(0) = inf" in printed
    assert "largest |d_dccp - d_exact|" in printed
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [r["eps"] for r in rows] == pytest.approx([0.05, 1.0, 1.95])
    assert rows[0]["d_exact"] > rows[1]["d_exact"] > rows[2]["d_exact"] == 0.0
    assert rows[1]["d_exact"] == pytest.approx(solve_exact(PAPER_EXAMPLE_P, 1.0).d, rel=1e-12)
    for r in rows:
        if r["d_dccp"] is not None:
            assert abs(r["dccp_minus_exact"]) < 1e-4
    assert data["divergence_unit"] == "bits" and data["entropy_unit"] == "bits"
    assert plot.stat().st_size > 10_000


def test_command_reads_p_from_the_line_and_a_file(tmp_path, capsys):
    assert main(["divergence-entropy", "--p", "0.7", "0.3", "--divergence", "tv", "--solver", "exact", "--num", "1",
                 "--eps-min", "0.5", "--out", str(tmp_path / "a.json")]) == 0  # fmt: skip
    b = brentq(lambda x: _binary_entropy(x) - 0.5, 0.7, 1 - 1e-15, xtol=1e-16)
    assert json.loads((tmp_path / "a.json").read_text())["rows"][0]["d_exact"] == pytest.approx(b - 0.7, abs=1e-10)
    assert "d(0) = 1 - max p = 0.3" in capsys.readouterr().out
    np.save(tmp_path / "p.npy", np.array([[0.5, 0.25], [0.125, 0.125]]))
    assert main(["divergence-entropy", "--p-file", str(tmp_path / "p.npy"), "--solver", "exact", "--num", "2",
                 "--eps-min", "1.0", "--eps-max", "1.75", "--out", str(tmp_path / "b.json")]) == 0  # fmt: skip
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["H_p_bits"] == pytest.approx(1.75) and data["rows"][1]["d_exact"] == 0.0


def test_command_histograms_of_a_folder(tmp_path, capsys):
    a = np.zeros((2, 2), dtype=np.uint8)
    b = np.array([[0, 255], [255, 255]], dtype=np.uint8)
    for name, image in (("a.png", a), ("b.png", b), ("c.png", a)):
        Image.fromarray(image).save(tmp_path / name)
    out = tmp_path / "h.json"
    argv = ["divergence-entropy", "--data", str(tmp_path), "--solver", "exact", "--num", "1", "--out", str(out)]
    assert main(argv) == 0
    p = np.array(json.loads(out.read_text())["p"])
    assert len(p) == 256 and p[0] == pytest.approx(9 / 12) and p[255] == pytest.approx(3 / 12)
    assert main(["divergence-entropy", "--data", str(tmp_path), "--symbols", "images", "--solver", "exact",
                 "--num", "1", "--out", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["p"] == pytest.approx([2 / 3, 1 / 3])
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--p", "0.5", "0.4"], "--p: p sums to 0.9, not 1"),
        (["--p", "0.6", "-0.1", "0.5"], "--p: p has negative entries (p[1] = -0.1)"),
        (["--eps-min", "-0.5"], "--eps-min must be a finite number >= 0 (bits), got -0.5"),
        (["--eps-min", "1", "--eps-max", "0.5"], "--eps-max (0.5) must not be below --eps-min (1.0)"),
        (["--num", "0"], "--num must be >= 1, got 0"),
        (["--p", "1", "--p-file", "x.npy"], "give at most one source of p, got --p and --p-file"),
        (["--p-file", "missing.npy"], "--p-file missing.npy: no such file"),
    ],
)
def test_command_rejects_bad_input_with_a_message(argv, message, capsys):
    assert main(["divergence-entropy", "--solver", "exact", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
