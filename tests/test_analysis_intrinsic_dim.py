"""Levina-Bickel intrinsic dimension (seed DE-GAN Eq. 15-17) and the ``intrinsic-dim`` command."""

import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import make_swiss_roll
from sklearn.neighbors import NearestNeighbors

import analysis.__main__ as analysis_main
from analysis.intrinsic_dim import knn_distances, levina_bickel, mle_per_point, unique_rows

MODULE = "analysis.commands.intrinsic_dim"


def _brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The full distance matrix from coordinate differences (scipy cdist), self excluded."""
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    i = np.argsort(full, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(full, i, axis=1), i


def _sklearn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d, i = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x).kneighbors(x)
    return d[:, 1:], i[:, 1:]  # column 0 is the point itself (no duplicates in these data)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_chunked_knn_equals_brute_force(precision):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(403, 17)) * 3.0 + 50.0  # an offset, which centring must undo
    # Chunk sizes that divide nothing, so partial chunks and blocks are exercised.
    d, i = knn_distances(x, 9, query_chunk=37, ref_chunk=53, precision=precision)
    d_ref, i_ref = _brute_force(x, 9)
    np.testing.assert_allclose(d, d_ref, rtol=1e-12)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_array_equal(i, _sklearn(x, 9)[1])


def test_float32_search_falls_back_to_float64_when_it_cannot_tell():
    """Two tight clusters far apart: float32 rounding (~1e-2 in squared distance) swamps the
    neighbour distances (~1e-6), so every row must be searched again, and the answer stay exact."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6)) * 1e-3
    x[:100, 0] += 1000.0
    x[100:, 0] -= 1000.0
    stats: dict = {}
    d, i = knn_distances(x, 5, query_chunk=64, ref_chunk=70, precision="float32", stats=stats)
    d_ref, i_ref = _brute_force(x, 5)
    assert stats["rechecked_rows"] > 150
    np.testing.assert_allclose(d, d_ref, rtol=1e-9)
    np.testing.assert_array_equal(i, i_ref)


def test_eq15_by_hand():
    # T = (1, 2, 4): k = 3 -> [ (log 4/1 + log 4/2) / 2 ]^-1 = 1 / (1.5 ln 2); k = 2 -> 1 / ln 2.
    m = mle_per_point(np.array([[1.0, 2.0, 4.0]]), [2, 3])
    np.testing.assert_allclose(m[0], [1 / math.log(2), 1 / (1.5 * math.log(2))], rtol=1e-12)


def test_linear_subspace_dimension_5_in_50():
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(50, 5)))[0]
    x = rng.normal(size=(2000, 5)) @ basis.T + 7.0
    result = levina_bickel(x, 10, 20)
    assert result.inverse == pytest.approx(np.full(11, 5.0), rel=0.10)  # MacKay-Ghahramani, every k
    assert result.mean[-1] == pytest.approx(5.0, rel=0.10)  # Eq. 16 at k = 20
    # Eq. 16 at small k carries its (k-1)/(k-2) bias: at k = 10 it is 12.5 % above d on average.
    assert result.mean[0] == pytest.approx(5.0 * 9 / 8, rel=0.05)


def test_swiss_roll_dimension_2():
    x, _ = make_swiss_roll(2000, random_state=0)
    result = levina_bickel(x, 10, 20)
    assert result.inverse[0] == pytest.approx(2.0, rel=0.10)
    assert result.mean[-1] == pytest.approx(2.0, rel=0.10)


def test_three_sphere_rotated_into_20_dimensions():
    rng = np.random.default_rng(4)
    s = rng.normal(size=(2000, 4))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    x = s @ np.linalg.qr(rng.normal(size=(20, 4)))[0].T
    result = levina_bickel(x, 10, 20)
    assert result.inverse[-1] == pytest.approx(3.0, rel=0.10)
    assert result.mean[-1] == pytest.approx(3.0, rel=0.10)


def test_duplicates_are_removed_and_counted():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3))
    with_copies = np.concatenate([x, x[:40], x[:5]])
    unique, dropped = unique_rows(with_copies)
    assert dropped == 45 and len(unique) == 300
    a, b = levina_bickel(with_copies, 5, 8), levina_bickel(x, 5, 8)
    assert a.n_duplicates == 45 and a.n_points == 300
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)


# --- the command ----------------------------------------------------------------------


@pytest.fixture
def cli():
    """``python -m analysis``, with this command registered."""
    assert MODULE in analysis_main.COMMAND_MODULES
    return analysis_main.main


def test_command_on_an_array(cli, tmp_path, capsys):
    rng = np.random.default_rng(6)
    basis = np.linalg.qr(rng.normal(size=(12, 4)))[0]
    x = rng.normal(size=(800, 4)) @ basis.T
    path = tmp_path / "x.npy"
    np.save(path, x)
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    assert cli(["intrinsic-dim", "--array", str(path), "--k-min", "6", "--k-max", "12", "--out", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "N = 800 distinct points in D = 12" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["k"] for r in rows] == list(range(6, 13))
    expected = levina_bickel(x, 6, 12)
    np.testing.assert_allclose([r["M_k"] for r in rows], expected.mean, rtol=1e-12)
    np.testing.assert_allclose([r["M_k_inverse"] for r in rows], expected.inverse, rtol=1e-12)
    assert rows[-1]["M_k_inverse"] == pytest.approx(4.0, rel=0.15)
    assert plot.stat().st_size > 10_000


def test_command_on_digits(cli, capsys):
    assert cli(["intrinsic-dim", "--data", "DigitsDataModule", "--data-args", '{"resolution": 8}', "--limit", "300",
                "--k-min", "3", "--k-max", "6"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "D = 64" in printed and "pixels scaled to [0, 1]" in printed
    table = [line.split() for line in printed.splitlines() if line.split() and line.split()[0] in "3456"]
    assert len(table) == 4 and all(2.0 < float(r[1]) < 30.0 for r in table)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--k-min", "10", "--k-max", "10"], "--k-min must be smaller than --k-max, got --k-min 10 --k-max 10"),
        (["--k-min", "1", "--k-max", "5"], "--k-min must be >= 2"),
        (["--k-max", "900"], "k_max = 900 needs at least 901 distinct points, got 50"),
        (["--chunk", "0"], "--chunk must be >= 1, got 0"),
    ],
)
def test_command_rejects_bad_k(cli, tmp_path, capsys, argv, message):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(50, 3)))
    assert cli(["intrinsic-dim", "--array", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_command_rejects_bad_arrays(cli, tmp_path, capsys):
    missing = tmp_path / "nope.npy"
    assert cli(["intrinsic-dim", "--array", str(missing)]) == 2
    assert f"--array {missing}: no such file" in capsys.readouterr().err
    flat = tmp_path / "flat.npy"
    np.save(flat, np.arange(10.0))
    assert cli(["intrinsic-dim", "--array", str(flat)]) == 2
    assert "expected an [N, D] array, got shape (10,)" in capsys.readouterr().err
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((30, 2), np.nan))
    assert cli(["intrinsic-dim", "--array", str(nan)]) == 2
    assert "NaN or infinite" in capsys.readouterr().err
    assert cli(["intrinsic-dim"]) == 2
    assert "give exactly one input" in capsys.readouterr().err
