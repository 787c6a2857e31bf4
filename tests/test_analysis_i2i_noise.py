"""KL of Gaussian inputs and the optimal training-noise level (seed "I2I Gaussian noise injection")."""

import json
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import analysis.__main__ as analysis_main
from analysis.i2i_noise import (
    average_optimal_sigma_t2,
    average_rho,
    gaussian_kl,
    isotropic_minimax_sigma_t2,
    minimax_sigma_t2,
    minimax_sigma_t2_grid,
    rho,
    rho_general,
    spectrum_from_data,
    theorem2_checks,
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
        (["--eigenvalues", "1", "--dim", "3"], "give one source, --eigenvalues, --data or --dim/--source-variance; got --eigenvalues and --dim"),
        (["--sigma-t2", "-1"], "training noise must be finite and >= 0, got -1.0"),
    ],
)
def test_command_rejects_bad_input(cli, capsys, argv, message):
    assert cli(["i2i-noise", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
