"""The noise spec: the one object every generator's input noise comes from.

Seed paper "Noise dimension of GAN", Sec. 4: a GAN is a discrete sampler whose noise
z = (z_1, ..., z_n) is n i.i.d. values stored in a floating-point format, so its
entropy is H(Z^n) = n H(format) (Noise-dim Eq. 7), and by Lemma 4.1 the generator's output has
at most that many bits.  ``NoiseSpec`` samples that noise and reports its entropy.

Distributions:

* ``gaussian`` -- N(0, 1), drawn in float32 (float64 for the float64 format) and rounded
  to the nearest value of ``format``.
* ``uniform`` -- U[-1, 1), drawn and rounded the same way.
* ``discrete`` -- ``2**bits`` equiprobable levels per dimension, placed at the Gaussian
  quantiles Phi^-1((k + 1/2) / 2^bits) and rescaled to unit variance, so the generator
  sees noise of the usual scale.  Entropy: exactly ``bits`` per dimension.

Two entropies:

* :meth:`NoiseSpec.entropy_bits_ideal` -- n H(format) of the *ideal* rounded distribution,
  as the paper defines it (exact, :func:`core.float_entropy.entropy_bits`): what the
  paper's Table 1 and the docs' tables quote.
* :meth:`NoiseSpec.entropy_bits` -- the entropy of the noise *as drawn* on a device, derived
  from the sampler's algorithm (:mod:`core.sampler_entropy`): an upper bound where only a
  bound can be derived, which is what Theorem 4.2 and d(eps) need.  torch's float32
  ``randn`` on the CPU is Box-Muller on 24-bit uniforms, so float32 Gaussian noise carries at
  most 24 bits per dimension, not 26.46.

Samplers (``sampler``):

* ``torch`` (default): ``torch.randn`` / ``torch.rand`` / ``torch.randint`` in the work dtype,
  cast to the format; its entropy is reported as drawn.
* ``exact``: float64 draws (53-bit uniforms, Box-Muller in double) rounded once to the
  format, so every value has the ideal entropy of its format up to a derived margin (below
  1e-3 bits), on every device (other device types than cpu/cuda draw on the CPU).  float64
  noise cannot be drawn that way (:func:`core.sampler_entropy.check_sampler`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

import numpy as np
import torch
from scipy.special import ndtri

from core.dataclass_config import coerce_dataclass
from core.float_entropy import FORMATS, cell_mass_around, entropy_bits, representable_values, resolve_format
from core.sampler_entropy import DEVICES, check_sampler, device_type, noise_entropy_bits

Distribution = Literal["gaussian", "uniform", "discrete"]
Format = Literal["float64", "float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"]
Sampler = Literal["torch", "exact"]

_DISTRIBUTIONS = ("gaussian", "uniform", "discrete")
MAX_DISCRETE_BITS = 16


@dataclass(frozen=True)
class NoiseSpec:
    """Input noise of a generator: dimension, distribution and number format.

    Args:
        dim: noise dimension n (number of i.i.d. scalars per sample).
        distribution: ``gaussian`` (N(0, 1)), ``uniform`` (U[-1, 1)) or ``discrete``
            (``bits`` bits per dimension).
        format: floating-point format the noise is stored in: ``float64``, ``float32``,
            ``bfloat16``, ``float16``, ``float8_e4m3fn`` or ``float8_e5m2``.
        bits: bits per dimension of ``discrete`` noise (1 to 16); ignored otherwise.
        sampler: ``torch`` (torch's own samplers; the default, bit-identical to earlier
            releases) or ``exact`` (float64 draws rounded once: the ideal entropy of the format).
    """

    dim: int = 128
    distribution: Distribution = "gaussian"
    format: Format = "float32"
    bits: int = 8
    sampler: Sampler = "torch"

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0:
            raise ValueError(f"noise.dim must be a positive integer, got {self.dim!r}")
        if self.distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"unknown noise.distribution {self.distribution!r}; expected one of: {', '.join(_DISTRIBUTIONS)}"
            )
        if self.format not in FORMATS:
            raise ValueError(f"unknown noise.format {self.format!r}; expected one of: {', '.join(FORMATS)}")
        check_sampler(self.sampler, self.format, self.distribution)
        if self.distribution == "discrete":
            if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_DISCRETE_BITS:
                raise ValueError(f"noise.bits must be an integer in [1, {MAX_DISCRETE_BITS}], got {self.bits!r}")
            levels = self.levels().double()  # exact; torch.unique has no float8 kernels
            if torch.unique(levels).numel() != levels.numel():
                raise ValueError(
                    f"discrete noise with noise.bits={self.bits} has levels that collide when rounded to "
                    f"{self.format}; use fewer bits or a wider format"
                )

    # ----------------------------------------------------------------- construction
    @classmethod
    def coerce(cls, spec: Union["NoiseSpec", dict[str, Any]]) -> "NoiseSpec":
        """Accept a ``NoiseSpec`` or its dict form (as stored in checkpoints' hparams)."""
        return coerce_dataclass(cls, spec, "noise")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ----------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the sampled tensor (the storage format of the noise)."""
        return FORMATS[self.format].torch_dtype

    def entropy_bits_per_dim_ideal(self) -> float:
        """H of one scalar of the ideal rounded distribution, in bits (exact; Sec. 4.1-4.2 of the seed paper)."""
        if self.distribution == "discrete":
            return float(self.bits)
        return entropy_bits(self.format, self.distribution)

    def entropy_bits_ideal(self) -> float:
        """n H(format) bits per sample (Noise-dim Eq. 7) of the ideal rounded distribution."""
        return self.dim * self.entropy_bits_per_dim_ideal()

    def entropy_bits(
        self, device: Union[torch.device, str, None] = "cpu", batch_size: Optional[int] = None
    ) -> float:
        """H(Z) in bits per sample of the noise as :meth:`sample` draws it on ``device``: eps of Theorem 4.2.

        Derived from the sampler's algorithm (:mod:`core.sampler_entropy`); an upper bound
        where only a bound can be derived (Gaussian float32/float64 and narrow formats), which
        is what H(G(Z)) <= H(Z) needs.  ``device`` is where the noise is drawn (a generator's
        device, if one is passed to :meth:`sample`).  ``batch_size=None`` bounds every batch
        size; an integer gives the bound for that batch (Box-Muller pairs can straddle two
        samples when ``dim`` is not a multiple of 16).

        Raises:
            ValueError: the torch sampler on a device type other than cpu/cuda (its draw is not
                derived here): use ``sampler: exact``, which draws on the CPU there.
        """
        kind = device_type(device)
        if kind not in DEVICES:
            if self.sampler == "exact":
                kind = "cpu"  # the exact sampler draws on the CPU there
            else:
                raise ValueError(
                    f"the entropy of {self.distribution} noise drawn by torch on a {kind!r} device is not derived "
                    f"(only {' and '.join(DEVICES)} are): use noise.sampler: exact, which draws on the CPU and moves "
                    f"the noise to {kind}, or draw on the CPU (a CPU generator)"
                )
        return noise_entropy_bits(
            self.dim, self.distribution, self.format, self.bits, kind, self.sampler, batch_size
        )

    def entropy_bits_per_dim(
        self, device: Union[torch.device, str, None] = "cpu", batch_size: Optional[int] = None
    ) -> float:
        """:meth:`entropy_bits` per dimension (as drawn; e.g. 24.0 for float32 Gaussian noise on the CPU)."""
        return self.entropy_bits(device, batch_size) / self.dim

    def entropy_bits_per_dim_in(self, fmt: str) -> float:
        """H of one noise scalar once rounded to ``fmt``: what a layer computing in ``fmt`` sees.

        Under ``--trainer.precision bf16-mixed`` (``16-mixed``) the generator's first matmul or
        convolution rounds its input to bfloat16 (float16), so the noise that reaches the
        network carries at most this many bits per dimension, whatever the spec's format.
        These are entropies of the *ideal* rounded distribution (as the docs' mixed-precision
        table quotes them); the value as drawn rounded to ``fmt`` is at most the smaller of
        this (up to the margin of :func:`core.sampler_entropy.scalar_entropy_bits`) and
        :meth:`entropy_bits_per_dim`.

        Exact for ``discrete`` noise (levels that round to one value merge) and for formats
        of at most 16 bits (every value enumerated, with its mass).  From float32/float64 into
        a narrower ``fmt`` it is H(fmt) of the entropy table: rounding first to float32 moves
        mass only where a float32 value is exactly a midpoint of ``fmt`` (negligible).
        """
        source, target = FORMATS[self.format], resolve_format(fmt)
        if self.distribution == "discrete":
            _, counts = torch.unique(self.levels().to(target.torch_dtype).double(), return_counts=True)
            return _entropy_of_masses(counts.double().numpy() / 2**self.bits)
        if source.total_bits > 16:
            if target.mantissa_bits >= source.mantissa_bits:  # float32 into float32/float64: nothing lost
                return self.entropy_bits_per_dim_ideal()
            return entropy_bits(target, self.distribution)
        values = representable_values(source)
        half_gaps = np.diff(values) / 2.0
        mass = cell_mass_around(
            values, np.concatenate([[np.inf], half_gaps]), np.concatenate([half_gaps, [np.inf]]), self.distribution
        )
        rounded = torch.from_numpy(values).to(source.torch_dtype).to(target.torch_dtype).double().numpy()
        _, merged = np.unique(rounded, return_inverse=True)
        return _entropy_of_masses(np.bincount(merged.ravel(), weights=mass))

    def levels(self) -> torch.Tensor:
        """The 2^bits values of ``discrete`` noise: unit-variance Gaussian quantiles."""
        k = torch.arange(2**self.bits, dtype=torch.float64)
        q = torch.from_numpy(ndtri(((k + 0.5) / 2**self.bits).numpy()))
        q = q / q.pow(2).mean().sqrt()
        return q.to(self.dtype)

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        batch_size: int,
        *,
        device: Optional[Union[torch.device, str]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Draw ``batch_size`` noise vectors, shape ``[batch_size, dim]``, dtype :attr:`dtype`.

        With a ``generator`` the draw happens on the generator's device (so a seed gives
        the same noise on any machine) and is then moved to ``device``.  ``sampler: exact``
        draws on the CPU when ``device`` is neither cpu nor cuda.
        """
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        target = torch.device(device) if device is not None else torch.device("cpu")
        draw_on = generator.device if generator is not None else target
        shape = (batch_size, self.dim)
        if self.distribution == "discrete":
            index = torch.randint(0, 2**self.bits, shape, device=draw_on, generator=generator)
            return self.levels().to(draw_on)[index].to(target)
        if self.sampler == "exact":
            if generator is None and draw_on.type not in DEVICES:
                draw_on = torch.device("cpu")
            if self.distribution == "gaussian":
                z = torch.randn(shape, dtype=torch.float64, device=draw_on, generator=generator)
            else:
                z = torch.rand(shape, dtype=torch.float64, device=draw_on, generator=generator).mul_(2).sub_(1)
            return round_float64(z, self.dtype).to(target)
        work = torch.float64 if self.format == "float64" else torch.float32
        if self.distribution == "gaussian":
            z = torch.randn(shape, dtype=work, device=draw_on, generator=generator)
        else:
            z = torch.rand(shape, dtype=work, device=draw_on, generator=generator).mul_(2).sub_(1)
        return z.to(self.dtype).to(target)

    def __str__(self) -> str:
        kind = f"discrete {self.bits}-bit" if self.distribution == "discrete" else self.distribution
        drawn, ideal = self.entropy_bits(), self.entropy_bits_ideal()
        sampler = "" if self.sampler == "torch" else f", sampler {self.sampler}"
        if f"{drawn:.2f}" == f"{ideal:.2f}":
            return f"{self.dim}-dim {kind} noise in {self.format}{sampler} ({drawn:.2f} bits/sample)"
        return (
            f"{self.dim}-dim {kind} noise in {self.format}{sampler} "
            f"({drawn:.2f} bits/sample as drawn on cpu; ideal {ideal:.2f})"
        )


def round_float64(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 ``z`` rounded *once* (to nearest, ties to even) to ``dtype``.

    torch casts float64 to bfloat16/float16/float8 through float32, which rounds twice (a
    value just past a midpoint of the narrow format can land on it, then go to even).  Rounding
    to float32 *to odd* first (truncate, then set the last bit if anything was cut) makes
    the second rounding exact for any format with at most 22 significand bits.
    """
    if dtype == torch.float64:
        return z
    y = z.to(torch.float32)
    if dtype == torch.float32:
        return y
    back = y.to(torch.float64)
    inexact = back != z
    y = torch.where(back.abs() > z.abs(), torch.nextafter(y, torch.zeros_like(y)), y)  # toward zero
    odd = (y.view(torch.int32) | 1).view(torch.float32)
    return torch.where(inexact, odd, y).to(dtype)


def _entropy_of_masses(p: np.ndarray) -> float:
    """-sum p log2 p over the nonzero masses ``p``."""
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
