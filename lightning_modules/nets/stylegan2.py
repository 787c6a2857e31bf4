r"""StyleGAN2 generator and discriminator, config-e of Karras et al. 2020 ("Analyzing and improving
the image quality of StyleGAN"), in plain ``torch.nn``.

Config-e (Table 1 of that paper): no progressive growing, weight demodulation, lazy
regularisation and the path-length regulariser (those two live in the training recipe,
:mod:`lightning_modules.rni_stylegan2`), a *skip* generator (Fig. 7b: every resolution adds its
RGB image to the upsampled sum) and a *residual* discriminator (Fig. 7c).

* :class:`MappingNetwork` f: z -> w.  z is normalised to unit second moment, then
  ``mapping_layers`` equalised-lr fully connected layers with lr multiplier 0.01; w is
  broadcast to the ``num_ws`` style inputs of the synthesis network.  A running mean of w
  (``w_avg``, decay 0.995) serves the truncation trick.
* :class:`SynthesisNetwork` g: w -> image.  A learned 4x4 constant; per resolution two 3x3
  modulated convolutions (the first upsamples by 2 with the [1, 3, 3, 1] FIR filter), each
  followed by noise injection, bias and leaky ReLU; a 1x1 modulated ``ToRGB`` (no
  demodulation) per resolution whose images are summed after FIR upsampling.
* Noise injection is one pluggable layer (:class:`~lightning_modules.nets.noise_injection.
  NoiseInjection`): ``none``, ``eni`` (StyleGAN2's own, RNI Eq. 18) or ``rni``
  (RNI Eq. 13-17), in every synthesis layer.
* :class:`StyleGAN2Discriminator`: ``FromRGB`` at full resolution, per resolution two 3x3
  convolutions (the second downsamples by 2) with a 1x1 residual skip scaled by sqrt(1/2)
  (``resnet``; ``orig`` drops the skip), then the epilogue at 4x4: minibatch standard
  deviation (Karras et al. 2018), a 3x3 conv, a fully connected layer and the logit.

Channels per resolution r: min(channel_base / r, channel_max), as in the reference code
(NVlabs/stylegan2-ada-pytorch, ``training/networks.py``), whose parameter counts these
networks reproduce exactly (tests/test_stylegan2.py).  Low-level ops and their reference
paths: :mod:`lightning_modules.nets.stylegan2_ops`.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import torch
from torch import Tensor, nn

from lightning_modules.nets.noise_injection import InjectionKind, NoiseInjection, NoiseMode, RNIOptions
from lightning_modules.nets.stylegan2_ops import (
    Conv2dLayer,
    FullyConnectedLayer,
    bias_act,
    fir_filter,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)

__all__ = [
    "MappingNetwork",
    "MinibatchStdLayer",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "SynthesisNetwork",
    "check_resolution",
    "channels_per_resolution",
]

RESAMPLE_TAPS = (1, 3, 3, 1)


def check_resolution(resolution: int, minimum: int = 8) -> int:
    """log2(resolution), which must be a power of two >= ``minimum``."""
    k = math.log2(resolution) if resolution > 0 else -1
    if resolution < minimum or not float(k).is_integer():
        raise ValueError(f"StyleGAN2 resolution must be a power of two >= {minimum}, got {resolution}")
    return int(k)


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """{r: min(channel_base // r, channel_max)} for r = 4, 8, ..., resolution."""
    if channel_base < 1 or channel_max < 1:
        raise ValueError(f"channel_base and channel_max must be >= 1, got {channel_base}, {channel_max}")
    res = [2**i for i in range(2, check_resolution(resolution) + 1)]
    channels = {r: max(1, min(channel_base // r, channel_max)) for r in res}
    return channels


# ---------------------------------------------------------------------------------- generator
class MappingNetwork(nn.Module):
    """f: z [N, z_dim] -> w [N, num_ws, w_dim] (StyleGAN Sec. 2; StyleGAN2 keeps it).

    Args:
        z_dim: input latent size.
        w_dim: intermediate latent size.
        num_ws: copies of w the synthesis network takes.
        num_layers: fully connected layers (8 in StyleGAN2; 2 in ADA's CIFAR config).
        lr_multiplier: learning-rate multiplier of the layers (0.01).
        w_avg_beta: decay of the running mean of w used for truncation (``None``: not tracked).
        normalize_z: divide z by its root mean square first (StyleGAN).  This drops |z|: with
            z_dim = 1 only the sign of z is left (two outputs), so the noise-dimension
            experiments with tiny n may turn it off.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.995,
        normalize_z: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the mapping network needs >= 1 layer, got {num_layers}")
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        self.normalize_z = normalize_z
        features = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in zip(features[:-1], features[1:])
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: Tensor, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None, broadcast: bool = True
    ) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of shape [N, {self.z_dim}], got {list(z.shape)}")
        x = z.to(self.w_avg.dtype) if z.dtype != self.w_avg.dtype else z
        if self.normalize_z:
            x = normalize_2nd_moment(x)
        for layer in self.layers:
            x = layer(x)
        if self.training and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().to(self.w_avg.dtype).mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if not broadcast:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cutoff] = self.w_avg.to(x.dtype).lerp(x[:, :cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling) -> noise injection -> bias -> leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        noise_injection: InjectionKind = "eni",
        rni: Optional[RNIOptions] = None,
        conv_clamp: Optional[float] = None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.up, self.conv_clamp, self.resolution = up, conv_clamp, resolution
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.noise = NoiseInjection(noise_injection, resolution, rni)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", fir_filter(RESAMPLE_TAPS), persistent=False)

    def forward(
        self, x: Tensor, w: Tensor, noise_mode: Optional[NoiseMode] = None, fused: bool = False, gain: float = 1.0
    ) -> Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight.to(x.dtype), styles, self.resample_filter.to(x.dtype), up=self.up, fused=fused)
        x = self.noise(x, noise_mode)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act="lrelu", gain=math.sqrt(2) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, plus bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: Optional[float] = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.register_buffer("resample_filter", fir_filter(RESAMPLE_TAPS), persistent=False)

    def forward(self, x: Tensor, w: Tensor, fused: bool = False) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(
            x, self.weight.to(x.dtype), styles, self.resample_filter.to(x.dtype), demodulate=False, fused=fused
        )
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of g: (const or 2x-up conv) + conv + (ToRGB), and the skip image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: Literal["skip", "orig"],
        noise_injection: InjectionKind,
        rni: Optional[RNIOptions],
        conv_clamp: Optional[float],
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=2, noise_injection=noise_injection, rni=rni,
                conv_clamp=conv_clamp,
            )  # fmt: skip
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, noise_injection=noise_injection, rni=rni,
            conv_clamp=conv_clamp,
        )  # fmt: skip
        self.torgb = (
            ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp) if is_last or architecture == "skip" else None
        )
        self.num_conv = 1 if self.conv0 is None else 2
        self.num_torgb = 1 if self.torgb is not None else 0
        self.register_buffer("resample_filter", fir_filter(RESAMPLE_TAPS), persistent=False)

    def forward(
        self,
        x: Optional[Tensor],
        img: Optional[Tensor],
        ws: Tensor,
        noise_mode: Optional[NoiseMode] = None,
        fused: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        w_iter = iter(ws.unbind(dim=1))
        if self.conv0 is None:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w_iter), noise_mode, fused)
        else:
            x = self.conv0(x, next(w_iter), noise_mode, fused)
            x = self.conv1(x, next(w_iter), noise_mode, fused)
        if img is not None:
            img = upsample2d(img, self.resample_filter.to(img.dtype))
        if self.torgb is not None:
            y = self.torgb(x, next(w_iter), fused)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """g: ws [N, num_ws, w_dim] -> images [N, img_channels, R, R] (StyleGAN2 Fig. 7b, skip)."""

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channel_base: int = 16384,
        channel_max: int = 512,
        architecture: Literal["skip", "orig"] = "skip",
        noise_injection: InjectionKind = "eni",
        rni: Optional[RNIOptions] = None,
        conv_clamp: Optional[float] = None,
    ) -> None:
        super().__init__()
        if architecture not in ("skip", "orig"):
            raise ValueError(f"generator architecture must be skip or orig, got {architecture!r}")
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        channels = channels_per_resolution(resolution, channel_base, channel_max)
        self.block_resolutions = sorted(channels)
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                is_last=res == resolution, architecture=architecture, noise_injection=noise_injection, rni=rni,
                conv_clamp=conv_clamp,
            )  # fmt: skip
            self.blocks.append(block)
            self.num_ws += block.num_conv + (block.num_torgb if res == resolution else 0)

    def block_ws(self, ws: Tensor) -> list[Tensor]:
        """The slice of ``ws`` each block reads (consecutive blocks share the ToRGB/conv0 style)."""
        out, idx = [], 0
        for block in self.blocks:
            out.append(ws.narrow(1, idx, block.num_conv + block.num_torgb))
            idx += block.num_conv
        return out

    def forward(self, ws: Tensor, noise_mode: Optional[NoiseMode] = None, fused: Optional[bool] = None) -> Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected ws of shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        # StyleGAN2-ADA's choice: the grouped (fused) conv outside training, per-batch scaling in training.
        fused = (not self.training) if fused is None else fused
        x = img = None
        for block, block_ws in zip(self.blocks, self.block_ws(ws)):
            x, img = block(x, img, block_ws, noise_mode, fused)
        return img


class StyleGAN2Generator(nn.Module):
    """G = g o f: z [N, z_dim] -> images [N, img_channels, R, R] (about [-1, 1], unbounded).

    Args:
        z_dim: latent size (the noise spec's dimension).
        w_dim: intermediate latent size.
        resolution: output side, a power of two >= 8.
        img_channels: image channels.
        channel_base: channels at resolution r are min(channel_base / r, channel_max)
            (16384 in config-e at 128 px would be 512 everywhere: 32768 / r capped at 512).
        channel_max: cap on the channels.
        mapping_layers: depth of the mapping network.
        architecture: ``skip`` (config-e) or ``orig`` (one ToRGB at the end).
        noise_injection: ``none``, ``eni`` or ``rni`` in every synthesis layer.
        rni: options of RNI (:class:`~lightning_modules.nets.noise_injection.RNIOptions`).
        conv_clamp: clamp synthesis activations to +-conv_clamp (``None``: off; 256 in ADA's fp16 layers).
        w_avg_beta: decay of the tracked mean of w (truncation trick).
        normalize_z: normalise z before the mapping network (StyleGAN; see :class:`MappingNetwork`).
    """

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        resolution: int = 128,
        img_channels: int = 3,
        channel_base: int = 16384,
        channel_max: int = 512,
        mapping_layers: int = 8,
        architecture: Literal["skip", "orig"] = "skip",
        noise_injection: InjectionKind = "eni",
        rni: Optional[RNIOptions] = None,
        conv_clamp: Optional[float] = None,
        w_avg_beta: Optional[float] = 0.995,
        normalize_z: bool = True,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.resolution, self.img_channels = z_dim, w_dim, resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim, resolution, img_channels, channel_base, channel_max, architecture, noise_injection, rni, conv_clamp
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, w_dim, self.num_ws, mapping_layers, w_avg_beta=w_avg_beta, normalize_z=normalize_z
        )

    def forward(
        self,
        z: Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        noise_mode: Optional[NoiseMode] = None,
    ) -> Tensor:
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


# ---------------------------------------------------------------------------------- discriminator
class MinibatchStdLayer(nn.Module):
    """Append the mean standard deviation over groups of ``group_size`` samples as extra channels.

    Karras et al. 2018 (ProGAN), Sec. 3.  When the batch size is not a multiple of the group
    size, the largest divisor of the batch size not above it is used.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w).float()
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [N / g, F]
        y = y.to(x.dtype).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """(FromRGB) + conv 3x3 + conv 3x3 down 2, with a 1x1 down-2 residual skip for ``resnet``."""

    def __init__(
        self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, architecture: str
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu") if in_channels == 0 else None
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2) if architecture == "resnet" else None

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        if self.skip is None:
            return self.conv1(self.conv0(x))
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class StyleGAN2Discriminator(nn.Module):
    """D: images [N, C, R, R] -> logits [N] (StyleGAN2 Fig. 7c, residual).

    Args:
        resolution: input side, a power of two >= 8.
        img_channels: image channels.
        channel_base: channels at resolution r are min(channel_base / r, channel_max).
        channel_max: cap on the channels.
        architecture: ``resnet`` (config-e) or ``orig`` (no skips).
        mbstd_group_size: group size of the minibatch-stddev layer (0 disables it).
        mbstd_num_channels: channels it appends.
    """

    def __init__(
        self,
        resolution: int = 128,
        img_channels: int = 3,
        channel_base: int = 16384,
        channel_max: int = 512,
        architecture: Literal["resnet", "orig"] = "resnet",
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
    ) -> None:
        super().__init__()
        if architecture not in ("resnet", "orig"):
            raise ValueError(f"discriminator architecture must be resnet or orig, got {architecture!r}")
        self.resolution, self.img_channels = resolution, img_channels
        channels = channels_per_resolution(resolution, channel_base, channel_max)
        resolutions: Sequence[int] = sorted((r for r in channels if r > 4), reverse=True)
        self.blocks = nn.Sequential(
            *(
                DiscriminatorBlock(
                    channels[r] if r < resolution else 0, channels[r], channels[r // 2], img_channels, architecture
                )
                for r in resolutions
            )
        )
        c4 = channels[4]
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_group_size > 0 else None
        extra = mbstd_num_channels if self.mbstd is not None else 0
        self.conv = Conv2dLayer(c4 + extra, c4, 3, activation="lrelu")
        self.fc = FullyConnectedLayer(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnectedLayer(c4, 1)

    def forward(self, img: Tensor) -> Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images [N, {self.img_channels}, {self.resolution}, {self.resolution}], got {list(img.shape)}"
            )
        x = self.blocks(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x).flatten()
