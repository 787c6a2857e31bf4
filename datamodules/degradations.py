"""Source-domain degradations for image-to-image translation: target ``y`` -> input ``x``.

Each degradation is a plain, deterministic function of a float image in [-1, 1] of shape
``[C, H, W]`` or a batch ``[N, C, H, W]``; the output has the *same* shape and stays in
[-1, 1], so a pix2pix-style generator (a U-Net) maps same-size images:

* ``downsample`` -- super-resolution input (HiFaceGAN's face SR): ``y`` down to
  ``H/k x W/k`` (antialiased bicubic, or exact ``k x k`` block means), then back up to
  ``H x W`` (bicubic, bilinear or nearest);
* ``blur`` -- Gaussian blur of standard deviation ``sigma``;
* ``grey`` -- ITU-R 601 luma, repeated over the channels (colourisation input);
* ``edges`` -- a sketch-like line drawing (photo -> sketch): inverted, per-image
  normalised Sobel gradient magnitude of the luma, dark lines on white;
* ``none`` -- identity, for datasets that already come in pairs.

:data:`DEGRADATIONS` maps these names to picklable classes (they run inside DataLoader
workers); :func:`build_degradation` builds one by name, checking its parameters.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "DEGRADATIONS",
    "Blur",
    "Degradation",
    "Downsample",
    "Edges",
    "Grey",
    "Identity",
    "blur",
    "build_degradation",
    "downsample",
    "edges",
    "grey",
    "luma",
]

DownMode = Literal["bicubic", "area"]
UpMode = Literal["bicubic", "bilinear", "nearest"]


def _batched(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """``x`` as ``[N, C, H, W]`` and whether it was already batched."""
    if x.ndim not in (3, 4) or not x.is_floating_point():
        raise TypeError(f"{name} expects a float image [C, H, W] or batch [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    return (x, True) if x.ndim == 4 else (x[None], False)


def luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` as ``[..., 1, H, W]`` (1 channel: itself).

    The weights sum to 1, so this is the same in [-1, 1] as in [0, 1] (torchvision's
    ``rgb_to_grayscale`` weights, as :class:`~datamodules.base.ImageTransform` uses).
    """
    channels = x.shape[-3]
    if channels == 1:
        return x
    if channels != 3:
        raise ValueError(f"luma needs 1 or 3 channels, got {channels}")
    return TF.rgb_to_grayscale(x, num_output_channels=1)


def downsample(
    x: torch.Tensor, scale: int = 4, down_mode: DownMode = "bicubic", up_mode: UpMode = "bicubic"
) -> torch.Tensor:
    """Down by ``scale`` = k, then back up: the (same-size) input of a super-resolution model.

    ``x_lr = D_k(y)`` of size ``H/k x W/k``, then ``x = clamp(U_k(x_lr), -1, 1)`` of size ``H x W``:

    * ``down_mode="bicubic"``: antialiased bicubic (PyTorch's ``antialias=True`` resampling,
      Keys' cubic with a = -0.5 stretched by k, as PIL / MATLAB ``imresize`` -- the usual
      SR degradation); ``"area"``: the mean of each ``k x k`` block, exactly;
    * ``up_mode``: ``"bicubic"`` (Keys a = -0.5, then clamped: bicubic overshoots),
      ``"bilinear"``, or ``"nearest"`` (each low-res pixel repeated over a ``k x k`` block).

    So ``area`` + ``nearest`` is the block-mean projection: an image made of constant
    ``k x k`` blocks comes back unchanged, and a checkerboard of period 2 becomes flat.
    ``H`` and ``W`` must be multiples of ``k``; ``k = 1`` is the identity.
    """
    batch, was_batched = _batched(x, "downsample")
    if scale < 1:
        raise ValueError(f"downsample scale must be >= 1, got {scale}")
    h, w = batch.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"downsample: the image size {h}x{w} is not a multiple of the scale {scale}")
    if scale == 1:
        return x.clone()
    if down_mode == "area":
        low = F.avg_pool2d(batch, scale)
    elif down_mode == "bicubic":
        low = F.interpolate(batch, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True)
    else:
        raise ValueError(f"downsample down_mode must be bicubic or area, got {down_mode!r}")
    if up_mode == "nearest":
        high = F.interpolate(low, size=(h, w), mode="nearest")
    elif up_mode in ("bicubic", "bilinear"):
        high = F.interpolate(low, size=(h, w), mode=up_mode, align_corners=False, antialias=True)
    else:
        raise ValueError(f"downsample up_mode must be bicubic, bilinear or nearest, got {up_mode!r}")
    high = high.clamp_(-1.0, 1.0)
    return high if was_batched else high[0]


def blur_kernel_size(sigma: float) -> int:
    """The Gaussian kernel side used for ``sigma``: ``2 * ceil(3 sigma) + 1`` (+-3 sigma, odd)."""
    return 2 * math.ceil(3 * sigma) + 1


def blur(x: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Gaussian blur: ``x = G_sigma * y`` per channel (torchvision's ``gaussian_blur``).

    ``G_sigma(u, v) ∝ exp(-(u^2 + v^2) / (2 sigma^2))`` on a square kernel of side
    ``2 * ceil(3 sigma) + 1``, normalised to sum 1, reflect padding at the borders (the
    kernel is cut to fit images smaller than it).  A convex combination, so the range
    stays in [-1, 1].  ``sigma = 0`` is the identity.
    """
    batch, was_batched = _batched(x, "blur")
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clone()
    h, w = batch.shape[-2:]
    # Reflect padding needs padding < side: cut the kernel for tiny images.
    size = min(blur_kernel_size(sigma), 2 * (min(h, w) - 1) + 1)
    if size < 3:
        return x.clone()
    out = TF.gaussian_blur(batch, [size, size], [float(sigma), float(sigma)])
    return out if was_batched else out[0]


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (see :func:`luma`) repeated to the C channels.

    Every output channel equals ``Y``; a 1-channel image is returned unchanged (a copy).
    """
    batch, was_batched = _batched(x, "grey")
    out = luma(batch).expand_as(batch).clone()
    return out if was_batched else out[0]


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def edges(x: torch.Tensor, threshold: Optional[float] = None) -> torch.Tensor:
    """A sketch-like line drawing: dark lines (-1) where the luma changes, white (+1) elsewhere.

    With ``Y`` the luma (:func:`luma`), the Sobel gradients (replicate padding)
    ``G_x = S * Y``, ``G_y = S^T * Y`` with ``S = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``,
    the magnitude ``G = sqrt(G_x^2 + G_y^2)`` normalised per image ``g = G / max(G)``
    (``g = 0`` for a flat image, ``max(G) < 1e-6``), the output is

    * ``x = 1 - 2 g`` (grey-level lines, in [-1, 1]) when ``threshold`` is ``None``;
    * ``x = -1 where g > threshold, else +1`` (binary lines) for a threshold in [0, 1),

    repeated to the C channels.  A flat image gives all +1; a step gives a dark line
    two pixels wide along the step.
    """
    batch, was_batched = _batched(x, "edges")
    if threshold is not None and not 0 <= threshold < 1:
        raise ValueError(f"edges threshold must be in [0, 1) or null, got {threshold}")
    y = F.pad(luma(batch), (1, 1, 1, 1), mode="replicate")
    kernel = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None].to(y)
    gx, gy = F.conv2d(y, kernel).unbind(1)
    magnitude = torch.sqrt(gx * gx + gy * gy)
    peak = magnitude.amax(dim=(-2, -1), keepdim=True)
    g = torch.where(peak > 1e-6, magnitude / peak.clamp_min(1e-6), torch.zeros_like(magnitude))
    out = 1.0 - 2.0 * g if threshold is None else torch.where(g > threshold, -1.0, 1.0).to(g)
    out = out[:, None].expand_as(batch).clone()
    return out if was_batched else out[0]


# ---------------------------------------------------------------------------- registry
class Degradation:
    """A degradation with its parameters bound; ``degradation(image)`` -> same-shape image."""

    name: str = ""
    fn: Callable[..., torch.Tensor]

    def params(self) -> dict:
        return dict(vars(self))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return type(self).fn(x, **self.params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class Downsample(Degradation):
    """:func:`downsample` by ``scale``."""

    name, fn = "downsample", staticmethod(downsample)

    def __init__(self, scale: int = 4, down_mode: DownMode = "bicubic", up_mode: UpMode = "bicubic") -> None:
        if scale < 1:
            raise ValueError(f"downsample scale must be >= 1, got {scale}")
        if down_mode not in ("bicubic", "area"):
            raise ValueError(f"downsample down_mode must be bicubic or area, got {down_mode!r}")
        if up_mode not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"downsample up_mode must be bicubic, bilinear or nearest, got {up_mode!r}")
        self.scale, self.down_mode, self.up_mode = int(scale), down_mode, up_mode


class Blur(Degradation):
    """:func:`blur` with standard deviation ``sigma`` (pixels)."""

    name, fn = "blur", staticmethod(blur)

    def __init__(self, sigma: float = 2.0) -> None:
        if sigma < 0:
            raise ValueError(f"blur sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)


class Grey(Degradation):
    """:func:`grey`."""

    name, fn = "grey", staticmethod(grey)


class Edges(Degradation):
    """:func:`edges`, binary when ``threshold`` is given."""

    name, fn = "edges", staticmethod(edges)

    def __init__(self, threshold: Optional[float] = None) -> None:
        if threshold is not None and not 0 <= threshold < 1:
            raise ValueError(f"edges threshold must be in [0, 1) or null, got {threshold}")
        self.threshold = threshold


class Identity(Degradation):
    """``x = y`` (a copy): for data that already comes in pairs, or an autoencoding baseline."""

    name = "none"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _batched(x, "none")
        return x.clone()


DEGRADATIONS: dict[str, type[Degradation]] = {cls.name: cls for cls in (Downsample, Blur, Grey, Edges, Identity)}


def build_degradation(name: str, **params) -> Degradation:
    """The degradation called ``name`` (a key of :data:`DEGRADATIONS`) with ``params``.

    Raises ``ValueError`` for an unknown name or a parameter the degradation does not take.
    """
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    cls = DEGRADATIONS[name]
    try:
        inspect.signature(cls).bind(**params)
    except TypeError:
        accepted = [p for p in inspect.signature(cls).parameters]
        raise ValueError(
            f"degradation {name!r} takes {', '.join(accepted) or 'no parameters'}, got {', '.join(params)}"
        ) from None
    return cls(**params)
