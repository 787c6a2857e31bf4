"""NoiseSpec: sampling (shape, dtype, device, seed, moments) and its entropy."""

import pytest
import torch

from analysis.float_entropy import monte_carlo_entropy_bits
from core.float_entropy import entropy_bits
from core.noise import NoiseSpec

FORMAT_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
}


@pytest.mark.parametrize("fmt", list(FORMAT_DTYPES))
@pytest.mark.parametrize("distribution", ["gaussian", "uniform", "discrete"])
def test_shape_and_dtype(fmt, distribution):
    spec = NoiseSpec(dim=5, distribution=distribution, format=fmt, bits=3)
    z = spec.sample(7)
    assert z.shape == (7, 5) and z.dtype == FORMAT_DTYPES[fmt] == spec.dtype


@pytest.mark.parametrize("distribution", ["gaussian", "uniform", "discrete"])
def test_samples_on_the_requested_device(distribution):
    z = NoiseSpec(dim=3, distribution=distribution, bits=2).sample(4, device="meta")
    assert z.device.type == "meta" and z.shape == (4, 3)


@pytest.mark.parametrize("distribution", ["gaussian", "uniform", "discrete"])
def test_reproducible_under_a_seed(distribution):
    spec = NoiseSpec(dim=16, distribution=distribution)
    a = spec.sample(32, generator=torch.Generator().manual_seed(1))
    b = spec.sample(32, generator=torch.Generator().manual_seed(1))
    c = spec.sample(32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "distribution, fmt, mean, var",
    [
        ("gaussian", "float32", 0.0, 1.0),
        ("gaussian", "float64", 0.0, 1.0),
        ("gaussian", "bfloat16", 0.0, 1.0),
        ("gaussian", "float8_e5m2", 0.0, 1.0),
        ("uniform", "float32", 0.0, 1.0 / 3.0),
        ("uniform", "float16", 0.0, 1.0 / 3.0),
        ("discrete", "float32", 0.0, 1.0),
    ],
)
def test_moments(distribution, fmt, mean, var):
    z = NoiseSpec(dim=100, distribution=distribution, format=fmt, bits=4).sample(
        4000, generator=torch.Generator().manual_seed(0)
    )
    z = z.double()
    # 4e5 draws: standard error of the mean <= 0.0016, of the variance <= 0.003; rounding to
    # e5m2 (2 mantissa bits) changes the variance by about 1%.
    assert z.mean().item() == pytest.approx(mean, abs=0.01)
    assert z.var().item() == pytest.approx(var, rel=0.02)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_discrete_noise_takes_exactly_2_to_the_b_values_per_dimension(bits):
    spec = NoiseSpec(dim=4, distribution="discrete", bits=bits)
    z = spec.sample(20 * 2**bits, generator=torch.Generator().manual_seed(0))
    for d in range(spec.dim):
        assert torch.unique(z[:, d]).numel() == 2**bits
    assert torch.unique(z).numel() == 2**bits
    assert spec.entropy_bits() == 4 * bits
    levels = spec.levels().double()
    assert levels.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert levels.pow(2).mean().item() == pytest.approx(1.0, abs=1e-6)


def test_ideal_entropy_of_n_dimensions_is_n_times_one():
    for fmt in FORMAT_DTYPES:
        one = NoiseSpec(dim=1, format=fmt).entropy_bits_ideal()
        assert one == entropy_bits(fmt) == NoiseSpec(dim=5, format=fmt).entropy_bits_per_dim_ideal()
        assert NoiseSpec(dim=37, format=fmt).entropy_bits_ideal() == pytest.approx(37 * one, rel=1e-15)
    assert NoiseSpec(dim=10, distribution="uniform").entropy_bits_ideal() == pytest.approx(10 * 26.0, abs=1e-5)


def test_entropy_as_drawn_is_what_torch_draws():
    """The as-drawn entropy (tests/test_sampler_entropy.py derives it): 24 random bits per float32 value."""
    assert NoiseSpec(dim=32).entropy_bits() == 32 * 24.0
    assert NoiseSpec(dim=32).entropy_bits_per_dim("cpu") == 24.0
    assert NoiseSpec(dim=10, distribution="uniform").entropy_bits() == 10 * 24.0
    for fmt in FORMAT_DTYPES:  # never above the ideal by more than the derived margin
        drawn, ideal = NoiseSpec(dim=16, format=fmt).entropy_bits(), NoiseSpec(dim=16, format=fmt).entropy_bits_ideal()
        assert drawn <= ideal + 16 * 5e-4


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16", "float8_e4m3fn"])
@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
def test_sampler_draws_the_distribution_whose_entropy_it_reports(fmt, distribution):
    """Eq. 6 (Monte Carlo over the sampler's own draws) agrees with the exact entropy."""
    z = NoiseSpec(dim=1, distribution=distribution, format=fmt).sample(
        200_000, generator=torch.Generator().manual_seed(0)
    )
    estimate, stderr = monte_carlo_entropy_bits(z, fmt, distribution)
    assert abs(estimate - entropy_bits(fmt, distribution)) < 5 * stderr


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"format": "float8"}, "'float8'"),
        ({"distribution": "cauchy"}, "'cauchy'"),
        ({"dim": 0}, "noise.dim"),
        ({"dim": -3}, "-3"),
        ({"dim": 2.5}, "2.5"),
        ({"distribution": "discrete", "bits": 0}, "noise.bits"),
        ({"distribution": "discrete", "bits": 17}, "17"),
        ({"distribution": "discrete", "bits": 8, "format": "float8_e5m2"}, "collide"),
    ],
)
def test_bad_spec_names_the_value(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        NoiseSpec(**kwargs)


def test_dict_round_trip_and_unknown_key():
    spec = NoiseSpec(dim=3, distribution="discrete", bits=2, format="float16")
    assert NoiseSpec.coerce(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="dimension"):
        NoiseSpec.coerce({"dimension": 3})
