"""DCGAN generator and discriminator (Radford et al. 2016), for any power-of-two resolution.

Architecture guidelines of the DCGAN paper (Sec. 3): strided convolutions instead of
pooling, batch norm in both networks except the generator's output and the
discriminator's input layer, ReLU in G (tanh output), LeakyReLU(0.2) in D, weights from
N(0, 0.02).  Plain ``torch.nn``; the training recipe lives in ``lightning_modules``.

Layout at resolution R = 2^k (k >= 3), width multiplier ``width``:

    G: z -> ConvT(4x4, stride 1) -> 4x4 x width*2^(k-3)
         -> (k-2) x [ConvT(4x4, stride 2) + BN + ReLU], halving channels
         -> last ConvT to ``out_channels`` + tanh, R x R
    D: mirror image, ending in a 4x4 valid conv to one logit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "dcgan_init_"]


def _num_upsamplings(resolution: int) -> int:
    k = math.log2(resolution) if resolution > 0 else -1
    if resolution < 8 or not float(k).is_integer():
        raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}")
    return int(k) - 2


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN paper initialisation (Radford et al. 2016, Sec. 4): conv and linear weights N(0, 0.02),
    batch-norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """Maps noise ``z`` of shape [N, z_dim] to images [N, out_channels, R, R] in [-1, 1].

    Args:
        z_dim: noise dimension n.
        resolution: output side R, a power of two >= 8.
        out_channels: image channels (1 grey, 3 RGB).
        width: channels of the last hidden layer; each layer towards the input doubles it.
    """

    def __init__(self, z_dim: int, resolution: int = 32, out_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.z_dim, self.resolution, self.out_channels = z_dim, resolution, out_channels
        n_up = _num_upsamplings(resolution)  # 4x4 -> R x R takes n_up doublings, the last one is the output layer
        chans = [width * 2 ** (n_up - 1 - i) for i in range(n_up)]  # e.g. R=32: [4w, 2w, w]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, chans[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(chans[-1], out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected noise of shape [N, {self.z_dim}], got {list(z.shape)}")
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Maps images [N, in_channels, R, R] to one real/fake logit each, shape [N].

    Args:
        resolution: input side R, a power of two >= 8.
        in_channels: image channels.
        width: channels of the first layer; each following layer doubles it.
    """

    def __init__(self, resolution: int = 32, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.resolution, self.in_channels = resolution, in_channels
        n_down = _num_upsamplings(resolution)
        chans = [width * 2**i for i in range(n_down)]  # e.g. R=32: [w, 2w, 4w]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(chans[-1], 1, 4, 1, 0)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()
