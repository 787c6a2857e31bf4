"""The ``.ganz`` file: one image compressed by GANZ (a header, the latent, a CRC32).

Layout, little-endian (``struct`` format ``<4sBBBBHHHIQff32s``, 66 bytes, then the payload
and 4 bytes of CRC):

    offset  size  field
    0       4     magic            b"GANZ"
    4       1     format version   1
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
    66      d_c * itemsize         the latent z*, little-endian float32 / float16 / uint8
    end-4   4     CRC32            zlib.crc32 of every byte before it

The generator hash is that of the *weights* the codec decodes with, not of the checkpoint
file, so re-saving a checkpoint (other optimiser state, another Lightning version) keeps
its files readable while any change to the generator is caught.  Reading checks, in
order: the length (truncated), the magic, the version, the dtype code, the exact length
the header implies, then the CRC (corruption); each failure is a :class:`GanzFormatError`
naming the file and what is wrong.  Files are written atomically (:func:`write_atomic`, i.e.
:func:`core.io.atomic_write_bytes`: a temporary file in the same folder, then ``os.replace``), so a
failed write leaves no output file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from core.io import atomic_write_bytes as write_atomic
from lightning_modules.ganz.latent import MODES

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "GanzFormatError",
    "GanzHeader",
    "HEADER_SIZE",
    "MAGIC",
    "dequantize",
    "pack",
    "quantize",
    "read_ganz",
    "unpack",
    "write_atomic",
]

MAGIC = b"GANZ"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sBBBBHHHIQff32s")
HEADER_SIZE = _HEADER.size
CRC_SIZE = 4
#: latent dtype name -> (code, numpy dtype of the payload).
DTYPES: dict[str, tuple[int, str]] = {"float32": (0, "<f4"), "float16": (1, "<f2"), "uint8": (2, "u1")}
_DTYPE_NAMES = {code: name for name, (code, _) in DTYPES.items()}
_MODE_NAMES = {code: name for name, code in MODES.items()}


class GanzFormatError(ValueError):
    """A ``.ganz`` file that cannot be read: truncated, corrupted, wrong magic, unsupported version."""


@dataclass(frozen=True)
class GanzHeader:
    """What a ``.ganz`` header records (see the module docstring)."""

    mode: str
    dtype: str
    image_shape: tuple[int, int, int]
    d_c: int
    seed: int
    generator_hash: bytes
    scale: float = 1.0
    offset: float = 0.0
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
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
    def file_size(self) -> int:
        return HEADER_SIZE + self.payload_size + CRC_SIZE

    def to_bytes(self) -> bytes:
        c, h, w = self.image_shape
        return _HEADER.pack(
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
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise GanzFormatError(
            f"{source}: truncated .ganz file ({len(data)} bytes; a header and CRC alone take {HEADER_SIZE + CRC_SIZE})"
        )
    magic, version, mode, dtype, _, c, h, w, d_c, seed, scale, offset, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise GanzFormatError(f"{source}: not a .ganz file (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise GanzFormatError(
            f"{source}: unsupported .ganz format version {version} (this reader knows version {FORMAT_VERSION})"
        )
    if dtype not in _DTYPE_NAMES:
        raise GanzFormatError(f"{source}: corrupted .ganz header (unknown latent dtype code {dtype})")
    itemsize = np.dtype(DTYPES[_DTYPE_NAMES[dtype]][1]).itemsize
    expected = HEADER_SIZE + d_c * itemsize + CRC_SIZE
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
        )
    except ValueError as err:
        raise GanzFormatError(f"{source}: invalid .ganz header ({err})") from None
    return header, data[HEADER_SIZE : expected - CRC_SIZE]


def read_ganz(path: str) -> tuple[GanzHeader, bytes]:
    """Read and check a ``.ganz`` file: its header and latent payload."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise GanzFormatError(f"{path}: cannot read ({err.strerror or err})") from None
    return unpack(data, path)
