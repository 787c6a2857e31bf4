"""The compression latent and GANZ's ratio trick (Sec. 3.2, "Controllable compression ratio").

A trained generator is G = synthesis o h0 (Fig. 6): ``h0`` maps the training latent
(d_t values) to the first feature map (F = n*8*8 values), the convolutional module
``synthesis`` maps that to the image.  At compression time GANZ chooses what feeds the
convolutional module, and with it the latent size d_c and the compression ratio
R = (H*W*C) / d_c (in degrees of freedom):

* ``keep_linear`` -- the trained h0: d_c = d_t (R = 768 at d_t = 64 and 128x128x3);
* ``no_linear`` -- no linear layer: the latent *is* the first feature map, d_c = F
  (R = 6 at n = 128, Fig. 3);
* ``square_linear`` -- a fixed-seed random F x F linear layer, d_c = F (Fig. 3);
* ``random_linear(R)`` -- a fixed-seed random linear layer with input size
  d_c = round(H*W*C / R) (Fig. 4-5): any ratio without retraining.

The random layers are generated, not stored, from the seed in the ``.ganz`` header, by
the random stream named in the header (:data:`RNGS`):

* ``philox4x64-10`` (format version 2, the default): W = N / sqrt(d_c), where N [F, d_c] holds,
  row-major, the first F*d_c normals of :func:`core.counter_rng.standard_normals` with key
  (seed, 0) -- Philox4x64-10 words turned into normals by Box-Muller, all in the project's own
  float64 arithmetic -- divided in float64 and rounded once to float32.  It depends on
  nothing but the seed: not on the torch or NumPy version, the device or the global RNG.
* ``torch.randn`` (format version 1, read only): W = randn(F, d_c) / sqrt(d_c) from
  ``torch.Generator("cpu").manual_seed(seed)`` in float32, as version-1 files were written;
  its numbers are torch's to change (version-1 files were written with torch 2.14.1).

The 1/sqrt(d_c) scale gives unit-variance features for a unit-variance latent; there is no bias.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.counter_rng import standard_normals

__all__ = ["MODES", "PHILOX", "RNGS", "TORCH_RANDN", "LatentMode", "LatentGenerator", "random_linear_weight"]

#: mode name -> code in the .ganz header.
MODES = {"keep_linear": 0, "no_linear": 1, "square_linear": 2, "random_linear": 3}

#: the random layer's stream: name -> code in the .ganz header (version 2).
PHILOX = "philox4x64-10"
TORCH_RANDN = "torch.randn"
RNGS = {TORCH_RANDN: 0, PHILOX: 1}

_RANDOM = re.compile(r"^random_linear\s*[\(:]\s*([0-9]*\.?[0-9]+)\s*\)?$")


@dataclass(frozen=True)
class LatentMode:
    """How the latent reaches the convolutional module: a mode and, for ``random_linear``, the ratio R.

    Parse with :meth:`parse` from ``keep_linear``, ``no_linear``, ``square_linear`` or
    ``random_linear(R)`` (also ``random_linear:R``).
    """

    name: str
    ratio: Optional[float] = None

    def __post_init__(self) -> None:
        if self.name not in MODES:
            raise ValueError(f"unknown GANZ mode {self.name!r}; expected one of {', '.join(MODES)} (random_linear(R))")
        if (self.name == "random_linear") != (self.ratio is not None):
            raise ValueError("random_linear takes a compression ratio, random_linear(R); the other modes take none")
        if self.ratio is not None and not self.ratio > 0:
            raise ValueError(f"random_linear's ratio must be > 0, got {self.ratio}")

    @classmethod
    def parse(cls, text: str) -> "LatentMode":
        text = text.strip()
        match = _RANDOM.match(text)
        if match:
            return cls("random_linear", float(match.group(1)))
        if text in MODES and text != "random_linear":
            return cls(text)
        raise ValueError(
            f"cannot read GANZ mode {text!r}; expected keep_linear, no_linear, square_linear or random_linear(R), "
            "e.g. random_linear(8)"
        )

    def __str__(self) -> str:
        return f"random_linear({self.ratio:g})" if self.ratio is not None else self.name

    def latent_dim(self, image_shape: tuple[int, int, int], d_t: int, feature_dim: int) -> int:
        """d_c for images of ``image_shape`` (C, H, W), training latent d_t and first feature map size F."""
        if self.name == "keep_linear":
            return d_t
        if self.name in ("no_linear", "square_linear"):
            return feature_dim
        c, h, w = image_shape
        d_c = round(c * h * w / self.ratio)
        if d_c < 1:
            raise ValueError(f"random_linear({self.ratio:g}) leaves no latent for {c}x{h}x{w} images (d_c < 1)")
        return d_c


def random_linear_weight(d_c: int, out_features: int, seed: int, rng: str = PHILOX) -> torch.Tensor:
    """The fixed-seed random layer's weight [out_features, d_c], float32 on the CPU (see the module docstring).

    ``rng`` is the stream: :data:`PHILOX` (the project's, what new files use) or
    :data:`TORCH_RANDN` (version-1 files).
    """
    if d_c < 1 or out_features < 1:
        raise ValueError(f"random linear layer sizes must be >= 1, got {out_features} x {d_c}")
    if rng == PHILOX:
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"the random layer's seed must fit in 64 bits, got {seed}")
        normals = standard_normals(out_features * d_c, (int(seed), 0))
        weight = (normals / math.sqrt(d_c)).astype(np.float32).reshape(out_features, d_c)
        return torch.from_numpy(weight)
    if rng == TORCH_RANDN:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        weight = torch.randn(out_features, d_c, generator=generator, dtype=torch.float32)
        return weight.div_(float(d_c) ** 0.5)
    raise ValueError(f"unknown random-layer stream {rng!r}; expected one of {', '.join(RNGS)}")


class LatentGenerator(nn.Module):
    """z [N, d_c] -> image: the trained convolutional module behind the mode's linear layer.

    Holds frozen copies of the generator's parts (the generator passed in is left alone).

    Args:
        generator: a trained :class:`~lightning_modules.nets.began.BEGANGenerator` (``h0`` + ``synthesis``).
        mode: the :class:`LatentMode`.
        image_shape: (C, H, W) of the images (sets d_c for ``random_linear``).
        seed: seed of the random layer (``square_linear``, ``random_linear``).
        d_c: the latent size; computed from ``mode`` when ``None``, and checked against it
            otherwise (a ``.ganz`` header states it).
        rng: the random layer's stream, :data:`PHILOX` or (version-1 files) :data:`TORCH_RANDN`.
    """

    def __init__(
        self,
        generator: nn.Module,
        mode: LatentMode,
        image_shape: tuple[int, int, int],
        seed: int = 0,
        d_c: Optional[int] = None,
        rng: str = PHILOX,
    ) -> None:
        super().__init__()
        self.mode, self.seed, self.rng = mode, int(seed), rng
        # Copies, so that freezing them here leaves the caller's generator as it was.
        self.synthesis = copy.deepcopy(generator.synthesis)
        feature_dim = generator.feature_dim
        expected = mode.latent_dim(tuple(image_shape), generator.latent_dim, feature_dim)
        if d_c is not None and mode.name != "random_linear" and d_c != expected:
            raise ValueError(f"mode {mode} has d_c = {expected} for this generator, not {d_c}")
        self.d_c = int(d_c if d_c is not None else expected)
        self.h0: Optional[nn.Module] = None
        if mode.name == "keep_linear":
            self.h0 = copy.deepcopy(generator.h0)
        elif mode.name != "no_linear":
            self.register_buffer("weight", random_linear_weight(self.d_c, feature_dim, self.seed, rng))
        self.requires_grad_(False)
        self.eval()

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The first feature map (flattened) for latents ``z`` [N, d_c]."""
        if z.ndim != 2 or z.shape[1] != self.d_c:
            raise ValueError(f"expected latents of shape [N, {self.d_c}] for mode {self.mode}, got {list(z.shape)}")
        if self.h0 is not None:
            return self.h0(z)
        if self.mode.name == "no_linear":
            return z
        return z @ self.weight.to(z.dtype).T

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.features(z))
