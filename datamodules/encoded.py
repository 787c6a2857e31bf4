"""Datasets stored as encoded image files: a folder, a zip, or an LMDB database.

An :class:`ImageSource` gives the bytes of image ``i`` and its name; a
:class:`EncodedImageDataset` decodes them (Pillow) into ``(uint8 image [C, H, W], label)``;
:class:`EncodedImageDataModule` adds the corrupt-file policy to :class:`ImageDataModule`:

* ``verify: header`` (default) opens every file at ``setup`` and checks its structure
  (Pillow's ``verify``: PNG chunk CRCs, so a truncated or bit-flipped PNG is caught;
  for JPEG only the header), ``verify: full`` decodes every image, ``verify: none``
  skips the check (instant start on huge datasets);
* bad files make ``setup`` fail with their list, or, with ``skip_corrupt: true``, are
  left out of the splits with a warning;
* a file that still fails to decode inside a loader worker (``verify: none``/``header``)
  is replaced by the next readable image with a warning when ``skip_corrupt: true``, and
  otherwise raises an error that names the file.

Handles (zip files, LMDB environments) are opened lazily in each process, so datasets
pickle into loader workers and DDP processes without sharing a file descriptor.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Optional, Sequence

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from datamodules.base import ImageDataModule

__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptImageError",
    "EncodedImageDataModule",
    "EncodedImageDataset",
    "FolderSource",
    "ImageSource",
    "LMDBSource",
    "ZipSource",
    "decode_image",
    "find_corrupt",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VerifyMode = Literal["header", "full", "none"]


class CorruptImageError(RuntimeError):
    """An image file that cannot be decoded."""


def decode_image(data: bytes, channels: int = 3) -> torch.Tensor:
    """Encoded image bytes -> uint8 tensor [channels, H, W] (``channels`` 1 or 3), with Pillow.

    Palette, grey+alpha and RGBA images are converted (alpha dropped); 16-bit grey images
    keep their high byte.  Raises :class:`CorruptImageError` when the bytes are not a
    readable image.  (Pillow rather than ``torchvision.io``, whose decoders torchvision
    0.29 deprecates.)
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                if channels == 3:
                    array = np.repeat(array[..., None], 3, axis=-1)
            else:
                array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except UnidentifiedImageError:
        raise CorruptImageError("not an image in a format Pillow knows") from None
    except Exception as err:  # Pillow raises many types for bad data (OSError, SyntaxError, ValueError...)
        raise CorruptImageError(f"{type(err).__name__}: {err}") from None
    tensor = torch.from_numpy(np.array(array, copy=True))  # Pillow's arrays are read-only
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _verify_header(data: bytes) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except UnidentifiedImageError:
        raise CorruptImageError("not an image in a format Pillow knows") from None
    except Exception as err:
        raise CorruptImageError(f"{type(err).__name__}: {err}") from None


# ---------------------------------------------------------------------------- sources
class ImageSource(ABC):
    """Encoded images addressed by index; picklable (handles open lazily per process)."""

    #: the file or directory the images are in, for messages.
    location: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def name(self, index: int) -> str:
        """A name a user can find the image by (relative path, zip member, LMDB key)."""

    @abstractmethod
    def read(self, index: int) -> bytes:
        """The encoded bytes of image ``index``."""


class FolderSource(ImageSource):
    """Image files under a directory, nested folders included, in sorted order."""

    def __init__(self, root: str, files: Optional[Sequence[str]] = None) -> None:
        self.location = root
        if files is None:
            files = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                dirnames.sort()
                rel = os.path.relpath(dirpath, root)
                files += [
                    os.path.normpath(os.path.join(rel, f)) for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
                ]
            files.sort()
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return self.files[index]

    def read(self, index: int) -> bytes:
        with open(os.path.join(self.location, self.files[index]), "rb") as f:
            return f.read()


class ZipSource(ImageSource):
    """Image members of a zip archive (as StyleGAN's ``dataset_tool.py`` writes), sorted."""

    def __init__(self, path: str, members: Optional[Sequence[str]] = None) -> None:
        self.location = path
        if members is None:
            with zipfile.ZipFile(path) as archive:
                members = sorted(n for n in archive.namelist() if n.lower().endswith(IMAGE_EXTENSIONS))
        self.members = list(members)
        self._archive: Optional[zipfile.ZipFile] = None
        self._pid: Optional[int] = None

    def __len__(self) -> int:
        return len(self.members)

    def name(self, index: int) -> str:
        return f"{os.path.basename(self.location)}:{self.members[index]}"

    def archive(self) -> zipfile.ZipFile:
        if self._archive is None or self._pid != os.getpid():
            self._archive, self._pid = zipfile.ZipFile(self.location), os.getpid()
        return self._archive

    def read(self, index: int) -> bytes:
        return self.archive().read(self.members[index])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_archive": None, "_pid": None}


_LMDB_LOCK = threading.Lock()
_LMDB_ENVS: dict[str, tuple[int, Any]] = {}  # realpath -> (pid, environment)


def lmdb_environment(path: str):
    """The read-only LMDB environment of ``path`` for this process, opened once and shared.

    py-lmdb refuses to open a path that is already open in the process, so every
    :class:`LMDBSource` on one database shares one environment.  In a forked child (a
    loader worker) the parent's environment is closed first (that only unmaps the child's
    copy; with ``lock=False`` there is no lock file) and the database reopened.
    """
    import lmdb

    key, pid = os.path.realpath(path), os.getpid()
    with _LMDB_LOCK:  # verify's reader threads must not race to open it
        entry = _LMDB_ENVS.get(key)
        if entry is not None and entry[0] == pid:
            return entry[1]
        if entry is not None:
            entry[1].close()
        # Read-only, no lock file (the directory may be read-only), no readahead (random access).
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=1024)
        _LMDB_ENVS[key] = (pid, env)
        return env


class LMDBSource(ImageSource):
    """Values of an LMDB database, one encoded image per key (LSUN's layout), in key order."""

    def __init__(self, path: str, keys: Optional[Sequence[bytes]] = None) -> None:
        self.location = path
        if keys is None:
            with self.env().begin(write=False) as txn:
                keys = list(txn.cursor().iternext(keys=True, values=False))
        self.keys = list(keys)

    def env(self):
        return lmdb_environment(self.location)

    def __len__(self) -> int:
        return len(self.keys)

    def name(self, index: int) -> str:
        return f"{os.path.basename(os.path.normpath(self.location))}[{self.keys[index].decode(errors='replace')}]"

    def read(self, index: int) -> bytes:
        with self.env().begin(write=False) as txn:
            value = txn.get(self.keys[index])
        if value is None:
            raise CorruptImageError(f"key {self.keys[index]!r} has no value")
        return value


# ---------------------------------------------------------------------------- checks and dataset
def find_corrupt(
    source: ImageSource,
    mode: VerifyMode = "header",
    channels: int = 3,
    indices: Optional[Sequence[int]] = None,
    desc: str = "checking images",
) -> dict[int, str]:
    """``{index: reason}`` of the images (all, or ``indices``) that fail ``mode``'s check."""
    indices = range(len(source)) if indices is None else indices
    if mode == "none" or len(indices) == 0:
        return {}

    def check(index: int) -> Optional[str]:
        try:
            data = source.read(index)
            if mode == "full":
                decode_image(data, channels)
            else:
                _verify_header(data)
        except (CorruptImageError, OSError) as err:
            return str(err) or type(err).__name__
        return None

    bad: dict[int, str] = {}
    # Threads: file reads and the decoders release the GIL.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(check, indices, chunksize=64)
        progress = tqdm(
            results, total=len(indices), desc=desc, leave=False, mininterval=1.0, disable=len(indices) < 2000
        )
        for index, reason in zip(indices, progress):
            if reason is not None:
                bad[index] = reason
    return bad


class EncodedImageDataset(Dataset):
    """``(uint8 image [C, H, W], label)`` for ``indices`` of an :class:`ImageSource`.

    Args:
        source: where the encoded images are.
        indices: which of the source's images form this split.
        labels: the label of each source image (indexed like the source), or ``None`` (-1);
            ints, or tensors (e.g. CelebA's 40 attributes), returned as a copy.
        channels: decode to 1 (grey) or 3 (RGB) channels.
        skip_corrupt: replace an image that fails to decode by the next one, with a warning,
            instead of raising.
    """

    def __init__(
        self,
        source: ImageSource,
        indices: Sequence[int],
        labels: Optional[Sequence[Any]] = None,
        channels: int = 3,
        skip_corrupt: bool = False,
    ) -> None:
        self.source, self.indices, self.labels = source, [int(i) for i in indices], labels
        self.channels, self.skip_corrupt = channels, skip_corrupt

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, Any]:
        for attempt in range(len(self.indices)):
            index = self.indices[(position + attempt) % len(self.indices)]
            try:
                image = decode_image(self.source.read(index), self.channels)
            except (CorruptImageError, OSError) as err:
                if not self.skip_corrupt:
                    raise CorruptImageError(
                        f"cannot decode {self.source.name(index)} in {self.source.location}: {err}. "
                        "Set data.init_args.skip_corrupt: true to skip such files, or verify: full to find "
                        "them all before training"
                    ) from None
                rank_zero_warn(f"skipping unreadable image {self.source.name(index)}: {err}")
                continue
            if self.labels is None:
                return image, -1
            label = self.labels[index]
            # A tensor label is copied: a view would pin (and pickle) the whole label table.
            return image, (label.clone() if isinstance(label, torch.Tensor) and label.ndim else int(label))
        raise CorruptImageError(f"no image in {self.source.location} could be decoded")


class EncodedImageDataModule(ImageDataModule):
    """:class:`ImageDataModule` for encoded image files, with the corrupt-file policy.

    Args:
        verify: check every image at ``setup``: ``header`` (fast structural check),
            ``full`` (decode everything) or ``none``.
        skip_corrupt: leave unreadable images out (with a warning) instead of failing.
        **kwargs: the :class:`ImageDataModule` arguments (root, resolution, channels, ...).
    """

    def __init__(self, verify: VerifyMode = "header", skip_corrupt: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if verify not in ("header", "full", "none"):
            raise ValueError(f"data.init_args.verify must be header, full or none, got {verify!r}")
        self.verify, self.skip_corrupt = verify, skip_corrupt

    @property
    def decode_channels(self) -> int:
        """Channels to decode to: grey straight away when grey output is asked for."""
        return 1 if (self.channels or self.native_channels) == 1 else 3

    def readable(self, source: ImageSource, indices: Optional[Sequence[int]] = None) -> list[int]:
        """The indices of ``source`` (all, or ``indices``) that pass ``verify``.

        Raises :class:`CorruptImageError` listing the bad files unless ``skip_corrupt``.
        """
        indices = list(range(len(source))) if indices is None else list(indices)
        bad = find_corrupt(source, self.verify, self.decode_channels, indices, desc=f"{type(self).__name__}: verify")
        if not bad:
            return indices
        listing = "\n".join(f"  {source.name(i)}: {reason}" for i, reason in list(bad.items())[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        if not self.skip_corrupt:
            raise CorruptImageError(
                f"{type(self).__name__}: {len(bad)} unreadable image(s) in {source.location}:\n{listing}{more}\n"
                "Remove or replace them, or set data.init_args.skip_corrupt: true to leave them out."
            )
        rank_zero_warn(f"{type(self).__name__}: leaving out {len(bad)} unreadable image(s):\n{listing}{more}")
        return [i for i in indices if i not in bad]
