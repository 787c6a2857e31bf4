"""KL of Gaussian inputs and the optimal training-noise level (seed "I2I Gaussian noise injection")."""

import json
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import analysis.__main__ as analysis_main
from analysis.i2i_noise import (
    F_DIVERGENCES,
    TRUNCATIONS,
    GaussianMixture1D,
    average_optimal_sigma_t2,
    average_rho,
    gaussian_kl,
    isotropic_minimax_sigma_t2,
    minimax_by_truncation,
    minimax_sigma_t2,
    minimax_sigma_t2_grid,
    rho,
    rho_general,
    spectrum_from_data,
    theorem1_divergence,
    theorem1_eta,
    theorem1_noisy_covariance,
    theorem2_checks,
    theorem3_eq10,
    theorem3_eq10_gaussian,
    theorem3_theta,
    worst_case_rho,
)

MODULE = "analysis.commands.i2i_noise"


def _random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.2 * np.eye(d)


def _monte_carlo_kl(mean_p, cov_p, mean_q, cov_q, n: int, seed: int) -> tuple[float, float]:
    """Mean and standard error of log p(x) - log q(x) over x ~ p (scipy densities)."""
    x = np.random.default_rng(seed).multivariate_normal(mean_p, cov_p, size=n)
    ratio = multivariate_normal(mean_p, cov_p).logpdf(x) - multivariate_normal(mean_q, cov_q).logpdf(x)
    return float(ratio.mean()), float(ratio.std(ddof=1) / math.sqrt(n))


def test_gaussian_kl_against_monte_carlo():
    rng = np.random.default_rng(0)
    d = 4
    mean_p, mean_q = rng.normal(size=d), rng.normal(size=d)
    cov_p, cov_q = _random_covariance(rng, d), _random_covariance(rng, d)
    exact = gaussian_kl(mean_p, cov_p, mean_q, cov_q)
    estimate, stderr = _monte_carlo_kl(mean_p, cov_p, mean_q, cov_q, 200_000, seed=1)
    assert exact > 0.5  # a sizeable divergence, not a trivially small one
    assert abs(exact - estimate) < 4 * stderr


@pytest.mark.parametrize("direction", ["inference", "training"])
def test_rho_of_noisy_inputs_against_monte_carlo(direction):
    """rho for a correlated source and non-isotropic inference noise, sampled as the poster defines it."""
    rng = np.random.default_rng(2)
    d, sigma_t2 = 3, 0.3
    cov_s, cov_e = _random_covariance(rng, d), np.diag([0.05, 0.4, 0.9])
    mu = rng.normal(size=d)
    inference, training = cov_s + cov_e, cov_s + sigma_t2 * np.eye(d)
    p, q = (inference, training) if direction == "inference" else (training, inference)
    estimate, stderr = _monte_carlo_kl(mu, p, mu, q, 200_000, seed=3)
    assert abs(rho_general(sigma_t2, cov_e, cov_s, direction) - estimate) < 4 * stderr


@pytest.mark.parametrize("direction", ["inference", "training"])
def test_spectral_rho_equals_the_matrix_form(direction):
    rng = np.random.default_rng(4)
    lam = np.array([2.0, 0.7, 0.1, 0.01])
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    cov_s = rotation @ np.diag(lam) @ rotation.T
    for sigma_t2, sigma_e2 in [(0.0, 0.5), (0.3, 0.0), (0.8, 1.7)]:
        expected = rho_general(sigma_t2, sigma_e2 * np.eye(4), cov_s, direction)
        assert rho(sigma_t2, sigma_e2, lam, direction) == pytest.approx(expected, rel=1e-10)


SPECTRUM = np.array([3.0, 1.0, 0.4, 0.05])


def test_minimax_root_equalises_and_matches_the_grid_search():
    s = minimax_sigma_t2(SPECTRUM, 3.0)
    assert rho(s, 0.0, SPECTRUM) == pytest.approx(rho(s, 3.0, SPECTRUM), rel=1e-10)
    grid_s, step = minimax_sigma_t2_grid(SPECTRUM, 3.0)
    assert abs(grid_s - s) <= step
    # Moving either way raises the worst case.
    worst = worst_case_rho(s, SPECTRUM, 3.0)
    assert worst < worst_case_rho(s * 0.97, SPECTRUM, 3.0) and worst < worst_case_rho(s * 1.03, SPECTRUM, 3.0)
    assert s != pytest.approx(1.5, rel=0.05)  # not lambda_max / 2 for this spectrum


def test_forward_minimax_equals_reverse_order_average_optimum():
    """sum_i M/(lambda_i + s) = sum_i ln(1 + M/lambda_i) is both conditions (module docstring)."""
    forward_minimax = minimax_sigma_t2(SPECTRUM, 3.0, direction="inference")
    assert average_optimal_sigma_t2(SPECTRUM, 3.0, direction="training") == pytest.approx(forward_minimax, abs=1e-6)
    assert minimax_sigma_t2(SPECTRUM, 3.0, direction="training") != pytest.approx(forward_minimax, rel=0.05)


def test_isotropic_minimax_closed_form():
    for lam, m in [(1.0, 1.0), (0.2, 3.0), (5.0, 0.5)]:
        assert minimax_sigma_t2(np.full(8, lam), m) == pytest.approx(isotropic_minimax_sigma_t2(lam, m), rel=1e-10)
    assert isotropic_minimax_sigma_t2(1.0, 1.0) == pytest.approx(1 / math.log(2) - 1, rel=1e-12)


def test_average_optimum_is_half_lambda_max_only_with_inference_first():
    assert average_optimal_sigma_t2(SPECTRUM, 3.0) == pytest.approx(1.5, abs=1e-6)
    # Brute force: the average KL over a fine sigma_e^2 grid, minimised over a sigma_t^2 grid.
    e = (np.arange(4000) + 0.5) / 4000 * 3.0
    s = np.linspace(1.3, 1.7, 401)
    means = rho(s[:, None], e[None, :], SPECTRUM).mean(axis=1)
    assert s[np.argmin(means)] == pytest.approx(1.5, abs=0.002)
    assert average_rho(1.5, SPECTRUM, 3.0) == pytest.approx(means[200], rel=1e-6)
    # With the KL order reversed, per coordinate lambda + s = 1 / E[1 / (lambda + sigma_e^2)].
    lam, m = 1.0, 2.0
    reverse = average_optimal_sigma_t2(np.full(3, lam), m, direction="training")
    assert reverse == pytest.approx(m / math.log1p(m / lam) - lam, abs=1e-6)
    assert reverse < 0.9 * m / 2


def test_theorem2_properties_hold_with_inference_first():
    checks = theorem2_checks(SPECTRUM, 3.0)
    assert checks.min_second_difference > 0  # 2.1: convex in sigma_e^2
    assert checks.max_property2_gap < 0  # 2.2: training noise helps once Sigma_e >= sigma_t^2 / 2 I
    # The reverse order is not convex in sigma_e^2 here (second derivative (lam + 2s - e) / (lam + e)^3).
    assert theorem2_checks(SPECTRUM, 3.0, direction="training").min_second_difference < 0


def test_spectrum_from_data_matches_the_covariance():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    x = np.concatenate([x, np.zeros((500, 2))], axis=1)  # two constant pixels
    kept, share, dropped = spectrum_from_data(x, max_dim=4)
    full = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    np.testing.assert_allclose(kept, full[:4], rtol=1e-9)
    assert dropped == 2 and share == pytest.approx(full[:4].sum() / full.sum(), rel=1e-9)


# --- Theorem 1 (I2I poster Eq. 1-2) -----------------------------------------------------
# (X, Y) jointly Gaussian, X the first 2 of 3 coordinates; only X gets the noise.

def _joint_pair(seed: int = 6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=3), _random_covariance(rng, 3), rng.normal(size=3), _random_covariance(rng, 3)


@pytest.mark.parametrize("f", F_DIVERGENCES)
@pytest.mark.parametrize("sigma2", [0.05, 0.5, 2.0])
def test_theorem1_rate_is_minus_half_eta(f, sigma2):
    """Eq. 1: dD_f/dsigma^2 = -eta_f/2, the derivative by a central difference of the closed-form D_f."""
    mp, cp, mq, cq = _joint_pair()
    h = 1e-5
    rate = (theorem1_divergence(sigma2 + h, mp, cp, mq, cq, 2, f) - theorem1_divergence(sigma2 - h, mp, cp, mq, cq, 2, f)) / (2 * h)
    eta = theorem1_eta(sigma2, mp, cp, mq, cq, 2, f)
    assert eta > 0.01  # a real rate, not a vanishing one
    assert rate == pytest.approx(-0.5 * eta, rel=1e-6)  # a factor 1 or 1/4 in place of 1/2 fails here


def test_theorem1_weight_t_f2_matters():
    """For the Hellinger generator the weight t f''(t) = 1/(2 sqrt t) of Eq. 2 is not 1: dropping it is far off."""
    mp, cp, mq, cq = _joint_pair()
    h, sigma2 = 1e-5, 0.5
    rate = (theorem1_divergence(sigma2 + h, mp, cp, mq, cq, 2, "hellinger") - theorem1_divergence(sigma2 - h, mp, cp, mq, cq, 2, "hellinger")) / (2 * h)
    unweighted = theorem1_eta(sigma2, mp, cp, mq, cq, 2, "kl")  # the same score MSE with weight 1
    assert abs(rate + 0.5 * unweighted) > 0.3 * abs(rate)


@pytest.mark.parametrize("f", F_DIVERGENCES)
def test_theorem1_eta_against_monte_carlo(f):
    """Eq. 2 sampled: z ~ P_bar, scores by central differences of scipy's log-densities in x, weight t f''(t)."""
    mp, cp, mq, cq = _joint_pair()
    sigma2, n = 0.3, 100_000
    cpb, cqb = theorem1_noisy_covariance(cp, sigma2, 2), theorem1_noisy_covariance(cq, sigma2, 2)
    p, q = multivariate_normal(mp, cpb), multivariate_normal(mq, cqb)
    z = np.random.default_rng(7).multivariate_normal(mp, cpb, size=n)
    diff = np.zeros((n, 2))
    for i in range(2):
        step = np.zeros(3)
        step[i] = 1e-5
        diff[:, i] = (p.logpdf(z + step) - p.logpdf(z - step) - q.logpdf(z + step) + q.logpdf(z - step)) / 2e-5
    t = np.exp(p.logpdf(z) - q.logpdf(z))
    weight = np.ones(n) if f == "kl" else 0.5 / np.sqrt(t)  # t f''(t): f = t ln t -> 1; f = (sqrt t - 1)^2 -> 1/(2 sqrt t)
    values = weight * (diff**2).sum(1)
    stderr = values.std(ddof=1) / math.sqrt(n)
    assert abs(theorem1_eta(sigma2, mp, cp, mq, cq, 2, f) - values.mean()) < 4 * stderr


def test_theorem1_is_tight_when_the_source_scores_agree():
    """P and Q that differ only in Y's mean (X independent of Y, same law): the x-scores agree, so eta = 0 and
    D_f does not change with sigma^2 at all (Eq. 1 with equality 0); the noise cannot help align them."""
    cov = np.diag([1.0, 0.5, 0.8])
    mp, mq = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    for f in F_DIVERGENCES:
        values = [theorem1_divergence(s, mp, cov, mq, cov, 2, f) for s in (0.0, 0.5, 3.0)]
        assert values[0] > 0.1 and values == pytest.approx([values[0]] * 3, rel=1e-12)
        assert theorem1_eta(0.5, mp, cov, mq, cov, 2, f) == pytest.approx(0.0, abs=1e-12)
    # and the same P, Q with the mean shift moved into X: eta > 0, D_f falls with sigma^2
    mq_x = np.array([1.0, 0.0, 0.0])
    assert theorem1_eta(0.5, mp, cov, mq_x, cov, 2, "kl") > 0.1
    assert theorem1_divergence(0.5, mp, cov, mq_x, cov, 2) < theorem1_divergence(0.0, mp, cov, mq_x, cov, 2)


def test_theorem1_kl_of_a_mean_shift_closed_form():
    """Independent special case: X ~ N(0, v) vs N(m, v), no Y: KL = m^2 / (2 (v + s)), eta = m^2 / (v + s)^2."""
    v, m, s = 0.7, 1.3, 0.4
    one = np.array([[v]])
    assert theorem1_divergence(s, [0.0], one, [m], one, 1) == pytest.approx(m**2 / (2 * (v + s)), rel=1e-12)
    assert theorem1_eta(s, [0.0], one, [m], one, 1) == pytest.approx(m**2 / (v + s) ** 2, rel=1e-12)
    # Hellinger: 2 - 2 exp(-m^2 / (8 (v + s)))
    assert theorem1_divergence(s, [0.0], one, [m], one, 1, "hellinger") == pytest.approx(2 - 2 * math.exp(-(m**2) / (8 * (v + s))), rel=1e-12)


# --- Theorem 3 (I2I poster Eq. 9-10) -----------------------------------------------------
MIXTURE = GaussianMixture1D((0.3, 0.7), (-1.5, 1.0), (0.2, 0.5))  # bimodal: far from Gaussian


@pytest.mark.parametrize("sigma_e2", [0.1, 0.6])
def test_theorem3_eq10_is_the_derivative_of_theta_g(sigma_e2):
    sigma_t2, h = 0.3, 1e-4
    rate = (theorem3_theta(sigma_t2, sigma_e2 + h, MIXTURE) - theorem3_theta(sigma_t2, sigma_e2 - h, MIXTURE)) / (2 * h)
    rhs = theorem3_eq10(sigma_t2, sigma_e2, MIXTURE)
    assert abs(rhs) > 0.1
    assert rate == pytest.approx(rhs, rel=1e-5)  # a wrong 1/2 on either term fails by far more


def test_theorem3_eq10_against_monte_carlo():
    """The expectation of Eq. 10 sampled: x_hat = X + sigma_e N with X from the mixture."""
    sigma_t2, sigma_e2, n = 0.3, 0.1, 200_000
    rng = np.random.default_rng(8)
    x_hat = MIXTURE.sample(n, rng) + math.sqrt(sigma_e2) * rng.standard_normal(n)
    s_hat, s_bar = MIXTURE.smoothed(sigma_e2).score(x_hat), MIXTURE.smoothed(sigma_t2).score(x_hat)
    values = -0.5 * s_hat**2 + 0.5 * s_hat * s_bar
    assert abs(theorem3_eq10(sigma_t2, sigma_e2, MIXTURE) - values.mean()) < 4 * values.std(ddof=1) / math.sqrt(n)


def test_theorem3_eq10_is_zero_at_matched_noise():
    """sigma_e^2 = sigma_t^2: theta_g = 0 is its minimum, and Eq. 10's two terms cancel exactly."""
    assert theorem3_theta(0.3, 0.3, MIXTURE) == pytest.approx(0.0, abs=1e-12)
    assert theorem3_eq10(0.3, 0.3, MIXTURE) == pytest.approx(0.0, abs=1e-12)
    assert theorem3_eq10(0.3, 0.25, MIXTURE) < 0 < theorem3_eq10(0.3, 0.35, MIXTURE)


def test_theorem3_on_a_gaussian_source_is_rho():
    """One component: theta_g = rho (inference first) and Eq. 10 = d rho / d sigma_e^2, in closed form."""
    v, sigma_t2, sigma_e2 = 0.8, 0.3, 0.5
    gaussian = GaussianMixture1D((1.0,), (0.4,), (v,))
    assert theorem3_theta(sigma_t2, sigma_e2, gaussian) == pytest.approx(rho(sigma_t2, sigma_e2, [v]), rel=1e-8)
    closed = theorem3_eq10_gaussian(sigma_t2, sigma_e2, [v])
    assert closed == pytest.approx(0.5 * (1 / (v + sigma_t2) - 1 / (v + sigma_e2)), rel=1e-14)
    assert theorem3_eq10(sigma_t2, sigma_e2, gaussian) == pytest.approx(closed, rel=1e-8)
    h, lam = 1e-6, np.array([2.0, 0.7, 0.1])
    rate = (rho(sigma_t2, sigma_e2 + h, lam) - rho(sigma_t2, sigma_e2 - h, lam)) / (2 * h)
    assert theorem3_eq10_gaussian(sigma_t2, sigma_e2, lam) == pytest.approx(rate, rel=1e-7)


def test_theorem3_eq9_holds_for_signal_independent_noise_only():
    """Eq. 9: theta - theta_g = o(sigma_e^2).  Uniform noise independent of X: the gap over sigma_e^2 halves
    with sigma_e^2 (it is O(sigma_e^4)).  Noise of the same power whose variance grows with the signal
    (like Poisson or salt-and-pepper): the gap over sigma_e^2 stays of order one, so Eq. 9 fails."""
    sigma_t2 = 0.3

    def gap(noise, e):
        return (theorem3_theta(sigma_t2, e, MIXTURE, noise, points=4001) - theorem3_theta(sigma_t2, e, MIXTURE, points=4001)) / e

    uniform = [gap("uniform", e) for e in (0.02, 0.01)]
    assert abs(uniform[1]) < 0.6 * abs(uniform[0]) and abs(uniform[1]) < 0.005
    dependent = [gap("signal_dependent", e) for e in (0.02, 0.01)]
    assert abs(dependent[1]) > 0.9 * abs(dependent[0]) and abs(dependent[1]) > 0.05


# --- truncation of the spectrum ----------------------------------------------------------


def test_minimax_by_truncation():
    lam = np.array([3.0, 1.0, 0.4, 0.05, 0.01, 0.002])
    rows = minimax_by_truncation(lam, 3.0, [2, 4, 100, None])
    by_k = {r["k"]: r for r in rows}
    full = minimax_sigma_t2(lam, 3.0)
    assert by_k[None]["minimax_sigma_t2"] == pytest.approx(full, rel=1e-12) and by_k[None]["kept"] == 6
    assert by_k[100]["minimax_sigma_t2"] == pytest.approx(full, rel=1e-12) and by_k[100]["kept"] == 6
    assert by_k[2]["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(lam[:2], 3.0), rel=1e-12)
    assert by_k[4]["variance_share"] == pytest.approx(4.45 / lam.sum()) and by_k[4]["smallest_kept"] == 0.05
    # the small eigenvalues pull the minimax optimum down: it moves by a factor > 2 here
    assert by_k[2]["minimax_sigma_t2"] > by_k[4]["minimax_sigma_t2"] > by_k[None]["minimax_sigma_t2"]
    assert by_k[2]["minimax_sigma_t2"] > 2 * by_k[None]["minimax_sigma_t2"]
    assert TRUNCATIONS == (8, 16, 32, 64, 128, None)


def test_spectrum_from_data_keeps_all_with_none():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, 100))  # fewer images than pixels: 39 positive eigenvalues
    kept, share, dropped = spectrum_from_data(x, None)
    assert kept.size == 39 and dropped == 0 and share == pytest.approx(1.0)
    assert spectrum_from_data(x, 10)[0] == pytest.approx(kept[:10])
    with pytest.raises(ValueError, match="max_dim"):
        spectrum_from_data(x, 0)


# --- the command ----------------------------------------------------------------------


@pytest.fixture
def cli():
    """``python -m analysis``, with this command registered."""
    assert MODULE in analysis_main.COMMAND_MODULES
    return analysis_main.main


def test_command_defaults(cli, tmp_path, capsys):
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    assert cli(["i2i-noise", "--out", str(out), "--plot", str(plot)]) == 0
    result = json.loads(out.read_text())
    assert result["lambda_max"] == 1.0 and len(result["eigenvalues"]) == 64
    assert result["minimax_sigma_t2"] == pytest.approx(1 / math.log(2) - 1, rel=1e-9)
    assert result["average_sigma_t2"] == pytest.approx(0.5, abs=1e-6)
    by_method = {(r["criterion"], r["method"].split(":")[0]): r for r in result["rows"]}
    assert by_method[("average, training first", "quad + bounded Brent (other KL order)")]["sigma_t2"] == pytest.approx(
        1 / math.log(2) - 1, abs=1e-6
    )
    assert by_method[("no training noise", "sigma_t^2 = 0")]["worst_KL"] == pytest.approx(
        32 * (1 - math.log(2)), rel=1e-9  # 64/2 * (2 - 1 - ln 2)
    )
    assert "DIFFERS" not in capsys.readouterr().out
    assert plot.stat().st_size > 10_000


def test_command_with_eigenvalues_and_data(cli, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli(["i2i-noise", "--eigenvalues", "3", "1", "0.4", "0.05", "--lambda-max", "3", "--sigma-t", "0.5", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(SPECTRUM, 3.0), rel=1e-9)
    assert result["average_sigma_t2"] == pytest.approx(1.5, abs=1e-6)
    capsys.readouterr()
    assert cli(["i2i-noise", "--data", "DigitsDataModule", "--data-args", '{"resolution": 8}', "--limit", "300", "--max-dim", "16"]) == 0
    printed = capsys.readouterr().out
    assert "pixel covariance (pixels in [0, 1]) of 300 images of 64 pixels; kept the top 16 eigenvalues" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--eigenvalues", "1", "-0.5"], "--eigenvalues (the source covariance must be positive definite): every value must be a positive number, got -0.5"),
        (["--eigenvalues", "1", "0"], "every value must be a positive number, got 0.0"),
        (["--lambda-max", "0"], "--lambda-max must be a positive number, got 0.0"),
        (["--dim", "0"], "--dim must be >= 1, got 0"),
        (["--truncations", "0"], "expected a count >= 1 or 'all', got '0'"),
        (["--eigenvalues", "1", "--dim", "3"], "give one source, --eigenvalues, --data or --dim/--source-variance; got --eigenvalues and --dim"),
        (["--sigma-t2", "-1"], "training noise must be finite and >= 0, got -1.0"),
    ],
)
def test_command_rejects_bad_input(cli, capsys, argv, message):
    assert cli(["i2i-noise", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_command_reports_the_minimax_optimum_per_truncation(cli, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["i2i-noise", "--data", "DigitsDataModule", "--data-args", '{"resolution": 8}', "--limit", "300"]
    assert cli([*argv, "--max-dim", "all", "--truncations", "8", "32", "all", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    lam = np.asarray(result["eigenvalues"])
    assert result["max_dim"] is None and result["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(lam, result["lambda_max"]))
    rows = {r["k"]: r for r in result["minimax_by_truncation"]}
    assert rows[None]["minimax_sigma_t2"] == pytest.approx(result["minimax_sigma_t2"], rel=1e-12)
    assert rows[8]["minimax_sigma_t2"] == pytest.approx(minimax_sigma_t2(lam[:8], result["lambda_max"]), rel=1e-12)
    assert rows[8]["minimax_sigma_t2"] > 1.5 * rows[None]["minimax_sigma_t2"]  # the truncation moves the prediction
    printed = capsys.readouterr().out
    assert "kept all positive eigenvalues (--max-dim all" in printed and "minimax sigma_t^2 by truncation" in printed
    # --max-dim 8 gives the k = 8 row as the headline
    assert cli([*argv, "--max-dim", "8", "--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["minimax_sigma_t2"] == pytest.approx(rows[8]["minimax_sigma_t2"], rel=1e-12)
    assert [r["k"] for r in again["minimax_by_truncation"]] == list(TRUNCATIONS)  # the default report with --data
