"""The GANZ codec: images <-> ``.ganz`` files with a trained generator (GANZ Sec. 3.2).

Compression solves GANZ Eq. 1, z* = argmin_z ||G(z) - x||^2, for a batch of images with the
generator and the mode's linear layer frozen (:mod:`lightning_modules.ganz.inversion`),
stores z* (float32, float16, or uint8 with a per-file scale and offset) in a ``.ganz``
file (:mod:`lightning_modules.ganz.format`), and decompression is G(z*).  Both sides run
the same code on the same bytes: the compressor decodes its own payload with
:meth:`GanzCodec.reconstruct`, one image at a time, exactly as the decompressor does, so
what it reports is bit for bit what ``decompress`` returns.  Decoded images are clamped
to [-1, 1] (BEGAN's generator has no output non-linearity).

The generator is identified by :func:`generator_sha256`, a hash of its architecture and
weights, stored in every file with which of the checkpoint's networks it is (``G`` or
``G_ema``); :meth:`GanzCodec.for_file` loads that one, and decoding with another generator
is a :class:`GeneratorMismatchError`.  The random layer of modes ``square_linear`` and
``random_linear`` comes from the project's Philox stream (:mod:`core.counter_rng`), so the
decoded pixels depend on the file and the checkpoint only; a format-version-1 file in those
modes decodes with ``torch.randn``'s layer, as it was written, with a
:class:`LegacyStreamWarning`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from lightning_modules.ganz.format import FORMAT_VERSION, WEIGHTS, GanzHeader, dequantize, pack, quantize, unpack
from lightning_modules.ganz.inversion import InversionConfig, invert
from lightning_modules.ganz.latent import PHILOX, TORCH_RANDN, LatentGenerator, LatentMode
from lightning_modules.ganz.module import GANZ

__all__ = [
    "Compressed",
    "GanzCodec",
    "GeneratorMismatchError",
    "LEGACY_TORCH",
    "LegacyStreamWarning",
    "checkpoint_generators",
    "from_uint8",
    "generator_sha256",
    "to_uint8",
]

#: the torch that wrote format-version-1 files: the project pinned torch==2.14.1 for all of
#: version 1's life, so its torch.randn layer is what a version-1 file was compressed with.
LEGACY_TORCH = "torch 2.14.1, the project's pin while version 1 was written"


class GeneratorMismatchError(ValueError):
    """A ``.ganz`` file written with another generator than the one given to decode it."""


class LegacyStreamWarning(UserWarning):
    """A format-version-1 file whose random layer is ``torch.randn``'s: its pixels depend on the torch version."""


def checkpoint_generators(path: str) -> dict[str, nn.Module]:
    """The two generators of a :class:`~lightning_modules.ganz.module.GANZ` checkpoint: ``G`` and ``G_ema``."""
    model = GANZ.load_from_checkpoint(path, map_location="cpu")
    return {"G": model.generator, "G_ema": model.generator_ema.module}


def generator_sha256(generator: nn.Module) -> bytes:
    """sha256 of a BEGAN generator: its architecture (d_t, R, C, n) and every tensor of its state_dict.

    Tensors are hashed by name, then as contiguous little-endian float32 bytes on the CPU, in
    sorted key order, so the digest does not depend on the device or on how the checkpoint
    file was written.
    """
    digest = hashlib.sha256(b"GANZ/BEGANGenerator/v1")
    arch = {k: int(getattr(generator, k)) for k in ("latent_dim", "resolution", "channels", "n")}
    digest.update(json.dumps(arch, sort_keys=True).encode())
    state = generator.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(key.encode() + b"\0" + json.dumps(list(tensor.shape)).encode())
        digest.update(tensor.numpy().astype("<f4", copy=False).tobytes())
    return digest.digest()


@dataclass
class Compressed:
    """One compressed image: the ``.ganz`` bytes, the decoded image and the fit error of GANZ Eq. 1."""

    data: bytes
    header: GanzHeader
    reconstruction: torch.Tensor  # [C, H, W] in [-1, 1], what decompress returns
    mse: float  # ||G(z*) - x||^2 / N of the unquantised optimum

    @property
    def num_bytes(self) -> int:
        return len(self.data)

    def bits_per_pixel(self) -> float:
        _, h, w = self.header.image_shape
        return 8.0 * len(self.data) / (h * w)


class GanzCodec:
    """Compress and decompress images with one trained generator.

    Args:
        generator: a trained :class:`~lightning_modules.nets.began.BEGANGenerator` (a frozen
            copy is kept; the argument is left as it is).
        device: where the optimisation and decoding run.
        weights: which network of its checkpoint ``generator`` is, ``"G"`` (the trained
            generator) or ``"G_ema"`` (its EMA); written into every file.
    """

    def __init__(
        self, generator: nn.Module, device: Union[str, torch.device] = "cpu", weights: str = "G_ema"
    ) -> None:
        import copy

        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
        self.weights = weights
        self.device = torch.device(device)
        self.generator = copy.deepcopy(generator).float().to(self.device).eval().requires_grad_(False)
        self.image_shape = (self.generator.channels, self.generator.resolution, self.generator.resolution)
        self.generator_hash = generator_sha256(self.generator)
        self._latent_generators: dict[tuple[str, int, int, str], LatentGenerator] = {}

    @classmethod
    def from_checkpoint(cls, path: str, ema: bool = True, device: Union[str, torch.device] = "cpu") -> "GanzCodec":
        """The codec of a :class:`~lightning_modules.ganz.module.GANZ` checkpoint (its EMA generator by default)."""
        weights = "G_ema" if ema else "G"
        return cls(checkpoint_generators(path)[weights], device, weights)

    @classmethod
    def for_file(
        cls,
        header: GanzHeader,
        generators: Union[str, dict[str, nn.Module]],
        device: Union[str, torch.device] = "cpu",
    ) -> "GanzCodec":
        """The codec that decodes a file with ``header``: the network of the checkpoint that the header names.

        ``generators`` is a checkpoint path or :func:`checkpoint_generators`' dict.  A version-1
        header does not name one: the network whose hash matches the file's is taken (G_ema
        when neither does, and :meth:`check_header` then refuses the file).
        """
        if isinstance(generators, str):
            generators = checkpoint_generators(generators)
        weights = header.weights
        if weights is None:
            matching = [name for name in ("G_ema", "G") if generator_sha256(generators[name]) == header.generator_hash]
            weights = matching[0] if matching else "G_ema"
        return cls(generators[weights], device, weights)

    # ------------------------------------------------------------------ the decoder
    def latent_generator(
        self, mode: LatentMode, seed: int = 0, d_c: Optional[int] = None, rng: str = PHILOX
    ) -> LatentGenerator:
        """The frozen z -> image network of ``mode`` (cached); ``rng`` is the random layer's stream."""
        if d_c is None:
            d_c = mode.latent_dim(self.image_shape, self.generator.latent_dim, self.generator.feature_dim)
        key = (mode.name, int(d_c), int(seed), rng)
        if key not in self._latent_generators:
            net = LatentGenerator(self.generator, mode, self.image_shape, seed=seed, d_c=d_c, rng=rng)
            self._latent_generators[key] = net.to(self.device)
        return self._latent_generators[key]

    def _mode_of(self, header: GanzHeader) -> LatentMode:
        if header.mode == "random_linear":
            c, h, w = header.image_shape
            return LatentMode("random_linear", c * h * w / header.d_c)
        return LatentMode(header.mode)

    @torch.no_grad()
    def reconstruct(self, header: GanzHeader, z: torch.Tensor) -> torch.Tensor:
        """G(z) for one latent [d_c] of a file with ``header``: the image [C, H, W], clamped to [-1, 1].

        A header whose random layer is ``torch.randn``'s (format version 1, modes ``square_linear``
        and ``random_linear``) decodes with that layer and a :class:`LegacyStreamWarning`.
        """
        if header.rng == TORCH_RANDN and header.mode in ("square_linear", "random_linear"):
            warnings.warn(
                f"a .ganz file of format version {header.version} in mode {header.mode}: its random layer is "
                f"torch.randn's, so its pixels are those of the torch version that wrote it ({LEGACY_TORCH}); "
                f"this is torch {torch.__version__}.  Re-compress it to get a version-{FORMAT_VERSION} file, "
                "which decodes the same under any torch",
                LegacyStreamWarning,
                stacklevel=2,
            )
        net = self.latent_generator(self._mode_of(header), header.seed, header.d_c, header.rng)
        return net(z.reshape(1, -1).to(self.device, torch.float32))[0].clamp(-1.0, 1.0).cpu()

    def check_header(self, header: GanzHeader, source: str) -> None:
        if header.generator_hash != self.generator_hash:
            written = f"{header.weights}, " if header.weights else ""
            raise GeneratorMismatchError(
                f"{source}: written with another generator ({written}sha256 {header.generator_hash.hex()[:16]}...) "
                f"than the checkpoint's {self.weights} (sha256 {self.generator_hash.hex()[:16]}...): decompress "
                "with the checkpoint that compressed it"
            )
        if tuple(header.image_shape) != self.image_shape:
            raise GeneratorMismatchError(
                f"{source}: holds a {header.image_shape} image, the generator makes {self.image_shape}"
            )

    def decompress(self, data: bytes, source: str = "<bytes>") -> torch.Tensor:
        """The image [C, H, W] in [-1, 1] of a ``.ganz`` file's bytes (checked: format, CRC, generator).

        Decodes with this codec's generator; :meth:`for_file` picks the network a file names.
        """
        header, payload = unpack(data, source)
        self.check_header(header, source)
        return self.reconstruct(header, dequantize(payload, header))

    # ------------------------------------------------------------------ the encoder
    def fit(
        self,
        images: torch.Tensor,
        mode: Union[LatentMode, str] = "keep_linear",
        seed: int = 0,
        config: InversionConfig = InversionConfig(),
        progress: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GANZ Eq. 1 for a batch of images [N, C, H, W] in [-1, 1]: the latents z* [N, d_c] and their MSE [N]."""
        mode = LatentMode.parse(mode) if isinstance(mode, str) else mode
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images [N, {', '.join(map(str, self.image_shape))}], got {list(images.shape)}")
        net = self.latent_generator(mode, seed)
        target = images.to(self.device, torch.float32)
        return invert(net, target, net.d_c, config, progress=progress, description=f"GANZ {mode}")

    def encode(
        self, z: torch.Tensor, mode: Union[LatentMode, str], dtype: str = "float32", seed: int = 0
    ) -> tuple[bytes, GanzHeader, torch.Tensor]:
        """One latent [d_c] as ``.ganz`` bytes, its header, and the image the decoder will make of it."""
        mode = LatentMode.parse(mode) if isinstance(mode, str) else mode
        payload, scale, offset = quantize(z, dtype)
        header = GanzHeader(
            mode=mode.name,
            dtype=dtype,
            image_shape=self.image_shape,
            d_c=int(z.numel()),
            seed=seed,
            generator_hash=self.generator_hash,
            scale=scale,
            offset=offset,
            rng=PHILOX,
            weights=self.weights,
        )
        return pack(header, payload), header, self.reconstruct(header, dequantize(payload, header))

    def compress(
        self,
        images: torch.Tensor,
        mode: Union[LatentMode, str] = "keep_linear",
        dtype: str = "float32",
        seed: int = 0,
        config: InversionConfig = InversionConfig(),
        progress: bool = True,
    ) -> list[Compressed]:
        """Compress a batch of images [N, C, H, W] in [-1, 1] (GANZ Eq. 1, batched); one :class:`Compressed` each."""
        z, mse = self.fit(images, mode, seed, config, progress)
        out = []
        for i in range(z.shape[0]):
            data, header, image = self.encode(z[i], mode, dtype, seed)
            out.append(Compressed(data, header, image, float(mse[i])))
        return out


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A [C, H, W] image in [-1, 1] as 8-bit pixels [H, W] (grey) or [H, W, C]: round((x + 1) * 127.5)."""
    pixels = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array)


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """8-bit pixels [H, W] or [H, W, C] as a [C, H, W] float32 image in [-1, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1).float().div(127.5).sub(1.0)
