"""The noise spec: the one object every generator's input noise comes from.

Seed paper "Noise dimension of GAN", Sec. 4: a GAN is a discrete sampler whose noise
z = (z_1, ..., z_n) is n i.i.d. values stored in a floating-point format, so its
entropy is H(Z^n) = n H(format) (Noise-dim Eq. 7), and by Lemma 4.1 the generator's output has
at most that many bits.  ``NoiseSpec`` samples that noise and reports its entropy.

Distributions:

* ``gaussian`` -- N(0, 1), drawn in float32 (float64 for the float64 format) and rounded
  to the nearest value of ``format``.  Entropy per dimension: ``H(format)``, exact, from
  :func:`core.float_entropy.entropy_bits`.
* ``uniform`` -- U[-1, 1), drawn and rounded the same way, entropy by the same definition.
* ``discrete`` -- ``2**bits`` equiprobable levels per dimension, placed at the Gaussian
  quantiles Phi^-1((k + 1/2) / 2^bits) and rescaled to unit variance, so the generator
  sees noise of the usual scale.  Entropy: exactly ``bits`` per dimension.

The reported entropy is that of the *ideal* rounded distribution, as the paper defines
it.  A pseudo-random generator can only hit the values its own random bits reach (e.g.
torch's float32 uniform has 24 random bits), so the noise actually drawn can carry a
little less entropy than reported for float32/float64; for float16 and narrower formats
the float32 draw resolves every cell.  ``analysis.float_entropy.monte_carlo_entropy_bits``
checks a sampler against the exact value (Noise-dim Eq. 6).
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

Distribution = Literal["gaussian", "uniform", "discrete"]
Format = Literal["float64", "float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"]

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
    """

    dim: int = 128
    distribution: Distribution = "gaussian"
    format: Format = "float32"
    bits: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0:
            raise ValueError(f"noise.dim must be a positive integer, got {self.dim!r}")
        if self.distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"unknown noise.distribution {self.distribution!r}; expected one of: {', '.join(_DISTRIBUTIONS)}"
            )
        if self.format not in FORMATS:
            raise ValueError(f"unknown noise.format {self.format!r}; expected one of: {', '.join(FORMATS)}")
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

    def entropy_bits_per_dim(self) -> float:
        """H of one noise scalar in bits (exact; Sec. 4.1-4.2 of the seed paper)."""
        if self.distribution == "discrete":
            return float(self.bits)
        return entropy_bits(self.format, self.distribution)

    def entropy_bits(self) -> float:
        """H(Z^n) = n H(format) bits per sample (Noise-dim Eq. 7): an upper bound on H(G(Z))."""
        return self.dim * self.entropy_bits_per_dim()

    def entropy_bits_per_dim_in(self, fmt: str) -> float:
        """H of one noise scalar once rounded to ``fmt``: what a layer computing in ``fmt`` sees.

        Under ``--trainer.precision bf16-mixed`` (``16-mixed``) the generator's first matmul or
        convolution rounds its input to bfloat16 (float16), so the noise that reaches the
        network carries at most this many bits per dimension, whatever the spec's format.

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
                return self.entropy_bits_per_dim()
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
        the same noise on any machine) and is then moved to ``device``.
        """
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        target = torch.device(device) if device is not None else torch.device("cpu")
        draw_on = generator.device if generator is not None else target
        shape = (batch_size, self.dim)
        if self.distribution == "discrete":
            index = torch.randint(0, 2**self.bits, shape, device=draw_on, generator=generator)
            return self.levels().to(draw_on)[index].to(target)
        work = torch.float64 if self.format == "float64" else torch.float32
        if self.distribution == "gaussian":
            z = torch.randn(shape, dtype=work, device=draw_on, generator=generator)
        else:
            z = torch.rand(shape, dtype=work, device=draw_on, generator=generator).mul_(2).sub_(1)
        return z.to(self.dtype).to(target)

    def __str__(self) -> str:
        kind = f"discrete {self.bits}-bit" if self.distribution == "discrete" else self.distribution
        return f"{self.dim}-dim {kind} noise in {self.format} ({self.entropy_bits():.2f} bits/sample)"


def _entropy_of_masses(p: np.ndarray) -> float:
    """-sum p log2 p over the nonzero masses ``p``."""
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
