"""Lossless rate of an image dataset under practical codecs (seed "noise dimension", Sec. 4.3, Table 2).

Theorem 4.2 of the seed paper bounds the noise dimension a perfect GAN needs by
E[L(X)], the minimal expected length in bits of a lossless code of the data (Noise-dim Eq. 9-10).
The minimal code is unknown, so the paper approximates E[L(X)] by the rate of practical
lossless codecs: Table 2 lists the average bytes per image of CIFAR10 and LSUN-Church
under PNG, WebP and JPEG-XL.  This module measures the same quantity for any stream of
8-bit images, with every lossless image codec that ``imagecodecs`` offers here:

* each image is encoded, decoded and compared with the original (bit-exact, same shape);
  a mismatch is an error naming the image and the codec;
* its size is ``len()`` of the whole encoded stream, headers included, exactly as a file
  written by the codec would be;
* every codec runs at its strongest lossless setting (:data:`CODECS` states each).  Where
  a codec's only size-relevant settings are discrete choices with no "strongest" end
  (PNG's row filter and zlib strategy, the lossless-JPEG predictor, the number of JPEG
  2000 decomposition levels) every choice is tried and the smallest stream is kept, as
  ``optipng`` does for PNG.

Images are grey ``[H, W]``, RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]``.  Grey stays one
channel for every codec that has a grey mode; WebP and QOI have none, so a grey image
is given to them as RGB with three equal channels (what ``cwebp`` does with a grey PNG)
and each decoded channel must equal the image.  An alpha channel is kept and encoded
as a fourth channel; it is part of the bit-exact check.

The work is split into chunks of images; :func:`measure_rate` runs them in-process
(``workers=1``) or in a process pool.  Sizes are integers summed per codec, so the
result does not depend on the number of workers or the order chunks finish in.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

__all__ = [
    "Codec",
    "CODECS",
    "LEFT_OUT",
    "PAPER_TABLE_2",
    "CodecError",
    "CodecTotals",
    "RateResult",
    "available_codecs",
    "resolve_codecs",
    "check_image",
    "roundtrip",
    "measure_chunk",
    "measure_rate",
    "default_workers",
]


class CodecError(Exception):
    """An image a codec cannot encode, or whose decoded pixels differ from the original."""


@dataclass(frozen=True)
class Codec:
    """One lossless codec of ``imagecodecs`` and the settings it runs with.

    Attributes:
        name: the name used on the command line and in ``--out`` files (``jpegxl``).
        title: the name printed in tables (``JPEG-XL``, as in seed Table 2).
        module: the ``imagecodecs`` attribute whose ``.available`` says it is built in.
        encoder: name of the ``imagecodecs`` encode function.
        decoder: name of the ``imagecodecs`` decode function.
        variants: keyword arguments of the encoder, one dict per setting tried; with
            more than one, every image is encoded with each and the smallest stream is
            kept (the first among equals).
        variant_labels: a short label per variant (for the counts of which one won).
        settings: the settings in words, printed under the table.
        grey_as_rgb: the codec has no grey mode; grey images are encoded as RGB with
            three equal channels.
        version: name of the ``imagecodecs`` function returning the library version.
    """

    name: str
    title: str
    module: str
    encoder: str
    decoder: str
    variants: tuple[dict[str, Any], ...]
    variant_labels: tuple[str, ...]
    settings: str
    grey_as_rgb: bool = False
    version: str = ""

    def available(self) -> bool:
        """Whether this build of ``imagecodecs`` has the codec."""
        import imagecodecs

        return bool(getattr(getattr(imagecodecs, self.module, None), "available", False))

    def library_version(self) -> str:
        """The codec library and its version, e.g. ``libjxl 0.11.2``."""
        import imagecodecs

        func = getattr(imagecodecs, self.version, None)
        try:
            return str(func()) if func is not None else "unknown"
        except Exception:  # noqa: BLE001 - a version string is informative only
            return "unknown"

    def encode(self, image: np.ndarray) -> tuple[bytes, int]:
        """The smallest stream over :attr:`variants`, and the index of the variant that made it.

        Raises:
            CodecError: no variant could encode the image (the last error is quoted).
        """
        import imagecodecs

        encode = getattr(imagecodecs, self.encoder)
        if self.grey_as_rgb and image.ndim == 2:
            image = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
        best: Optional[bytes] = None
        best_index = -1
        last_error: Optional[Exception] = None
        for index, kwargs in enumerate(self.variants):
            try:
                data = bytes(encode(image, **kwargs))
            except Exception as err:  # noqa: BLE001 - codec libraries raise their own types
                last_error = err
                continue
            if best is None or len(data) < len(best):
                best, best_index = data, index
        if best is None:
            raise CodecError(f"{self.title} cannot encode an image of shape {image.shape}: {last_error}")
        return best, best_index

    def decode(self, data: bytes) -> np.ndarray:
        """The decoded pixels of ``data``."""
        import imagecodecs

        return np.asarray(getattr(imagecodecs, self.decoder)(data))

    def expected(self, image: np.ndarray) -> np.ndarray:
        """What a bit-exact decode of ``image`` must return (grey as three channels where needed)."""
        if self.grey_as_rgb and image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        return image

    def record(self) -> dict[str, Any]:
        """JSON-ready description: library, settings in words and the exact encoder arguments."""
        return {
            "title": self.title,
            "library": self.library_version(),
            "encoder": f"imagecodecs.{self.encoder}",
            "settings": self.settings,
            "variants": [dict(v) for v in self.variants],
            "grey_as_rgb": self.grey_as_rgb,
        }


def _png_variants() -> tuple[tuple[dict[str, Any], ...], tuple[str, ...]]:
    # libpng row filters (PNG.FILTER) and zlib strategies (PNG.STRATEGY), as plain ints
    # so that the --out JSON records them; 248 = ALL lets libpng choose per row.
    filters = {"adaptive": 248, "none": 8, "sub": 16, "up": 32, "avg": 64, "paeth": 128}
    strategies = {"default": 0, "filtered": 1, "huffman": 2, "rle": 3, "fixed": 4}
    variants, labels = [], []
    for fname, fvalue in filters.items():
        for sname, svalue in strategies.items():
            variants.append({"level": 9, "filter": fvalue, "strategy": svalue})
            labels.append(f"filter={fname},strategy={sname}")
    return tuple(variants), tuple(labels)


_PNG_VARIANTS, _PNG_LABELS = _png_variants()
_RESOLUTIONS = tuple(range(1, 7))

#: The lossless codecs measured, in table order (seed Table 2's three first).
CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec(
            "png", "PNG", "PNG", "png_encode", "png_decode", _PNG_VARIANTS, _PNG_LABELS,
            "zlib level 9; smallest of 6 row filters (libpng adaptive, none, sub, up, avg, paeth) "
            "x 5 zlib strategies (default, filtered, huffman-only, rle, fixed)",
            version="png_version",
        ),
        Codec(
            "webp", "WebP", "WEBP", "webp_encode", "webp_decode",
            ({"level": 100, "lossless": True, "method": 6},), ("",),
            "lossless, quality 100, method 6 (cwebp -lossless -z 9)",
            grey_as_rgb=True, version="webp_version",
        ),
        Codec(
            "jpegxl", "JPEG-XL", "JPEGXL", "jpegxl_encode", "jpegxl_decode",
            ({"lossless": True, "distance": 0.0, "effort": 10, "numthreads": 1},), ("",),
            "lossless (distance 0), effort 10: the highest libjxl accepts without expert options "
            "(11 gives the same bytes)",
            version="jpegxl_version",
        ),
        Codec(
            "jpegls", "JPEG-LS", "JPEGLS", "jpegls_encode", "jpegls_decode",
            ({"level": 0},), ("",),
            "NEAR = 0 (lossless); CharLS has no effort setting",
            version="jpegls_version",
        ),
        Codec(
            "avif", "AVIF", "AVIF", "avif_encode", "avif_decode",
            ({"level": 100, "speed": 0, "codec": "aom", "numthreads": 1},), ("",),
            "lossless (quality 100: YUV 4:4:4 / 4:0:0 with the identity matrix), speed 0 (slowest), libaom",
            version="avif_version",
        ),
        Codec(
            "jpeg2k", "JPEG 2000", "JPEG2K", "jpeg2k_encode", "jpeg2k_decode",
            tuple({"level": 0, "reversible": True, "codecformat": "J2K", "resolutions": r} for r in _RESOLUTIONS),
            tuple(f"resolutions={r}" for r in _RESOLUTIONS),
            "reversible 5/3 wavelet and colour transform (lossless), raw J2K codestream; "
            "smallest of 1-6 resolution levels",
            version="jpeg2k_version",
        ),
        Codec(
            "htj2k", "HTJ2K", "HTJ2K", "htj2k_encode", "htj2k_decode",
            tuple({"reversible": True, "resolutions": r} for r in _RESOLUTIONS),
            tuple(f"resolutions={r}" for r in _RESOLUTIONS),
            "High-Throughput JPEG 2000, reversible (lossless); smallest of 1-6 resolution levels",
            version="htj2k_version",
        ),
        Codec(
            "jpegxr", "JPEG XR", "JPEGXR", "jpegxr_encode", "jpegxr_decode",
            ({"level": 1.0},), ("",),
            "quality 1.0 (lossless)",
            version="jpegxr_version",
        ),
        Codec(
            "jpeg-lossless", "Lossless JPEG", "JPEG8", "jpeg8_encode", "jpeg8_decode",
            tuple({"lossless": True, "predictor": p} for p in range(1, 8)),
            tuple(f"predictor={p}" for p in range(1, 8)),
            "ITU T.81 lossless process (SOF3), point transform 0; smallest of predictors 1-7",
            version="jpeg8_version",
        ),
        Codec(
            "qoi", "QOI", "QOI", "qoi_encode", "qoi_decode",
            ({},), ("",),
            "no settings (QOI has none)",
            grey_as_rgb=True, version="qoi_version",
        ),
        Codec(
            "lerc", "LERC", "LERC", "lerc_encode", "lerc_decode",
            ({"level": 0.0},), ("",),
            "maxZError 0 (lossless), no extra zstd/deflate stage (a GDAL add-on, not part of LERC)",
            version="lerc_version",
        ),
    )
}

#: Seed paper, Table 2: average bytes per image of each dataset under each codec.
PAPER_TABLE_2: dict[str, dict[str, int]] = {
    "CIFAR10": {"png": 2271, "webp": 1807, "jpegxl": 1576},
    "LSUN-Church": {"png": 103897, "webp": 69246, "jpegxl": 62940},
}

#: Codecs of ``imagecodecs`` that were tried and are not measured, and why.
LEFT_OUT: dict[str, str] = {
    "ljpeg": "liblj92 lossless JPEG encodes grey only (RGB: 'invalid data shape'); "
    "libjpeg-turbo's lossless JPEG is measured instead",
    "spng": "a second PNG encoder; its streams are among the libpng filter/strategy choices tried for png",
    "apng": "animated PNG; one frame is a PNG",
    "jpeg8": "baseline JPEG is lossy (its lossless mode is measured as jpeg-lossless)",
    "ultrahdr": "lossy (JPEG with a gain map)",
    "gif": "at most 256 colours per image: not lossless for RGB",
    "bmp": "uncompressed",
    "tiff": "a container; its lossless compressions are general-purpose byte coders (Deflate, LZW, zstd)",
    "jpegxs, heif, brunsli, jetraw": "not built into this imagecodecs",
    "sz3, sperr, zfp": "error-bounded floating-point coders, not 8-bit image codecs",
    "zlib, zstd, brotli, lzma, bz2, blosc, ...": "general-purpose byte coders, not image codecs",
}


def available_codecs() -> list[str]:
    """Names of the codecs of :data:`CODECS` that this ``imagecodecs`` build has, in table order."""
    return [name for name, codec in CODECS.items() if codec.available()]


def resolve_codecs(names: Optional[Sequence[str]] = None) -> list[str]:
    """Check codec names (``None`` or ``["all"]``: every available one), in table order.

    Raises:
        ValueError: an unknown name, or a codec this build of ``imagecodecs`` lacks.
    """
    available = available_codecs()
    if not names or list(names) == ["all"]:
        return available
    chosen = []
    for name in names:
        key = name.lower()
        if key not in CODECS:
            raise ValueError(f"unknown codec {name!r}; expected one of: {', '.join(CODECS)} (or all)")
        if key not in available:
            raise ValueError(f"codec {name!r} is not built into this imagecodecs; available: {', '.join(available)}")
        if key not in chosen:
            chosen.append(key)
    return [name for name in CODECS if name in chosen]


def check_image(name: str, image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous uint8 array of shape [H, W], [H, W, 3] or [H, W, 4].

    Raises:
        CodecError: another dtype or shape (the message names the image).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise CodecError(f"image {name}: {image.dtype} pixels; only 8-bit (uint8) images are measured")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))) or 0 in image.shape:
        raise CodecError(
            f"image {name}: shape {image.shape}; expected [H, W] (grey), [H, W, 3] (RGB) or [H, W, 4] (RGBA)"
        )
    return np.ascontiguousarray(image)


def roundtrip(codec: Codec, name: str, image: np.ndarray) -> tuple[int, int]:
    """Encode ``image``, decode it, check it is bit-exact; (bytes of the stream, variant index).

    Raises:
        CodecError: the codec cannot encode or decode it, or the decoded pixels differ.
    """
    try:
        data, variant = codec.encode(image)
    except CodecError as err:
        raise CodecError(f"image {name}: {err}") from None
    try:
        decoded = codec.decode(data)
    except Exception as err:  # noqa: BLE001 - codec libraries raise their own types
        raise CodecError(f"image {name}: {codec.title} cannot decode its own {len(data)}-byte stream: {err}") from None
    expected = codec.expected(image)
    if decoded.dtype != expected.dtype or decoded.shape != expected.shape:
        raise CodecError(
            f"image {name}: {codec.title} round trip is not bit-exact: decoded {decoded.dtype} {decoded.shape}, "
            f"expected {expected.dtype} {expected.shape}"
        )
    if not np.array_equal(decoded, expected):
        wrong = int(np.count_nonzero(decoded != expected))
        raise CodecError(
            f"image {name}: {codec.title} round trip is not bit-exact: {wrong} of {expected.size} values differ"
        )
    return len(data), variant


@dataclass
class CodecTotals:
    """Sums over the images one codec has encoded (integers: exact and order-independent)."""

    codec: str
    images: int = 0
    bytes: int = 0
    pixels: int = 0
    values: int = 0
    min_bytes: Optional[int] = None
    max_bytes: Optional[int] = None
    variant_wins: dict[int, int] = field(default_factory=dict)

    def add(self, size: int, image: np.ndarray, variant: int) -> None:
        self.images += 1
        self.bytes += size
        self.pixels += image.shape[0] * image.shape[1]
        self.values += image.size
        self.min_bytes = size if self.min_bytes is None else min(self.min_bytes, size)
        self.max_bytes = size if self.max_bytes is None else max(self.max_bytes, size)
        self.variant_wins[variant] = self.variant_wins.get(variant, 0) + 1

    def merge(self, other: "CodecTotals") -> None:
        self.images += other.images
        self.bytes += other.bytes
        self.pixels += other.pixels
        self.values += other.values
        for bound, pick in (("min_bytes", min), ("max_bytes", max)):
            mine, theirs = getattr(self, bound), getattr(other, bound)
            setattr(self, bound, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        for variant, count in other.variant_wins.items():
            self.variant_wins[variant] = self.variant_wins.get(variant, 0) + count

    @property
    def bytes_per_image(self) -> float:
        """Mean encoded bytes per image (seed Table 2's unit)."""
        return self.bytes / self.images

    @property
    def bits_per_image(self) -> float:
        """Mean encoded bits per image: the estimate of E[L(X)] in Theorem 4.2."""
        return 8.0 * self.bytes / self.images

    @property
    def bits_per_pixel(self) -> float:
        """Encoded bits per pixel (a pixel: all channels at one position)."""
        return 8.0 * self.bytes / self.pixels

    def summary(self) -> dict[str, Any]:
        """JSON-ready sums and means; ``variant_wins`` keyed by the variant's label."""
        labels = CODECS[self.codec].variant_labels
        wins = {labels[i] or "only": n for i, n in sorted(self.variant_wins.items())}
        return {
            "images": self.images,
            "total_bytes": self.bytes,
            "bytes_per_image": self.bytes_per_image,
            "bits_per_image": self.bits_per_image,
            "bits_per_pixel": self.bits_per_pixel,
            "min_bytes": self.min_bytes,
            "max_bytes": self.max_bytes,
            "variant_wins": wins,
        }


@dataclass
class RateResult:
    """What :func:`measure_rate` found: per-codec totals and the raw size of the images."""

    totals: dict[str, CodecTotals]
    images: int
    pixels: int
    raw_bytes: int
    shapes: dict[str, int]

    @property
    def best(self) -> str:
        """The codec with the fewest bytes (the first in table order among equals)."""
        return min(self.totals, key=lambda name: self.totals[name].bytes)


def measure_chunk(codec_names: Sequence[str], chunk: Sequence[tuple[str, np.ndarray]]) -> dict[str, CodecTotals]:
    """Round-trip every image of ``chunk`` through every codec (one unit of work of the pool)."""
    totals = {name: CodecTotals(name) for name in codec_names}
    for name, image in chunk:
        for codec_name in codec_names:
            size, variant = roundtrip(CODECS[codec_name], name, image)
            totals[codec_name].add(size, image, variant)
    return totals


def _chunks(
    images: Iterable[tuple[str, np.ndarray]], max_images: int, max_values: int
) -> Iterator[list[tuple[str, np.ndarray]]]:
    chunk: list[tuple[str, np.ndarray]] = []
    values = 0
    for name, image in images:
        image = check_image(name, image)
        chunk.append((name, image))
        values += image.size
        if len(chunk) >= max_images or values >= max_values:
            yield chunk
            chunk, values = [], 0
    if chunk:
        yield chunk


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork: the workers need only numpy and imagecodecs, and forking spares each of them
    # re-importing the analysis package (which imports torch).  Spawn where there is no fork.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def measure_rate(
    images: Iterable[tuple[str, np.ndarray]],
    codecs: Sequence[str],
    workers: int = 1,
    chunk_images: int = 64,
    chunk_values: int = 3 * 2**16,
    on_progress: Optional[Callable[[int], None]] = None,
) -> RateResult:
    """Average lossless size of ``images`` under each codec, every image checked bit-exact.

    Args:
        images: ``(name, uint8 image)`` pairs, e.g. from :func:`analysis.data.iter_uint8_images`.
        codecs: names from :data:`CODECS` (see :func:`resolve_codecs`).
        workers: 1 runs in this process; more use a process pool.
        chunk_images, chunk_values: a chunk of work ends at this many images or this many
            8-bit values (so one 256x256 RGB image is a chunk of its own).
        on_progress: called with the number of images of each finished chunk.

    Raises:
        CodecError: an image of the wrong type, a codec that fails, a round trip that is
            not bit-exact (the message names the image and the codec), or no images.
        ValueError: an unknown codec or ``workers < 1``.
    """
    codecs = list(codecs)
    for name in codecs:
        if name not in CODECS:
            raise ValueError(f"unknown codec {name!r}; expected one of: {', '.join(CODECS)}")
    if not codecs:
        raise ValueError("no codecs to measure")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    totals = {name: CodecTotals(name) for name in codecs}
    shapes: dict[str, int] = {}
    raw = {"images": 0, "pixels": 0, "values": 0}

    def account(chunk: Sequence[tuple[str, np.ndarray]]) -> None:
        for _, image in chunk:
            key = "x".join(str(s) for s in image.shape)
            shapes[key] = shapes.get(key, 0) + 1
            raw["images"] += 1
            raw["pixels"] += image.shape[0] * image.shape[1]
            raw["values"] += image.size

    def collect(part: dict[str, CodecTotals], count: int) -> None:
        for name, sums in part.items():
            totals[name].merge(sums)
        if on_progress is not None:
            on_progress(count)

    chunks = _chunks(images, chunk_images, chunk_values)
    if workers == 1:
        for chunk in chunks:
            account(chunk)
            collect(measure_chunk(codecs, chunk), len(chunk))
    else:
        pending: dict[Future, int] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            try:
                for chunk in chunks:
                    account(chunk)
                    pending[pool.submit(measure_chunk, codecs, chunk)] = len(chunk)
                    while len(pending) >= 2 * workers:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            collect(future.result(), pending.pop(future))
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        collect(future.result(), pending.pop(future))
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    if raw["images"] == 0:
        raise CodecError("no images to measure")
    return RateResult(totals=totals, images=raw["images"], pixels=raw["pixels"], raw_bytes=raw["values"], shapes=shapes)


def default_workers() -> int:
    """min(4, CPU count): the default of ``codec-rate --workers``."""
    return max(1, min(4, os.cpu_count() or 1))
