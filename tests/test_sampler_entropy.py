"""The noise entropy as torch draws it (core/sampler_entropy.py): torch's output rebuilt from its
uniforms, the derived numbers, the derivation checked where it can be enumerated, the exact sampler.

The CUDA tests at the end need a GPU (they are skipped without one) and must be run once on
a GPU whenever torch or the CUDA toolkit changes: they rebuild torch's CUDA draws from
cuRAND's transforms, which is what the CUDA numbers are derived from.
"""

import math

import numpy as np
import pytest
import torch

from analysis.float_entropy import monte_carlo_entropy_bits
from core import sampler_entropy as se
from core.float_entropy import FORMATS, entropy_bits, representable_values
from core.noise import NoiseSpec, round_float64

NARROW = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU; run once on a GPU (module docstring)")


def _box_muller_blocks(u: torch.Tensor) -> torch.Tensor:
    """torch's vectorised CPU randn from its uniforms, in float64: per block of 16, u1 = 1 - u[:8], u2 = u[8:]."""
    u = u.double().view(-1, 16)
    radius = torch.sqrt(-2 * torch.log(1 - u[:, :8]))
    theta = 2 * math.pi * u[:, 8:]
    return torch.cat([radius * torch.cos(theta), radius * torch.sin(theta)], 1).reshape(-1)


def _radius_blocks(u: torch.Tensor) -> torch.Tensor:
    r = torch.sqrt(-2 * torch.log(1 - u.double().view(-1, 16)[:, :8]))
    return torch.cat([r, r], 1).reshape(-1)


def _cpu_randn_reference(total: int, seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """What CPU randn(total >= 16) computes, from rand of the same seed: values and radii (float64)."""
    torch.manual_seed(seed)
    u = torch.rand(total + 16, dtype=dtype)  # the first total, then the 16 of the last block redrawn
    whole = total // 16 * 16
    ref = torch.zeros(total, dtype=torch.float64)
    radius = torch.zeros(total, dtype=torch.float64)
    ref[:whole], radius[:whole] = _box_muller_blocks(u[:whole]), _radius_blocks(u[:whole])
    if total % 16:
        ref[total - 16 :] = _box_muller_blocks(u[total : total + 16])
        radius[total - 16 :] = _radius_blocks(u[total : total + 16])
    return ref, radius


# ============================================================================ CPU uniforms
def test_cpu_rand_is_on_the_24_bit_and_53_bit_grids():
    torch.manual_seed(0)
    u32 = torch.rand(1 << 16).double() * 2**24
    assert torch.equal(u32, u32.round()) and u32.max() < 2**24
    torch.manual_seed(0)
    u64 = torch.rand(1 << 16, dtype=torch.float64) * 2**53
    assert torch.equal(u64, u64.round()) and u64.max() < 2**53
    assert (u64 % 2**29 != 0).float().mean() > 0.99  # finer than 24 bits: 53 bits are used


def test_cpu_randint_and_rand_share_one_32_bit_word_per_element():
    """randint(0, 2^b) = random() % 2^b and rand = (random() & (2^24 - 1)) 2^-24 read the same words."""
    for bits in (1, 8, 16):
        torch.manual_seed(3)
        words = (torch.rand(4096).double() * 2**24).long()
        torch.manual_seed(3)
        assert torch.equal(torch.randint(0, 2**bits, (4096,)), words % 2**bits)


# =================================================================== CPU Box-Muller paths
@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_randn_vectorised_path_is_box_muller_of_rand(seed):
    """randn(4096) = Box-Muller of rand(4096) of the same seed, to the float error rho of the derivation."""
    total = 1 << 18
    ref, radius = _cpu_randn_reference(total, seed)
    torch.manual_seed(seed)
    z = torch.randn(total).double()
    error = (z - ref).abs()
    assert error.max() < 5e-6
    # The assumption of the derivation: |drawn - exact Box-Muller| <= rho R (rho = 2^-20).
    rho = se._SOURCES["cpu_float32"].rho
    assert (error <= rho * radius / 2).all()  # with a factor 2 to spare


@pytest.mark.parametrize("total", [17, 37, 100, 250, 16 * 5 + 15])
def test_cpu_randn_remainder_path_redraws_the_last_16(total):
    ref, radius = _cpu_randn_reference(total, seed=total)
    torch.manual_seed(total)
    z = torch.randn(total).double()
    assert ((z - ref).abs() <= se._SOURCES["cpu_float32"].rho * radius / 2 + 1e-12).all()


@pytest.mark.parametrize("total", [16, 37, 100, 6 * 16 + 3, 300])
def test_cpu_partners_are_the_box_muller_pairs(total):
    """_cpu_partners names, for each element, the one sharing its radius (z_i^2 + z_j^2 = R^2)."""
    ref, radius = _cpu_randn_reference(total, seed=7)
    torch.manual_seed(7)
    z = torch.randn(total).double()
    partner = se._cpu_partners(total)
    paired = np.flatnonzero(partner >= 0)
    r2 = (z[paired] ** 2 + z[partner[paired]] ** 2).numpy()
    assert np.allclose(r2, radius[paired].numpy() ** 2, rtol=1e-5, atol=1e-10)
    # An element alone had its block partner overwritten by the redrawn last 16.
    for i in np.flatnonzero(partner < 0):
        block_partner = i + 8 if i % 16 < 8 else i - 8
        assert total % 16 and i < total - 16 <= block_partner
    # ... and every element of the last whole block whose partner was overwritten is alone.
    if total % 16:
        last_block = range(total // 16 * 16 - 16, total - 16)
        survivors = [i for i in last_block if (i + 8 if i % 16 < 8 else i - 8) >= total - 16]
        assert sorted(np.flatnonzero(partner < 0).tolist()) == survivors


def test_cpu_randn_float64_path_is_box_muller_of_53_bit_rand():
    total = 1 << 16
    ref, radius = _cpu_randn_reference(total, seed=5, dtype=torch.float64)
    torch.manual_seed(5)
    z = torch.randn(total, dtype=torch.float64)
    assert ((z - ref).abs() <= se._SOURCES["cpu_float64"].rho * radius / 2).all()


def test_cpu_randn_small_path_pairs_53_bit_uniforms_across_calls():
    """numel < 16: normal_distribution<double> (theta from u1, r from log1p(-u2)); r sin(theta) waits in the
    generator for the next call."""
    torch.manual_seed(11)
    u = torch.rand(16, dtype=torch.float64)
    u1, u2 = u[0::2], u[1::2]
    r = torch.sqrt(-2 * torch.log1p(-u2))
    stream = torch.stack([r * torch.cos(2 * math.pi * u1), r * torch.sin(2 * math.pi * u1)], 1).reshape(-1)
    torch.manual_seed(11)
    calls = [torch.randn(3), torch.randn(5), torch.randn(2, dtype=torch.float64)]
    drawn = torch.cat([c.double() for c in calls])
    expected = torch.cat([stream[:3].float().double(), stream[3:8].float().double(), stream[8:10]])
    assert (drawn - expected).abs().max() < 1e-15  # the 4th value is the sine cached by the first call


def test_noise_spec_draws_through_these_paths():
    """NoiseSpec.sample is one randn/rand/randint of [batch, dim] in the work dtype, then the cast."""
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(NoiseSpec(dim=100).sample(3, generator=g()), torch.randn(3, 100, generator=g()))
    assert torch.equal(
        NoiseSpec(dim=7, format="bfloat16").sample(5, generator=g()), torch.randn(5, 7, generator=g()).bfloat16()
    )
    assert torch.equal(
        NoiseSpec(dim=9, distribution="uniform", format="float16").sample(4, generator=g()),
        (torch.rand(4, 9, generator=g()) * 2 - 1).half(),
    )
    assert torch.equal(
        NoiseSpec(dim=5, format="float64").sample(4, generator=g()),
        torch.randn(4, 5, dtype=torch.float64, generator=g()),
    )


# ===================================================================== layout and numbers
@pytest.mark.parametrize("dim", [16, 32, 128, 512])
def test_dims_that_are_multiples_of_16_keep_every_pair_in_its_sample(dim):
    for batch in (1, 2, 3, 64):
        assert se.sample_layout(dim, batch) == [(dim // 2, 0)] * batch


def test_sample_layout_matches_the_rebuilt_pairs():
    """Pairs inside a sample / values alone, counted from the reconstruction (radii shared by two values)."""
    for dim, batch in [(100, 3), (8, 4), (24, 5), (3, 7), (37, 2)]:
        total = dim * batch
        partner = se._cpu_partners(total)
        rows = np.arange(total) // dim
        for row, (pairs, singles) in enumerate(se.sample_layout(dim, batch)):
            mine = np.flatnonzero(rows == row)
            inside = [i for i in mine if partner[i] >= 0 and partner[i] // dim == row]
            assert pairs == len(inside) // 2 and singles == dim - len(inside)
    # Below 16 elements the one-at-a-time path: at most one value alone at each end of a sample.
    assert se.sample_layout(3, 4) == [(1, 1)] * 4 and se.sample_layout(4, 2) == [(1, 2)] * 2


@pytest.mark.parametrize("dim", list(range(1, 41)) + [100, 200])
def test_the_any_batch_search_covers_every_layout(dim):
    """The layout repeats with batch * dim mod 16: searching 4x more batch sizes finds nothing new."""

    def worst(batches):
        return max(
            max(p * 2 + s * 3 for p, s in se.sample_layout(dim, b)) for b in batches
        )  # a weight that prefers values alone, like h1 > pair bits / 2

    assert worst(se._batch_sizes(dim)) == worst(range(1, 4 * len(se._batch_sizes(dim))))


def test_gaussian_float32_on_cpu_is_at_most_24_bits_per_dimension():
    """The acceptance number: Box-Muller of 24-bit uniforms, 48 bits per pair."""
    spec = NoiseSpec(dim=32)
    assert spec.entropy_bits_per_dim() == 24.0 and spec.entropy_bits() == 32 * 24.0
    assert spec.entropy_bits_per_dim_ideal() == pytest.approx(26.4637, abs=1e-4)
    for batch in (1, 7, 64):
        assert spec.entropy_bits(batch_size=batch) == 32 * 24.0
    assert NoiseSpec(dim=128, format="float64").entropy_bits_per_dim() == 53.0
    assert NoiseSpec(dim=128, format="float64").entropy_bits_per_dim_ideal() == pytest.approx(55.4637, abs=1e-4)


def test_straddling_pairs_raise_the_per_sample_bound_and_it_holds_for_every_batch():
    one = se.scalar_entropy_bits("gaussian", "float32", "cpu").upper  # a value alone: near the ideal
    assert entropy_bits("float32") < one < entropy_bits("float32") + 1e-3
    spec = NoiseSpec(dim=100)
    per_batch = [spec.entropy_bits(batch_size=b) for b in range(1, 80)]
    assert max(per_batch) == spec.entropy_bits()  # None = the worst batch
    # A sample of 100 meets at most 12 values whose partner is in a neighbouring sample (64 of them do).
    assert max(s for b in range(1, 80) for _, s in se.sample_layout(100, b)) == 12
    assert spec.entropy_bits() == pytest.approx(88 * 24 + 12 * one) == spec.entropy_bits(batch_size=64)
    # dim 8: every pair straddles two samples (8 values alone per sample)
    assert NoiseSpec(dim=8).entropy_bits(batch_size=2) == pytest.approx(8 * one)
    # below 16 values, 53-bit doubles one at a time: each value near the ideal float32 entropy
    small = se.scalar_entropy_bits("gaussian", "float32", "cpu", "torch", "small").upper
    assert NoiseSpec(dim=3).entropy_bits(batch_size=2) == pytest.approx(3 * small)


def test_uniform_and_discrete_are_exact():
    for fmt in NARROW:
        torch_dtype = FORMATS[fmt].torch_dtype
        z = (torch.arange(2**24, dtype=torch.float64) * 2**-24 * 2 - 1).float().to(torch_dtype)
        _, counts = torch.unique(z.double(), return_counts=True)
        p = counts.double() / 2**24
        brute = float(-(p * torch.log2(p)).sum())
        bounds = se.scalar_entropy_bits("uniform", fmt, "cpu")
        assert bounds.exact and bounds.upper == pytest.approx(brute, abs=1e-9)
        assert NoiseSpec(dim=10, distribution="uniform", format=fmt).entropy_bits() == pytest.approx(10 * brute)
    assert NoiseSpec(dim=10, distribution="uniform").entropy_bits_per_dim() == 24.0
    assert NoiseSpec(dim=10, distribution="uniform", format="float64").entropy_bits_per_dim() == 53.0
    assert NoiseSpec(dim=10, distribution="uniform").entropy_bits_per_dim_ideal() == pytest.approx(26.0, abs=1e-6)
    for device in ("cpu", "cuda"):
        assert NoiseSpec(dim=6, distribution="discrete", bits=5).entropy_bits(device) == 30.0


def test_the_uniform_tables_are_the_enumerations():
    """CPU: 2^24 grid points; CUDA: the 5 * 2^24 cuRAND float atoms (about 20 s), through fl(2u - 1) and the cast."""
    assert se._uniform_cpu_float32() == pytest.approx(se._UNIFORM_FLOAT32["cpu"], abs=1e-12)
    assert se._uniform_cuda_float32() == pytest.approx(se._UNIFORM_FLOAT32["cuda"], abs=1e-12)


def test_curand_float_atoms_count_every_32_bit_word_once():
    """float(x) of every 32-bit x, with how many x round to it: brute force at the start and end of each binade."""
    total, previous = 0.0, -1.0
    for f, count in se._curand_float_atoms():
        assert f[0] > previous and np.all(np.diff(f) > 0)  # sorted, distinct
        previous = f[-1]
        total += count.sum()
        for atoms, counts in ((f[:300], count[:300]), (f[-300:], count[-300:])):
            x = np.arange(max(0, int(atoms[0]) - 600), min(2**32, int(atoms[-1]) + 600), dtype=np.int64)
            values, brute = np.unique(x.astype(np.float32).astype(np.float64), return_counts=True)
            inner = np.isin(values, atoms[1:-1])  # atoms whose every x lies in the brute-force range
            assert np.array_equal(brute[inner], counts[np.isin(atoms, values[inner])])
    assert total == 2**32


@pytest.mark.parametrize("fmt", NARROW)
def test_narrow_gaussian_formats_are_the_ideal_up_to_a_derived_margin(fmt):
    ideal = entropy_bits(fmt)
    for device in ("cpu", "cuda"):
        drawn = NoiseSpec(dim=1, format=fmt).entropy_bits_per_dim(device)
        assert ideal <= drawn < ideal + 5e-4


# ========================================================== the derivation, where enumerable
def _toy_box_muller(bits: int, fmt: str) -> float:
    """Exact entropy of Box-Muller on two ``bits``-bit uniforms (numpy float32), cast to ``fmt``."""
    k = np.arange(2**bits, dtype=np.float32)
    u1 = np.float32(1) - k * np.float32(2.0**-bits)
    u2 = k * np.float32(2.0**-bits)
    radius = np.sqrt(np.float32(-2) * np.log(u1))
    cos = np.cos(np.float32(2 * math.pi) * u2)
    x = (radius[:, None] * cos[None, :]).ravel()
    _, counts = torch.unique(torch.from_numpy(x).to(FORMATS[fmt].torch_dtype).double(), return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum())


@pytest.mark.parametrize("bits", [10, 11])
@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2", "bfloat16"])
def test_the_one_value_bounds_bracket_an_enumerable_box_muller(bits, fmt):
    """The derivation of step 2 applied to a sampler small enough to enumerate (2^(2 bits) pairs)."""
    grid = 2.0**-bits
    source = se._Source("toy", 2.0 * bits, grid, 2.0**-20, 2 * math.pi * grid, se._radius(grid))
    bounds = se._bounds_for_format(se._model(source, "gaussian", False), FORMATS[fmt])
    exact = _toy_box_muller(bits, fmt)
    assert bounds.lower <= exact <= bounds.upper


@pytest.mark.parametrize("bits", [9, 12])
@pytest.mark.parametrize("fmt", ["float8_e5m2", "bfloat16", "float16"])
def test_the_one_value_bounds_bracket_an_enumerable_uniform(bits, fmt):
    k = torch.arange(2**bits, dtype=torch.float64)
    z = (k * 2.0**-bits * 2 - 1).float().to(FORMATS[fmt].torch_dtype)
    _, counts = torch.unique(z.double(), return_counts=True)
    p = counts.double() / 2**bits
    exact = float(-(p * torch.log2(p)).sum())
    source = se._Source("toy", 0.0, 2.0**-bits, 0.0, 0.0, 1.0)
    bounds = se._bounds_for_format(se._model(source, "uniform", False), FORMATS[fmt])
    assert bounds.lower <= exact <= bounds.upper


# ============================================================================ exact sampler
def _correctly_rounded(x: np.ndarray, fmt: str) -> np.ndarray:
    values = representable_values(fmt)
    idx = np.clip(np.searchsorted(values, x), 1, len(values) - 1)
    lo, hi = values[idx - 1], values[idx]
    storage = torch.uint8 if FORMATS[fmt].total_bits == 8 else torch.int16
    bits = torch.from_numpy(hi).to(FORMATS[fmt].torch_dtype).view(storage)
    hi_even = (bits.to(torch.int64) & 1).numpy() == 0
    up = (hi - x < x - lo) | ((hi - x == x - lo) & hi_even)
    return np.where(x == lo, lo, np.where(up, hi, lo))


@pytest.mark.parametrize("fmt", NARROW)
def test_round_float64_rounds_once(fmt):
    """float64 -> fmt to nearest, ties to even, also where torch's cast through float32 rounds twice."""
    values = representable_values(fmt)
    mids = (values[1:] + values[:-1]) / 2
    mids = mids[np.abs(mids) < 64]
    g = torch.Generator().manual_seed(0)
    scale = torch.exp2(torch.randint(-20, 3, (100_000,), generator=g).double())
    x = torch.randn(100_000, dtype=torch.float64, generator=g) * scale
    m = torch.from_numpy(mids)
    x = torch.cat([x, m, m * (1 + 2.0**-40), m * (1 - 2.0**-40), m + m.abs() * 2.0**-30])
    got = round_float64(x, FORMATS[fmt].torch_dtype).double().numpy()
    assert np.array_equal(got, _correctly_rounded(x.numpy(), fmt))
    assert not np.array_equal(x.to(FORMATS[fmt].torch_dtype).double().numpy(), got)  # the plain cast does not


def test_torch_sampler_stays_the_default_and_bit_identical():
    assert NoiseSpec().sampler == "torch"
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    assert torch.equal(NoiseSpec(dim=32, sampler="torch").sample(64, generator=g()), torch.randn(64, 32, generator=g()))


@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
@pytest.mark.parametrize("fmt", ["float32", *NARROW])
def test_exact_sampler_draws_float64_rounded_once(distribution, fmt):
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    z = NoiseSpec(dim=20, distribution=distribution, format=fmt, sampler="exact").sample(6, generator=g())
    if distribution == "gaussian":
        draw = torch.randn(6, 20, dtype=torch.float64, generator=g())
    else:
        draw = torch.rand(6, 20, dtype=torch.float64, generator=g()) * 2 - 1
    assert z.dtype == FORMATS[fmt].torch_dtype and torch.equal(z, round_float64(draw, z.dtype))


@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
@pytest.mark.parametrize("fmt", ["float32", *NARROW])
def test_exact_sampler_has_the_ideal_entropy_up_to_a_derived_tolerance(distribution, fmt):
    ideal = entropy_bits(fmt, distribution)
    for device in ("cpu", "cuda"):
        bounds = se.scalar_entropy_bits(distribution, fmt, device, "exact")
        assert bounds.lower <= ideal + 1e-9 and ideal - 1e-9 <= bounds.upper
        assert bounds.upper - ideal < 1e-6 and ideal - bounds.lower < 2e-4
        # every layout: pairs of 106 bits, more than two values' worth
        for dim in (3, 8, 100):
            spec = NoiseSpec(dim=dim, distribution=distribution, format=fmt, sampler="exact")
            assert spec.entropy_bits(device) == pytest.approx(dim * bounds.upper, rel=1e-12)


def test_exact_sampler_draws_the_ideal_distribution():
    for fmt in ("float32", "bfloat16"):
        z = NoiseSpec(dim=1, format=fmt, sampler="exact").sample(100_000, generator=torch.Generator().manual_seed(0))
        estimate, stderr = monte_carlo_entropy_bits(z, fmt)
        assert abs(estimate - entropy_bits(fmt)) < 5 * stderr


# =================================================================================== errors
def test_exact_float64_is_refused_and_names_the_alternatives():
    with pytest.raises(ValueError, match="sampler: torch") as err:
        NoiseSpec(format="float64", sampler="exact")
    assert "format: float32" in str(err.value)
    assert NoiseSpec(format="float64", distribution="discrete", sampler="exact").entropy_bits() == 128 * 8
    with pytest.raises(ValueError, match="'fancy'"):
        NoiseSpec(sampler="fancy")


def test_an_underived_device_says_so_and_names_the_exact_sampler():
    with pytest.raises(ValueError, match="sampler: exact"):
        NoiseSpec(dim=4).entropy_bits("mps")
    with pytest.raises(ValueError, match="meta"):
        NoiseSpec(dim=4).entropy_bits_per_dim(torch.device("meta"))
    exact = NoiseSpec(dim=4, sampler="exact")
    assert exact.entropy_bits("meta") == exact.entropy_bits("cpu")  # it draws on the CPU there
    assert exact.sample(3, device="meta").device.type == "meta"


def test_str_shows_the_drawn_and_the_ideal_entropy():
    drawn = "32-dim gaussian noise in float32 (768.00 bits/sample as drawn on cpu; ideal 846.84)"
    assert str(NoiseSpec(dim=32)) == drawn
    exact = "32-dim gaussian noise in float32, sampler exact (846.84 bits/sample)"
    assert str(NoiseSpec(dim=32, sampler="exact")) == exact
    discrete = "4-dim discrete 3-bit noise in float32 (12.00 bits/sample)"
    assert str(NoiseSpec(dim=4, distribution="discrete", bits=3)) == discrete


# ===================================================================================== CUDA
def _threads(numel: int) -> int:
    props = torch.cuda.get_device_properties(0)
    blocks = min(math.ceil(numel / 256), props.multi_processor_count * (props.max_threads_per_multi_processor // 256))
    return 256 * blocks


@CUDA
def test_cuda_rand_float32_values_are_curand_atoms():
    torch.manual_seed(0)
    u = torch.rand(1 << 20, device="cuda").double().cpu().numpy()
    u = u[u > 0]
    f = np.round((u - 2.0**-33) * 2.0**32).astype(np.float32).astype(np.float64)  # float(x)
    assert np.array_equal((f * 2.0**-32 + 2.0**-33).astype(np.float32).astype(np.float64), u)


@CUDA
def test_cuda_randn_float32_is_curand_box_muller_of_rand():
    """Element t + ii T of a draw of 4T values comes from component ii of thread t's curand4."""
    t = _threads(1 << 30)
    total = 4 * t
    torch.manual_seed(1)
    u = torch.rand(total, device="cuda").double().cpu()
    torch.manual_seed(1)
    z = torch.randn(total, device="cuda").double().cpu()
    source = se._SOURCES["cuda_float32"]
    for first, second in ((0, 1), (2, 3)):
        ux, uy = u[first * t : (first + 1) * t], u[second * t : (second + 1) * t]
        ux = torch.where(ux == 0, torch.ones_like(ux), ux)  # torch reversed 1.0 to 0.0
        radius = torch.sqrt(-2 * torch.log(ux))
        theta = 2 * math.pi * uy  # v = fl32(float(y) c + c/2) is within rho_theta + 2 pi 2^-24 of this
        tol = (source.rho + source.rho_theta + 2 * math.pi * 2.0**-24) * radius + 1e-30
        assert ((z[first * t : (first + 1) * t] - radius * torch.sin(theta)).abs() <= tol).all()
        assert ((z[second * t : (second + 1) * t] - radius * torch.cos(theta)).abs() <= tol).all()


@CUDA
def test_cuda_randn_float64_is_curand_box_muller_of_rand():
    t = _threads(1 << 30)
    total = 2 * t
    torch.manual_seed(2)
    u = torch.rand(total, dtype=torch.float64, device="cuda").cpu()
    torch.manual_seed(2)
    z = torch.randn(total, dtype=torch.float64, device="cuda").cpu()
    ux, v = u[:t], 2 * u[t:]
    ux = torch.where(ux == 0, torch.ones_like(ux), ux)
    radius = torch.sqrt(-2 * torch.log(ux))
    tol = (se._SOURCES["cuda_float64"].rho + se._SOURCES["cuda_float64"].rho_theta) * radius + 1e-300
    assert ((z[:t] - radius * torch.sin(math.pi * v)).abs() <= tol).all()
    assert ((z[t:] - radius * torch.cos(math.pi * v)).abs() <= tol).all()


@CUDA
def test_cuda_randint_is_a_32_bit_word_modulo_the_range():
    torch.manual_seed(3)
    wide = torch.randint(0, 2**16, (1 << 16,), device="cuda")
    for bits in (1, 8):
        torch.manual_seed(3)
        assert torch.equal(torch.randint(0, 2**bits, (1 << 16,), device="cuda"), wide % 2**bits)


@CUDA
@pytest.mark.parametrize("sampler", ["torch", "exact"])
def test_cuda_draws_have_the_reported_marginals(sampler):
    for fmt in ("float32", "bfloat16"):
        spec = NoiseSpec(dim=1, format=fmt, sampler=sampler)
        g = torch.Generator(device="cuda").manual_seed(0)
        z = spec.sample(200_000, generator=g)
        estimate, stderr = monte_carlo_entropy_bits(z.cpu(), fmt)
        assert abs(estimate - entropy_bits(fmt)) < 5 * stderr
        assert spec.entropy_bits_per_dim("cuda") >= entropy_bits(fmt) - 2e-4
