r"""The low-level operations of StyleGAN2 (Karras et al. 2020, "Analyzing and improving the image
quality of StyleGAN"), each with a slow reference path beside the fast one.

* **Equalised learning rate** (ProGAN, Karras et al. 2018, Sec. 4.1): weights are stored as
  N(0, 1) / lr_multiplier and scaled at run time by lr_multiplier / sqrt(fan_in), so Adam's
  per-parameter step sizes are the same for every layer.
* **FIR resampling** -- ``upfirdn2d``: upsample by zero insertion, pad, filter with a 2-D FIR
  kernel (the separable [1, 3, 3, 1] binomial of StyleGAN2), downsample by dropping samples.
  :func:`upfirdn2d_reference` sums shifted copies of the padded input, one per filter tap,
  which is the definition of a convolution written out; :func:`upfirdn2d` does the same with
  one depthwise ``conv2d`` and a reshape for the zero insertion.
* **Modulated convolution** (StyleGAN2 Sec. 2.2, Eq. 1-3): w'_ijk = s_i w_ijk (StyleGAN2 Eq. 1);
  demodulation w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps) (StyleGAN2 Eq. 3), so that unit-variance
  inputs give unit-variance outputs (StyleGAN2 Eq. 2).  :func:`modulated_conv2d_reference` builds each
  sample's weights and convolves one sample at a time; :func:`modulated_conv2d` either
  *fuses* the batch into a grouped convolution (StyleGAN2's "grouped convolution" trick,
  Sec. 2.2, last paragraph) or scales the activations before and after one shared convolution
  (the non-fused form, faster for training batches).
* **Resampling convolutions** (:func:`conv2d_resample`): a 3x3 convolution fused with 2x FIR
  upsampling (a stride-2 transposed convolution followed by the FIR filter) or downsampling
  (the FIR filter followed by a stride-2 convolution); the reference path upsamples first and
  convolves at the high rate, or convolves at the full rate and then drops samples.

Reference implementation for the conventions (padding, gains, where the filter goes):
NVlabs/stylegan2-ada-pytorch, ``torch_utils/ops/upfirdn2d.py``, ``conv2d_resample.py`` and
``training/networks.py`` (``modulated_conv2d``).  Filters are symmetric, so convolution and
correlation coincide for them; the weights of :func:`conv2d_resample` are used as
``torch.nn.functional.conv2d`` uses them (cross-correlation) on both paths.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Conv2dLayer",
    "FullyConnectedLayer",
    "bias_act",
    "conv2d_resample",
    "conv2d_resample_reference",
    "downsample2d",
    "fir_filter",
    "modulated_conv2d",
    "modulated_conv2d_reference",
    "normalize_2nd_moment",
    "upfirdn2d",
    "upfirdn2d_reference",
    "upsample2d",
]

Padding = Union[int, Sequence[int]]

#: Gain of the leaky ReLU that keeps unit variance (He et al. 2015): sqrt(2).
LRELU_GAIN = math.sqrt(2.0)


def fir_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> Tensor:
    """The separable 2-D FIR filter outer(f, f) of 1-D ``taps``, normalised to sum 1 (float32)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim != 1 or f.numel() < 1:
        raise ValueError(f"FIR taps must be a non-empty 1-D sequence, got {taps!r}")
    f = torch.outer(f, f)
    return f / f.sum()


def _pad4(padding: Padding) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, a pair (x, y) or four values."""
    if isinstance(padding, int):
        return (padding,) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, two or four ints, got {padding!r}")


def _check_upfirdn(x: Tensor, f: Tensor, up: int, down: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {list(x.shape)}")
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D filter, got {list(f.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got {up}, {down}")


def _zero_insert_and_pad(x: Tensor, up: int, pad: tuple[int, int, int, int]) -> Tensor:
    """Insert up - 1 zeros after every sample along H and W, then pad (negative pads crop)."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    return x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]


def upfirdn2d_reference(
    x: Tensor, f: Tensor, up: int = 1, down: int = 1, padding: Padding = 0, gain: float = 1.0
) -> Tensor:
    """upfirdn2d by its definition: zero insertion, padding, a sum over filter taps, subsampling.

    out[y, x] = gain * sum_{i, j} f[i, j] * u[y + (kh - 1 - i), x + (kw - 1 - j)] (a true
    convolution with f over the upsampled, padded signal u), then every ``down``-th sample.
    Slow (one tensor operation per tap) and obviously correct: the test oracle of
    :func:`upfirdn2d`.
    """
    _check_upfirdn(x, f, up, down)
    u = _zero_insert_and_pad(x, up, _pad4(padding))
    kh, kw = f.shape
    oh, ow = u.shape[2] - kh + 1, u.shape[3] - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"upfirdn2d: the filter {kh}x{kw} is larger than the padded input {list(u.shape[2:])}")
    out = torch.zeros(*u.shape[:2], oh, ow, dtype=x.dtype, device=x.device)
    ff = f.to(x.dtype)
    for i in range(kh):
        for j in range(kw):
            out = out + ff[kh - 1 - i, kw - 1 - j] * u[:, :, i : i + oh, j : j + ow]
    return out[:, :, ::down, ::down] * gain


def upfirdn2d(x: Tensor, f: Tensor, up: int = 1, down: int = 1, padding: Padding = 0, gain: float = 1.0) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample ``x`` [N, C, H, W]; the fast path.

    The same numbers as :func:`upfirdn2d_reference`: the zero insertion is a reshape and
    the filter one depthwise ``conv2d`` whose stride does the downsampling.  (Measured on
    CPU, one 4x4 depthwise convolution beats two separable 1-D ones, whose backward passes
    cost more than they save.)  ``padding`` is (x0, x1, y0, y1), a pair (x, y) or one int,
    applied after upsampling; negative values crop.
    """
    _check_upfirdn(x, f, up, down)
    u = _zero_insert_and_pad(x, up, _pad4(padding))
    c = u.shape[1]
    weight = (f.to(x.dtype).flip([0, 1]) * gain)[None, None].repeat(c, 1, 1, 1)  # flipped: a true convolution
    return F.conv2d(u, weight, stride=down, groups=c)


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """Upsample by ``up`` with FIR filter ``f``: [N, C, H, W] -> [N, C, up H, up W] (gain up^2)."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up**2)


def downsample2d(x: Tensor, f: Tensor, down: int = 2) -> Tensor:
    """Downsample by ``down`` after FIR filter ``f``: [N, C, H, W] -> [N, C, H / down, W / down]."""
    fw = f.shape[-1]
    p0, p1 = (fw - down + 1) // 2, (fw - down) // 2
    return upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))


# ---------------------------------------------------------------------------------- resampling conv
def _resample_check(w: Tensor, up: int, down: int) -> int:
    if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
        raise ValueError(f"conv2d_resample supports up=2 or down=2 (not both), got up={up}, down={down}")
    kh, kw = w.shape[-2:]
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"conv2d_resample needs an odd square kernel, got {kh}x{kw}")
    return kh


def conv2d_resample_reference(x: Tensor, w: Tensor, f: Tensor, up: int = 1, down: int = 1, groups: int = 1) -> Tensor:
    """A 'same' convolution with 2x FIR up/downsampling, the slow way (the oracle of :func:`conv2d_resample`).

    up=2: upsample (zero insertion + FIR, gain 4) to twice the size, with enough border that a
    *valid* convolution then gives exactly 2H x 2W; down=2: FIR-filter with the padding that
    keeps the size after a valid conv, convolve at the full rate, then drop every other sample.
    Neither path uses a stride, so the two code paths share no arithmetic shortcut.
    """
    k = _resample_check(w, up, down)
    fw = f.shape[-1]
    if up > 1:
        # Full-size filtered signal, then the conv's k - 1 extra border rows: out = 2H exactly.
        total = 2 * x.shape[-1] + k - 1  # wanted length before the valid conv
        p0 = (fw + up - 1) // 2 + k // 2
        p1 = total - (2 * x.shape[-1] + p0 - fw + 1)
        u = upfirdn2d_reference(x, f, up=2, padding=(p0, p1, p0, p1), gain=4)
        return F.conv2d(u, w, groups=groups)
    if down > 1:
        p0 = (fw - down + 1) // 2 + k // 2
        p1 = (fw - down) // 2 + k // 2
        u = upfirdn2d_reference(x, f, padding=(p0, p1, p0, p1))
        return F.conv2d(u, w, groups=groups)[:, :, ::2, ::2]
    return F.conv2d(x, w, padding=k // 2, groups=groups)


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor, up: int = 1, down: int = 1, groups: int = 1) -> Tensor:
    """A 'same' convolution (weights [O, I/groups, k, k]) fused with 2x FIR up- or downsampling.

    up=2: a stride-2 transposed convolution (which inserts the zeros and convolves in one
    op) followed by the FIR filter; down=2: the FIR filter followed by a stride-2 convolution.
    A 1x1 kernel resamples first (cheaper).  Same numbers as :func:`conv2d_resample_reference`.
    """
    k = _resample_check(w, up, down)
    fw = f.shape[-1]
    if up > 1:
        if k == 1:
            return F.conv2d(upsample2d(x, f), w, groups=groups)
        # conv_transpose2d is the adjoint of conv2d: flip the kernel and swap in/out per group.
        o, i = w.shape[:2]
        wt = w.flip([2, 3]).reshape(groups, o // groups, i, k, k).transpose(1, 2).reshape(groups * i, o // groups, k, k)
        y = F.conv_transpose2d(x, wt, stride=2, groups=groups)  # 2H + k - 2 per side
        p0 = (fw + up - 1) // 2 + k // 2 - (k - 1)
        p1 = (fw - up) // 2 + k // 2 - (k - up)
        return upfirdn2d(y, f, padding=(p0, p1, p0, p1), gain=4)
    if down > 1:
        if k == 1:
            return F.conv2d(downsample2d(x, f), w, groups=groups)
        p0 = (fw - down + 1) // 2 + k // 2
        p1 = (fw - down) // 2 + k // 2
        return F.conv2d(upfirdn2d(x, f, padding=(p0, p1, p0, p1)), w, stride=2, groups=groups)
    return F.conv2d(x, w, padding=k // 2, groups=groups)


# ---------------------------------------------------------------------------------- modulated conv
def _check_modconv(x: Tensor, weight: Tensor, styles: Tensor) -> None:
    if x.ndim != 4 or weight.ndim != 4 or styles.ndim != 2:
        raise ValueError("modulated_conv2d expects x [N, I, H, W], weight [O, I, k, k], styles [N, I]")
    if styles.shape != (x.shape[0], weight.shape[1]) or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"modulated_conv2d: x {list(x.shape)}, weight {list(weight.shape)} and styles {list(styles.shape)} disagree"
        )


def modulated_conv2d_reference(
    x: Tensor, weight: Tensor, styles: Tensor, f: Tensor, up: int = 1, demodulate: bool = True
) -> Tensor:
    """Eq. 1-3 of StyleGAN2 one sample at a time: build w'' for sample n, convolve sample n."""
    _check_modconv(x, weight, styles)
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)  # StyleGAN2 Eq. 1: scale input channel i by s_i
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)  # StyleGAN2 Eq. 3
        out.append(conv2d_resample_reference(x[n : n + 1], w, f, up=up))
    return torch.cat(out)


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    f: Tensor,
    up: int = 1,
    demodulate: bool = True,
    fused: bool = False,
) -> Tensor:
    """Eq. 1-3 of StyleGAN2 for a batch: x [N, I, H, W], weight [O, I, k, k], styles [N, I].

    ``fused=True``: per-sample weights [N O, I, k, k] and one grouped convolution (groups = N).
    ``fused=False``: x * s, one convolution with the shared weights, times the per-sample
    demodulation coefficients (StyleGAN2 Eq. 3 written as an output scale) -- the same numbers, and on
    most hardware faster for training batches.
    """
    _check_modconv(x, weight, styles)
    n = x.shape[0]
    o, i, k, _ = weight.shape
    dcoefs = None
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 for every sample n and output channel o: [N, O]
        dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8)
    if not fused:
        y = conv2d_resample(x * styles.reshape(n, -1, 1, 1), weight, f, up=up)
        return y * dcoefs.reshape(n, -1, 1, 1) if dcoefs is not None else y
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    y = conv2d_resample(x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, k, k), f, up=up, groups=n)
    return y.reshape(n, o, *y.shape[2:])


# ---------------------------------------------------------------------------------- layers
def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean(x^2)) along ``dim`` (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: Tensor, b: Optional[Tensor] = None, act: str = "linear", gain: Optional[float] = None, clamp: Optional[float] = None
) -> Tensor:
    """Add a per-channel bias (dim 1), apply ``linear`` or ``lrelu`` (slope 0.2, gain sqrt 2), clamp."""
    if b is not None:
        x = x + b.reshape(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        gain = LRELU_GAIN if gain is None else gain
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}; expected linear or lrelu")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnectedLayer(nn.Module):
    """y = act(x W^T * lr_multiplier / sqrt(in) + b * lr_multiplier), with equalised learning rate.

    Args:
        in_features: input size.
        out_features: output size.
        bias: learn a bias.
        activation: ``linear`` or ``lrelu``.
        lr_multiplier: learning-rate multiplier (0.01 in the mapping network).
        bias_init: initial bias value.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional 2x FIR up/downsampling, bias and activation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel side.
        bias: learn a bias.
        activation: ``linear`` or ``lrelu``.
        up: 2 to upsample (FIR) with the convolution.
        down: 2 to downsample (FIR) with the convolution.
        resample_taps: 1-D taps of the FIR filter.
        conv_clamp: clamp the output to [-conv_clamp, conv_clamp] (``None``: no clamp).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_taps: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", fir_filter(resample_taps), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter.to(x.dtype), up=self.up, down=self.down)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)
