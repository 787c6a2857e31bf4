"""DCGAN generator with noise injection after every hidden block: the RNI paper's DCGAN rows.

Seed paper "On noise injection in GANs" (Feng et al. 2021), Sec. 5, Table 1 (DCGAN, DCGAN +
ENI, DCGAN + RNI on FFHQ and LSUN-Church) and Fig. 5 (CIFAR-10).  The generator is the
DCGAN of Radford et al. 2016 with a dense first layer:

    z [N, 100] -> Linear -> (8 w) x 4 x 4 -> BN -> ReLU -> inject       (4 px)
      -> ConvT 4x4 s2 -> 4 w -> BN -> ReLU -> inject                    (8 px)
      -> ConvT -> 2 w -> BN -> ReLU -> inject                           (16 px)
      -> ConvT -> w -> BN -> ReLU -> inject                             (32 px)
      -> ConvT -> image channels -> tanh                                (64 px)

so at 64 px with w = 64 the widths are 512/256/128/64/3 and noise enters after the 4, 8, 16
and 32 px blocks; at 32 px (CIFAR-10) one block fewer (256/128/64/3 for w = 64).  The
injected noise follows the block's ReLU, i.e. it perturbs what the next layer reads.
``noise_injection`` is ``none`` (plain DCGAN), ``eni`` or ``rni``
(:mod:`lightning_modules.nets.noise_injection`).  The discriminator is the plain
:class:`~lightning_modules.nets.dcgan.DCGANDiscriminator`.
"""

from __future__ import annotations

import math
from typing import Optional

from torch import Tensor, nn

from lightning_modules.nets.dcgan import dcgan_init_
from lightning_modules.nets.noise_injection import InjectionKind, NoiseInjection, NoiseMode, RNIOptions

__all__ = ["NoiseInjectedDCGANGenerator"]


class NoiseInjectedDCGANGenerator(nn.Module):
    """z [N, z_dim] -> images [N, out_channels, R, R] in [-1, 1], with noise after each hidden block.

    Args:
        z_dim: noise dimension (100 in DCGAN).
        resolution: output side R, a power of two >= 8.
        out_channels: image channels.
        width: channels of the last hidden block; each block towards the input doubles it.
        noise_injection: ``none``, ``eni`` or ``rni``.
        rni: RNI options (the paper's equations by default).
    """

    def __init__(
        self,
        z_dim: int = 100,
        resolution: int = 64,
        out_channels: int = 3,
        width: int = 64,
        noise_injection: InjectionKind = "eni",
        rni: Optional[RNIOptions] = None,
    ) -> None:
        super().__init__()
        k = math.log2(resolution) if resolution > 0 else -1
        if resolution < 8 or not float(k).is_integer():
            raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}")
        self.z_dim, self.resolution, self.out_channels = z_dim, resolution, out_channels
        n_up = int(k) - 2
        chans = [width * 2 ** (n_up - 1 - i) for i in range(n_up)]  # 64 px, w=64: [512, 256, 128, 64]
        self.fc = nn.Linear(z_dim, chans[0] * 16, bias=False)
        self.blocks = nn.ModuleList()
        self.injections = nn.ModuleList()
        self.norm0 = nn.BatchNorm2d(chans[0])
        self.injections.append(NoiseInjection(noise_injection, 4, rni))
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            self.blocks.append(
                nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
            )
            self.injections.append(NoiseInjection(noise_injection, 8 * 2**i, rni))
        self.to_image = nn.Sequential(nn.ConvTranspose2d(chans[-1], out_channels, 4, 2, 1), nn.Tanh())
        dcgan_init_(self)

    def forward(self, z: Tensor, noise_mode: Optional[NoiseMode] = None) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected noise of shape [N, {self.z_dim}], got {list(z.shape)}")
        x = self.fc(z).reshape(z.shape[0], -1, 4, 4)
        x = self.injections[0](self.norm0(x).relu(), noise_mode)
        for block, inject in zip(self.blocks, self.injections[1:]):
            x = inject(block(x), noise_mode)
        return self.to_image(x)
