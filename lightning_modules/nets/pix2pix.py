"""pix2pix networks: a U-Net generator and a conditional PatchGAN discriminator (plain ``torch.nn``).

Isola et al. 2017, "Image-to-image translation with conditional adversarial networks",
Sec. 3.2 and Appendix 6.1 (reference: junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py``, ``UnetGenerator`` / ``NLayerDiscriminator``):

* **U-Net generator** (App. 6.1.1): ``Ck`` = 4x4 convolution, stride 2, k filters,
  norm, activation.  Encoder C64-C128-C256-C512-C512-...: LeakyReLU(0.2), no norm on
  the first layer, none on the innermost (1x1) layer either; decoder mirrors it with ReLU,
  transposed convolutions and skip connections (layer i of the encoder concatenated to
  layer n-i of the decoder); dropout 0.5 on the three decoder layers nearest the
  bottleneck; a last transposed convolution to the output channels and tanh.  The
  number of down-samplings is log2(resolution), so the bottleneck is 1x1 (8 at 256 px).
* **PatchGAN discriminator** (App. 6.1.2, the 70x70 one for ``n_layers=3``): C64-C128-C256
  with stride 2, C512 with stride 1, a 4x4 convolution to one logit per patch; it sees the
  input and the output image concatenated (conditional GAN, pix2pix Eq. 1).

Widths are ``width * 2^i`` capped at ``max_width`` (pix2pix: 64 and 512).

Feature-level noise.  The I2I poster's "G Noise Injection" figure shows noise entering
the generator without saying where; :class:`FeatureNoise` adds N(0, sigma^2) to
encoder features (``feature_noise="bottleneck"``: the innermost code only;
``"encoder"``: every encoder output, skips included).  It is active in training mode only,
unless its ``force`` flag is set (robustness experiments).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import nn

from lightning_modules.nets.dcgan import dcgan_init_

__all__ = ["FeatureNoise", "NormName", "PatchGANDiscriminator", "UNetGenerator"]

NormName = Literal["batch", "instance", "none"]
FeatureNoiseSite = Literal["none", "bottleneck", "encoder"]


def _norm(name: NormName, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":  # pix2pix's instance norm: no affine parameters, no running stats
        return nn.InstanceNorm2d(channels)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; expected 'batch', 'instance' or 'none'")


def _num_downs(resolution: int) -> int:
    downs = int(round(math.log2(resolution))) if resolution >= 4 else 0
    if resolution < 4 or 2**downs != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return downs


class FeatureNoise(nn.Module):
    """``h -> h + sigma * N`` with N standard Gaussian of ``h``'s shape; identity in eval mode unless ``force``.

    ``generator`` (a ``torch.Generator`` on ``h``'s device), when set, draws the noise so
    it does not consume the global random stream (see ``NoisyI2I``).
    """

    def __init__(self, sigma: float = 0.0) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"feature noise sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.force = False
        self.generator: Optional[torch.Generator] = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0.0 or not (self.training or self.force):
            return h
        noise = torch.randn(h.shape, device=h.device, dtype=h.dtype, generator=self.generator)
        return h + self.sigma * noise

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class _Down(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: NormName, use_norm: bool) -> None:
        super().__init__()
        bias = norm == "instance" or not use_norm  # pix2pix: no conv bias before BatchNorm
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)
        self.norm = _norm(norm, c_out) if use_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: NormName, dropout: float) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=norm != "batch")
        self.norm = _norm(norm, c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.conv(torch.relu(x))))


class UNetGenerator(nn.Module):
    """pix2pix U-Net, ``[N, in_channels, R, R]`` in [-1, 1] -> ``[N, out_channels, R, R]`` in (-1, 1).

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        resolution: image side (power of two >= 4); the encoder halves it down to 1x1.
        width: channels of the first encoder layer (pix2pix ``ngf`` = 64).
        max_width: cap on the channels (pix2pix: 512 = 8 * ngf).
        norm: ``batch`` (pix2pix), ``instance`` or ``none``.
        dropout: dropout rate of the ``dropout_layers`` decoder layers nearest the bottleneck
            (pix2pix: 0.5 on 3 layers; the only noise source of pix2pix's generator).
        dropout_layers: how many decoder layers get dropout.
        feature_noise: where :class:`FeatureNoise` acts: ``none``, ``bottleneck`` or ``encoder``.
        feature_noise_sigma: its standard deviation.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        resolution: int = 256,
        width: int = 64,
        max_width: int = 512,
        norm: NormName = "batch",
        dropout: float = 0.5,
        dropout_layers: int = 3,
        feature_noise: FeatureNoiseSite = "none",
        feature_noise_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        if feature_noise not in ("none", "bottleneck", "encoder"):
            raise ValueError(f"unknown feature_noise {feature_noise!r}; expected 'none', 'bottleneck' or 'encoder'")
        downs = _num_downs(resolution)
        widths = [min(width * 2**i, max_width) for i in range(downs)]
        self.down = nn.ModuleList()
        for i, c in enumerate(widths):
            c_in = in_channels if i == 0 else widths[i - 1]
            self.down.append(_Down(c_in, c, norm, use_norm=0 < i < downs - 1))
        # Decoder layer j takes the deeper features (plus the skip, except at the bottleneck)
        # and outputs widths[downs - 2 - j]; the last layer outputs the image.
        self.up = nn.ModuleList()
        for j in range(downs - 1):
            level = downs - 1 - j  # encoder level whose output this layer receives
            c_in = widths[level] * (1 if j == 0 else 2)
            self.up.append(_Up(c_in, widths[level - 1], norm, dropout if j < dropout_layers else 0.0))
        self.out = nn.ConvTranspose2d(widths[0] * 2, out_channels, 4, stride=2, padding=1)
        sites = {"none": [], "bottleneck": [downs - 1], "encoder": list(range(downs))}[feature_noise]
        self.feature_noise = nn.ModuleDict({str(i): FeatureNoise(feature_noise_sigma) for i in sites})
        dcgan_init_(self)  # pix2pix's init_type='normal' is DCGAN's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, layer in enumerate(self.down):
            h = layer(h if i == 0 else nn.functional.leaky_relu(h, 0.2))
            if str(i) in self.feature_noise:
                h = self.feature_noise[str(i)](h)
            skips.append(h)
        h = skips.pop()  # the bottleneck
        for layer in self.up:
            h = torch.cat([layer(h), skips.pop()], dim=1)
        return torch.tanh(self.out(torch.relu(h)))


class PatchGANDiscriminator(nn.Module):
    """Conditional PatchGAN: ``(input, image)`` -> logits ``[N, 1, h, w]``, one per overlapping patch.

    Args:
        in_channels: channels of the input (source) image.
        out_channels: channels of the (real or translated) target image.
        width: channels of the first layer (pix2pix ``ndf`` = 64).
        max_width: cap on the channels (512).
        n_layers: stride-2 layers after the first (3 gives the 70x70 PatchGAN).
        norm: ``batch`` (pix2pix), ``instance`` or ``none``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        max_width: int = 512,
        n_layers: int = 3,
        norm: NormName = "batch",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels + out_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, n_layers + 1):
            c_out = min(width * 2**i, max_width)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_out, 4, stride, 1, bias=bias), _norm(norm, c_out), nn.LeakyReLU(0.2)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)  # pix2pix's init_type='normal' is DCGAN's

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, image], dim=1))
