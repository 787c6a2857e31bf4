"""Lossy-compression baselines for GANZ at equal size: wavelets (the paper's) and standard codecs.

**Wavelets** (GANZ Sec. 3.4, after Lustig et al.'s compressed-sensing tutorial): each colour
channel is transformed with a 2-D Daubechies-4 wavelet transform (PyWavelets,
``wavedec2``, all levels, ``periodization`` so an H x W channel has exactly H*W
coefficients and the transform is orthogonal), all but the ``keep`` largest coefficients
(by magnitude) are zeroed, and the channel is transformed back.  GANZ compares at equal
degrees of freedom: for a latent of M values and N = H*W*C pixels it keeps "the largest
M/(3N) coefficients per colour channel" -- the fraction M/N of each channel's
coefficients, i.e. ``keep = M / C`` per channel (M/3 for RGB), M in all
(:func:`wavelet_keep_for`).  :func:`wavelet_bytes` gives the size those coefficients
take when stored like GANZ's latent: a float32 value plus its position
(ceil(log2(H*W)) bits) each, so the two can share a bits-per-pixel axis.

**Standard codecs** (``imagecodecs``): JPEG (libjpeg-turbo), WebP (lossy), JPEG-XL and
AVIF, each tuned to a byte budget by :func:`codec_at_budget`: the highest quality level
(0-100) whose stream fits the budget, found on a grid of 25 and refined by bisection.  A codec
whose smallest stream is over the budget returns that stream flagged ``over_budget``
(JPEG's headers alone take about 300 bytes).  Codecs this ``imagecodecs`` build lacks are
left out with a logged note (:func:`available_codecs`).  Grey images go to WebP and AVIF as
three equal channels (WebP has no grey mode, AVIF's is lossless here) and come back as
their channel mean.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

__all__ = [
    "CODECS",
    "CodecResult",
    "available_codecs",
    "codec_at_budget",
    "wavelet_bytes",
    "wavelet_compress",
    "wavelet_keep_for",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- wavelets
def _keep_largest(values: np.ndarray, keep: int) -> np.ndarray:
    """``values`` with all but the ``keep`` largest magnitudes set to 0 (exactly ``keep`` survive; ties by index)."""
    flat = values.ravel()
    out = np.zeros_like(flat)
    if keep > 0:
        order = np.argsort(-np.abs(flat), kind="stable")[:keep]
        out[order] = flat[order]
    return out.reshape(values.shape)


def wavelet_compress(
    image: np.ndarray, keep: int, wavelet: str = "db4", level: Optional[int] = None
) -> tuple[np.ndarray, list[int]]:
    """Keep the ``keep`` largest wavelet coefficients of each channel of ``image`` [C, H, W] (float).

    Returns the reconstruction [C, H, W] (float64, not clipped) and, per channel, how many
    coefficients were kept (``keep``, or every coefficient when a channel has fewer).
    """
    import pywt

    if image.ndim != 3:
        raise ValueError(f"expected an image [C, H, W], got shape {image.shape}")
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    out, kept = [], []
    for channel in np.asarray(image, dtype=np.float64):
        coeffs = pywt.wavedec2(channel, wavelet, mode="periodization", level=level)
        array, slices = pywt.coeffs_to_array(coeffs)
        sparse = _keep_largest(array, min(keep, array.size))
        kept.append(min(keep, array.size))
        rebuilt = pywt.waverec2(
            pywt.array_to_coeffs(sparse, slices, output_format="wavedec2"), wavelet, mode="periodization"
        )
        out.append(rebuilt[: channel.shape[0], : channel.shape[1]])
    return np.stack(out), kept


def wavelet_keep_for(latent_dim: int, channels: int) -> int:
    """Coefficients kept per channel at the degrees of freedom of a latent of ``latent_dim`` values: M / C."""
    return max(1, round(latent_dim / channels))


def wavelet_bytes(keep: int, channels: int, height: int, width: int) -> int:
    """Bytes of ``keep`` coefficients per channel stored as float32 value + ceil(log2(H*W))-bit position."""
    index_bits = max(1, math.ceil(math.log2(height * width)))
    return math.ceil(channels * keep * (32 + index_bits) / 8)


# ---------------------------------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class _Codec:
    title: str
    module: str
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes], np.ndarray]


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2)) if image.ndim == 2 else image


def _codecs() -> dict[str, _Codec]:
    import imagecodecs as ic

    return {
        "jpeg": _Codec("JPEG", "JPEG8", lambda im, q: ic.jpeg8_encode(im, level=q), ic.jpeg8_decode),
        "webp": _Codec("WebP", "WEBP", lambda im, q: ic.webp_encode(_rgb(im), level=q, lossless=False), ic.webp_decode),
        "jpegxl": _Codec("JPEG-XL", "JPEGXL", lambda im, q: ic.jpegxl_encode(im, level=q), ic.jpegxl_decode),
        "avif": _Codec("AVIF", "AVIF", lambda im, q: ic.avif_encode(_rgb(im), level=q), ic.avif_decode),
    }


#: the lossy codecs tried, by name.
CODECS = ("jpeg", "webp", "jpegxl", "avif")


def available_codecs(names: tuple[str, ...] = CODECS) -> list[str]:
    """The codecs of ``names`` this ``imagecodecs`` build has; each missing one is logged, not an error."""
    import imagecodecs

    table, found = _codecs(), []
    for name in names:
        if name not in table:
            raise ValueError(f"unknown codec {name!r}; expected one of {', '.join(CODECS)}")
        if getattr(getattr(imagecodecs, table[name].module, None), "available", False):
            found.append(name)
        else:
            log.warning("imagecodecs has no %s encoder here; the %s baseline is left out", table[name].title, name)
    return found


@dataclass(frozen=True)
class CodecResult:
    """A codec's stream at a byte budget and the decoded image (uint8, the input's shape)."""

    codec: str
    quality: int
    num_bytes: int
    over_budget: bool
    decoded: np.ndarray


def codec_at_budget(image: np.ndarray, codec: str, budget: int) -> CodecResult:
    """Encode uint8 ``image`` ([H, W] or [H, W, C]) with ``codec`` at the highest quality within ``budget`` bytes."""
    entry = _codecs()[codec]
    sizes: dict[int, bytes] = {}

    def stream(q: int) -> bytes:
        if q not in sizes:
            sizes[q] = bytes(entry.encode(image, q))
        return sizes[q]

    coarse = [q for q in range(0, 101, 25) if len(stream(q)) <= budget]
    if coarse:
        # The highest fitting coarse level, then a binary search up to the next coarse level
        # (sizes grow with the level, except at a few of JPEG-XL's lowest levels).
        lo, hi = max(coarse), min(max(coarse) + 25, 101)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if len(stream(mid)) <= budget else (lo, mid)
        best, over = lo, False
    else:
        best, over = min(sizes, key=lambda q: (len(sizes[q]), -q)), True
    data = stream(best)
    decoded = np.asarray(entry.decode(data))
    if image.ndim == 2 and decoded.ndim == 3:
        decoded = decoded.astype(np.float64).mean(axis=2).round().astype(np.uint8)
    if decoded.shape != image.shape:
        raise RuntimeError(f"{entry.title} decoded a {decoded.shape} image from a {image.shape} one")
    return CodecResult(codec, best, len(data), over, decoded)
