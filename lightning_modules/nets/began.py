"""BEGAN's networks (Berthelot, Schumm, Metz 2017, Sec. 3.5 and Fig. 1), as GANZ uses them.

Seed paper "GANs for lossy image compression" (GANZ), Fig. 6: the generator is a linear
layer ``h0`` from the latent z (d_t values) to a first feature map of n x 8 x 8, followed
by a *convolutional module*; the discriminator is an auto-encoder whose decoder has the
generator's architecture.  GANZ's compression-ratio trick swaps ``h0`` for another
linear layer at compression time, so the two parts are separate attributes here:
``generator.h0`` and ``generator.synthesis`` (see :mod:`lightning_modules.ganz.latent`).

Layout for an R x R image (R = 2^k >= 8), ``repeat = log2(R) - 2`` blocks, n filters:

    BEGANGenerator (= the decoder):
        z [N, d_t] -> h0: Linear(d_t, n*8*8) -> reshape n x 8 x 8
        -> repeat x [Conv3x3(n) + ELU, Conv3x3(n) + ELU, then nearest 2x upsampling except
           after the last block]                                   (R x R, n channels)
        -> Conv3x3(channels)                         (no output non-linearity, as BEGAN)
    BEGANEncoder:
        x -> Conv3x3(n) + ELU
        -> block i = 1..repeat: [Conv3x3(i*n) + ELU, Conv3x3(i*n) + ELU, then a stride-2
           Conv3x3((i+1)*n) + ELU (sub-sampling) except after the last block]
        -> flatten (repeat*n x 8 x 8) -> Linear to the embedding h (N_h values)
    BEGANAutoEncoder (the discriminator): D(x) = Decoder(Encoder(x)), an image.

Channels grow linearly with each down-sampling in the encoder (n, 2n, 3n, ...); up-sampling
is nearest neighbour; every convolution is 3x3 with ELU (BEGAN Sec. 3.5).  The generator's
output is not squashed (BEGAN has no tanh): samples may leave [-1, 1] slightly, and
images shown or written are clamped.  At 128 x 128 BEGAN (and GANZ) use n = 128, so the
convolutional module's input has n*8*8 = 8192 values: compression ratio 6 for
128*128*3 pixels, the paper's ``no_linear`` case (Fig. 3).  Weights keep PyTorch's
default initialisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BEGANAutoEncoder", "BEGANEncoder", "BEGANGenerator", "began_repeat"]

#: side of the first feature map (BEGAN: 8 x 8 at every resolution).
BASE = 8


def began_repeat(resolution: int) -> int:
    """Blocks of the BEGAN networks at ``resolution``: log2(R) - 2 (4 at 64 x 64, 5 at 128 x 128)."""
    k = math.log2(resolution) if resolution > 0 else -1
    if resolution < BASE or not float(k).is_integer():
        raise ValueError(f"BEGAN resolution must be a power of two >= {BASE}, got {resolution}")
    return int(k) - 2


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1)


class BEGANGenerator(nn.Module):
    """G: z [N, latent_dim] -> images [N, channels, R, R]; also BEGAN's decoder.

    Args:
        latent_dim: input size of ``h0`` (d_t at training time; the embedding N_h in D's decoder).
        resolution: output side R, a power of two >= 8.
        channels: image channels.
        n: filters of every convolution (BEGAN's n).
    """

    def __init__(self, latent_dim: int, resolution: int = 128, channels: int = 3, n: int = 128) -> None:
        super().__init__()
        if latent_dim < 1 or n < 1:
            raise ValueError(f"latent_dim and n must be >= 1, got {latent_dim} and {n}")
        self.latent_dim, self.resolution, self.channels, self.n = latent_dim, resolution, channels, n
        repeat = began_repeat(resolution)
        #: the linear layer h0 of GANZ's Fig. 6: z -> the first feature map (n x 8 x 8, flattened).
        self.h0 = nn.Linear(latent_dim, self.feature_dim)
        layers: list[nn.Module] = []
        for i in range(repeat):
            layers += [_conv(n, n), nn.ELU(), _conv(n, n), nn.ELU()]
            if i < repeat - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(_conv(n, channels))
        #: the convolutional module: flattened first feature map -> image.
        self.synthesis = _Synthesis(n, nn.Sequential(*layers))

    @property
    def feature_dim(self) -> int:
        """Size of the convolutional module's input, n * 8 * 8."""
        return self.n * BASE * BASE

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape [N, {self.latent_dim}], got {list(z.shape)}")
        return self.synthesis(self.h0(z))


class _Synthesis(nn.Module):
    """The convolutional module: a flattened n x 8 x 8 feature map [N, n*64] -> image."""

    def __init__(self, n: int, body: nn.Sequential) -> None:
        super().__init__()
        self.n, self.body = n, body

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.ndim != 2 or h.shape[1] != self.n * BASE * BASE:
            raise ValueError(f"expected features of shape [N, {self.n * BASE * BASE}], got {list(h.shape)}")
        return self.body(h.view(h.shape[0], self.n, BASE, BASE))


class BEGANEncoder(nn.Module):
    """BEGAN's encoder: images [N, channels, R, R] -> embedding h [N, embedding_dim].

    Args:
        embedding_dim: N_h, the size of the bottleneck (BEGAN: N_h = N_z).
        resolution: input side R, a power of two >= 8.
        channels: image channels.
        n: filters of the first block; block i has i*n.
    """

    def __init__(self, embedding_dim: int, resolution: int = 128, channels: int = 3, n: int = 128) -> None:
        super().__init__()
        repeat = began_repeat(resolution)
        layers: list[nn.Module] = [_conv(channels, n), nn.ELU()]
        for i in range(1, repeat + 1):
            layers += [_conv(i * n, i * n), nn.ELU(), _conv(i * n, i * n), nn.ELU()]
            if i < repeat:
                layers += [_conv(i * n, (i + 1) * n, stride=2), nn.ELU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(repeat * n * BASE * BASE, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class BEGANAutoEncoder(nn.Module):
    """BEGAN's discriminator, an auto-encoder: D(x) = Decoder(Encoder(x)), images -> images.

    Args:
        embedding_dim: N_h, the bottleneck size.
        resolution: image side R.
        channels: image channels.
        n: BEGAN's n (filters).
    """

    def __init__(self, embedding_dim: int, resolution: int = 128, channels: int = 3, n: int = 128) -> None:
        super().__init__()
        self.encoder = BEGANEncoder(embedding_dim, resolution, channels, n)
        self.decoder = BEGANGenerator(embedding_dim, resolution, channels, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
