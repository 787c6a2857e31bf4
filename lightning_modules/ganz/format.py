"""The ``.ganz`` file: one image compressed by GANZ (a header, the latent, a CRC32).

Layout of format version 2, little-endian (``struct`` format ``<4sBBBBHHHIQff32sBB``, 68
bytes, then the payload and 4 bytes of CRC):

    offset  size  field
    0       4     magic            b"GANZ"
    4       1     format version   2
    5       1     mode             0 keep_linear, 1 no_linear, 2 square_linear, 3 random_linear
    6       1     latent dtype     0 float32, 1 float16, 2 uint8 (uniform, per-file scale/offset)
    7       1     reserved         0
    8       2     channels C       uint16
    10      2     height H         uint16
    12      2     width W          uint16
    14      4     d_c              uint32, number of latent values
    18      8     seed             uint64, seed of the random linear layer (modes 2 and 3)
    26      4     scale            float32, uint8 latents: z = offset + scale * q (else 1)
    30      4     offset           float32 (else 0)
    34      32    generator hash   sha256 of the generator's weights and architecture
                                   (:func:`lightning_modules.ganz.codec.generator_sha256`)
    66      1     random stream    1 philox4x64-10 (:data:`lightning_modules.ganz.latent.RNGS`)
    67      1     weights          0 G (the trained generator), 1 G_ema (its EMA)
    68      d_c * itemsize         the latent z*, little-endian float32 / float16 / uint8
    end-4   4     CRC32            zlib.crc32 of every byte before it

Format version 1 (read only) is the same without bytes 66-67 (a 66-byte header): its random
layer is ``torch.randn``'s (stream code 0, implied), and it does not say whether G or G_ema
wrote it (the decoder takes the checkpoint's network whose hash matches).  The random
stream decides the pixels of modes 2 and 3: version 2's is the project's own, so a
version-2 file decodes to the same pixels under any torch; a version-1 file in those modes
only under the torch that wrote it (see :mod:`lightning_modules.ganz.latent`).

The generator hash is that of the *weights* the codec decodes with, not of the checkpoint
file, so re-saving a checkpoint (other optimiser state, another Lightning version) keeps
its files readable while any change to the generator is caught.  Reading checks, in
order: the length (truncated), the magic, the version, the dtype code, the exact length
the header implies, the CRC (corruption), then the mode, stream and weights codes; each
failure is a :class:`GanzFormatError` naming the file and what is wrong.  Files are
written atomically (:func:`write_atomic`, i.e. :func:`core.io.atomic_write_bytes`: a
temporary file in the same folder, then ``os.replace``), so a failed write leaves no
output file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from core.io import atomic_write_bytes as write_atomic
from lightning_modules.ganz.latent import MODES, PHILOX, RNGS, TORCH_RANDN

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "GanzFormatError",
    "GanzHeader",
    "HEADER_SIZE",
    "MAGIC",
    "VERSIONS",
    "WEIGHTS",
    "header_size",
    "dequantize",
    "pack",
    "quantize",
    "read_ganz",
    "unpack",
    "write_atomic",
]

MAGIC = b"GANZ"
FORMAT_VERSION = 2
#: the header's struct per format version (version 1 is read, never written by the codec).
_HEADERS = {1: struct.Struct("<4sBBBBHHHIQff32s"), 2: struct.Struct("<4sBBBBHHHIQff32sBB")}
VERSIONS = tuple(_HEADERS)
HEADER_SIZE = _HEADERS[FORMAT_VERSION].size
#: which network of a GANZ checkpoint wrote a file -> code in the header (version 2).
WEIGHTS = {"G": 0, "G_ema": 1}
_WEIGHT_NAMES = {code: name for name, code in WEIGHTS.items()}
_RNG_NAMES = {code: name for name, code in RNGS.items()}
CRC_SIZE = 4
#: latent dtype name -> (code, numpy dtype of the payload).
DTYPES: dict[str, tuple[int, str]] = {"float32": (0, "<f4"), "float16": (1, "<f2"), "uint8": (2, "u1")}
_DTYPE_NAMES = {code: name for name, (code, _) in DTYPES.items()}
_MODE_NAMES = {code: name for name, code in MODES.items()}


def header_size(version: int) -> int:
    """The header's size in bytes in format ``version``."""
    return _HEADERS[version].size


class GanzFormatError(ValueError):
    """A ``.ganz`` file that cannot be read: truncated, corrupted, wrong magic, unsupported version."""


@dataclass(frozen=True)
class GanzHeader:
    """What a ``.ganz`` header records (see the module docstring).

    ``rng`` is the random layer's stream (:data:`~lightning_modules.ganz.latent.PHILOX` in
    version 2, :data:`~lightning_modules.ganz.latent.TORCH_RANDN` in version 1); ``weights`` is
    ``"G"`` or ``"G_ema"`` (``None`` in version 1, which does not record it).
    """

    mode: str
    dtype: str
    image_shape: tuple[int, int, int]
    d_c: int
    seed: int
    generator_hash: bytes
    scale: float = 1.0
    offset: float = 0.0
    version: int = FORMAT_VERSION
    rng: str = PHILOX
    weights: Optional[str] = "G_ema"

    def __post_init__(self) -> None:
        if self.version not in _HEADERS:
            raise ValueError(f"unknown format version {self.version}; expected one of {VERSIONS}")
        if self.version == 1 and (self.rng != TORCH_RANDN or self.weights is not None):
            raise ValueError(f"format version 1 has stream {TORCH_RANDN!r} and no weights field")
        if self.version >= 2 and (self.rng not in RNGS or self.rng == TORCH_RANDN):
            raise ValueError(f"format version {self.version} writes stream {PHILOX!r}, got {self.rng!r}")
        if self.version >= 2 and self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown latent dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if len(self.generator_hash) != 32:
            raise ValueError("generator_hash must be a 32-byte sha256 digest")
        if not all(0 < s < 2**16 for s in self.image_shape) or not 0 < self.d_c < 2**32:
            raise ValueError(f"image shape {self.image_shape} or d_c {self.d_c} out of the format's range")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must fit in 64 bits, got {self.seed}")

    @property
    def payload_size(self) -> int:
        return self.d_c * np.dtype(DTYPES[self.dtype][1]).itemsize

    @property
    def header_size(self) -> int:
        return header_size(self.version)

    @property
    def file_size(self) -> int:
        return self.header_size + self.payload_size + CRC_SIZE

    def to_bytes(self) -> bytes:
        c, h, w = self.image_shape
        extra = () if self.version == 1 else (RNGS[self.rng], WEIGHTS[self.weights])
        return _HEADERS[self.version].pack(
            MAGIC,
            self.version,
            MODES[self.mode],
            DTYPES[self.dtype][0],
            0,
            c,
            h,
            w,
            self.d_c,
            self.seed,
            self.scale,
            self.offset,
            self.generator_hash,
            *extra,
        )


# ---------------------------------------------------------------------------------------------- latent payload
def quantize(z: torch.Tensor, dtype: str) -> tuple[bytes, float, float]:
    """The payload bytes of a latent [d_c] in ``dtype``, and (scale, offset) for ``uint8``.

    ``uint8`` is uniform quantisation over the latent's own range: offset = min z,
    scale = (max z - min z) / 255 (both stored as float32), q = round((z - offset) / scale).
    """
    z = z.detach().float().cpu().flatten()
    if dtype == "uint8":
        lo, hi = float(z.min()), float(z.max())
        scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
        offset = np.float32(lo)
        q = torch.round((z - float(offset)) / float(scale)).clamp_(0, 255).to(torch.uint8)
        return q.numpy().tobytes(), float(scale), float(offset)
    if dtype not in DTYPES:
        raise ValueError(f"unknown latent dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return z.numpy().astype(DTYPES[dtype][1]).tobytes(), 1.0, 0.0


def dequantize(payload: bytes, header: GanzHeader) -> torch.Tensor:
    """The latent [d_c] as float32 from its payload bytes (the decoder's exact arithmetic)."""
    values = np.frombuffer(payload, dtype=DTYPES[header.dtype][1], count=header.d_c)
    if header.dtype == "uint8":
        q = torch.from_numpy(values.astype(np.float32))
        return q.mul_(np.float32(header.scale)).add_(np.float32(header.offset))
    return torch.from_numpy(values.astype(np.float32))


# ---------------------------------------------------------------------------------------------- files
def pack(header: GanzHeader, payload: bytes) -> bytes:
    """Header + payload + CRC32: the bytes of a ``.ganz`` file."""
    if len(payload) != header.payload_size:
        raise ValueError(f"payload has {len(payload)} bytes, the header implies {header.payload_size}")
    body = header.to_bytes() + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def unpack(data: bytes, source: str = "<bytes>") -> tuple[GanzHeader, bytes]:
    """Parse and check the bytes of a ``.ganz`` file; ``source`` names it in errors."""
    smallest = min(s.size for s in _HEADERS.values()) + CRC_SIZE
    if len(data) < smallest:
        raise GanzFormatError(
            f"{source}: truncated .ganz file ({len(data)} bytes; a header and CRC alone take at least {smallest})"
        )
    magic, version = data[:4], data[4]
    if magic != MAGIC:
        raise GanzFormatError(f"{source}: not a .ganz file (magic {magic!r}, expected {MAGIC!r})")
    if version not in _HEADERS:
        raise GanzFormatError(
            f"{source}: unsupported .ganz format version {version} (this reader knows versions "
            f"{', '.join(map(str, VERSIONS))})"
        )
    layout = _HEADERS[version]
    if len(data) < layout.size + CRC_SIZE:
        raise GanzFormatError(
            f"{source}: truncated .ganz file ({len(data)} bytes; a version-{version} header and CRC take "
            f"{layout.size + CRC_SIZE})"
        )
    fields = layout.unpack_from(data)
    _, _, mode, dtype, _, c, h, w, d_c, seed, scale, offset, digest = fields[:13]
    rng_code, weights_code = fields[13:] if version >= 2 else (RNGS[TORCH_RANDN], None)
    if dtype not in _DTYPE_NAMES:
        raise GanzFormatError(f"{source}: corrupted .ganz header (unknown latent dtype code {dtype})")
    itemsize = np.dtype(DTYPES[_DTYPE_NAMES[dtype]][1]).itemsize
    expected = layout.size + d_c * itemsize + CRC_SIZE
    if len(data) < expected:
        raise GanzFormatError(f"{source}: truncated .ganz file ({len(data)} bytes, the header implies {expected})")
    if len(data) > expected:
        raise GanzFormatError(
            f"{source}: corrupted .ganz file ({len(data)} bytes, the header implies {expected}: trailing bytes)"
        )
    (crc,) = struct.unpack_from("<I", data, expected - CRC_SIZE)
    if crc != zlib.crc32(data[: expected - CRC_SIZE]) & 0xFFFFFFFF:
        raise GanzFormatError(f"{source}: corrupted .ganz file (CRC32 mismatch)")
    if mode not in _MODE_NAMES:
        raise GanzFormatError(f"{source}: unsupported GANZ mode code {mode}")
    if rng_code not in _RNG_NAMES:
        raise GanzFormatError(f"{source}: unsupported random-layer stream code {rng_code}")
    if weights_code is not None and weights_code not in _WEIGHT_NAMES:
        raise GanzFormatError(f"{source}: corrupted .ganz header (unknown weights code {weights_code})")
    try:
        header = GanzHeader(
            mode=_MODE_NAMES[mode],
            dtype=_DTYPE_NAMES[dtype],
            image_shape=(c, h, w),
            d_c=d_c,
            seed=seed,
            generator_hash=digest,
            scale=scale,
            offset=offset,
            version=version,
            rng=_RNG_NAMES[rng_code],
            weights=None if weights_code is None else _WEIGHT_NAMES[weights_code],
        )
    except ValueError as err:
        raise GanzFormatError(f"{source}: invalid .ganz header ({err})") from None
    return header, data[layout.size : expected - CRC_SIZE]


def read_ganz(path: str) -> tuple[GanzHeader, bytes]:
    """Read and check a ``.ganz`` file: its header and latent payload."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise GanzFormatError(f"{path}: cannot read ({err.strerror or err})") from None
    return unpack(data, path)
