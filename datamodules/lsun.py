"""LSUN scenes (Yu et al. 2015), e.g. church_outdoor, from the official LMDBs or a folder.

``root`` holds the release as ``python download.py -c church_outdoor`` (from
https://github.com/fyu/lsun) fetches it, unzipped::

    church_outdoor_train_lmdb/data.mdb, lock.mdb     126,227 images for church_outdoor
    church_outdoor_val_lmdb/data.mdb, lock.mdb       300 images (every scene category)

Each is an LMDB whose keys are the image ids as ASCII hex (``b"0000a1b2..."``) and whose
values are the encoded images (WebP in the release), short side 256, various aspect
ratios.  ``root`` may also be the ``<category>_train_lmdb`` directory itself, or hold
``<category>/data.mdb``.  When no LMDB is found, a folder of images is used instead:
``root/<category>/`` or ``root`` itself (e.g. what ``python data.py export
church_outdoor_train_lmdb --out_dir ...`` writes: ``0/0/0/a/1/b/000a1b....webp``; the
images sort in key order, so the folder gives the same splits as the LMDB).

Splits: the official ``_val_lmdb`` (300 images) is the **test** split when present, and
``val_fraction`` of the training images is held out at random (fixed by ``seed``) for
validation; without a val LMDB, ``test_fraction`` is held out for testing too.  GAN papers
train on the whole training LMDB and compute FID against it: set ``val_fraction: 0``.

Images are center-cropped to a square (the short side, unless ``center_crop`` is given)
and resized to ``resolution``.

Why not ``torchvision.datasets.LSUN`` (torchvision 0.29, ``datasets/lsun.py``): its
``LSUNClass.__init__`` lists every key and pickles the list to
``"_cache_" + "".join(c for c in root if c in string.ascii_letters)`` -- a *relative* path,
so the file lands in the current working directory of whoever runs it -- and when a file
of that name already exists it unpickles it without any check, so a stale or foreign
cache is trusted (``data/church_outdoor_train_lmdb`` and ``data2/church_outdoor_train_lmdb``
both map to ``_cache_datachurchoutdoortrainlmdb``), and unpickling a file from the working
directory can run arbitrary code.  It also opens the environment in ``__init__``
(``max_readers=1``) and keeps using that handle in forked loader workers, which LMDB's
documentation forbids; it accepts only its ten hard-coded scene names for ``classes``;
and it reads nothing but LMDBs.  :class:`~datamodules.encoded.LMDBSource` opens the
environment read-only, without a lock file, once per process, and the key list is kept
in memory only.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Optional

from torch.utils.data import Dataset

from datamodules.base import check_fractions, split_indices
from datamodules.encoded import (
    IMAGE_EXTENSIONS,
    EncodedImageDataModule,
    EncodedImageDataset,
    FolderSource,
    ImageSource,
    LMDBSource,
)

__all__ = ["LSUNDataModule", "LSUN_SCENES"]

#: The ten scene categories of the release (object categories such as ``cat`` work too).
LSUN_SCENES = (
    "bedroom", "bridge", "church_outdoor", "classroom", "conference_room",
    "dining_room", "kitchen", "living_room", "restaurant", "tower",
)  # fmt: skip

# Key lists of the LMDBs opened in this process, so that a second DataModule on the same
# database (evaluation scripts, notebooks, tests) does not list 126k+ keys again.  Kept
# in memory only: nothing is written next to the dataset or into the working directory.
_KEY_CACHE: "OrderedDict[tuple, list[bytes]]" = OrderedDict()
_KEY_CACHE_SIZE = 8


def _open_lmdb(path: str) -> LMDBSource:
    """An :class:`LMDBSource` on ``path``, its key list from the cache when it is there."""
    stat = os.stat(os.path.join(path, "data.mdb"))
    cache_key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    keys = _KEY_CACHE.get(cache_key)
    source = LMDBSource(path, keys=keys)
    if keys is None:
        _KEY_CACHE[cache_key] = source.keys
        while len(_KEY_CACHE) > _KEY_CACHE_SIZE:
            _KEY_CACHE.popitem(last=False)
    return source


def _is_lmdb(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "data.mdb"))


def _looks_like_image_folder(path: str) -> bool:
    """Images at the top of ``path``, or LSUN's export layout (one-hex-character folders)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    for entry in entries:
        if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
            return True
    return any(e.is_dir() and len(e.name) == 1 and e.name in "0123456789abcdef" for e in entries)


class LSUNDataModule(EncodedImageDataModule):
    """One LSUN category, from its LMDBs (or a folder of images); no labels.

    Args:
        root: the directory holding ``<category>_train_lmdb/`` (and ``<category>_val_lmdb/``),
            or the ``_train_lmdb`` directory itself, or a folder of images (see the module
            docstring).
        category: the LSUN category, e.g. ``church_outdoor``, ``bedroom``, ``tower``.
        resolution: image side: 64 (default), 128 or 256.  64 is the DCGAN setting
            (Radford et al. trained on LSUN bedrooms at 64 x 64) that the project's DCGAN
            nets and the CelebA default use; 256 is the StyleGAN/ProGAN benchmark setting
            and LSUN's stored short side, so the images are then only cropped, not resampled.
        val_fraction: share of the training images held out for validation (random, fixed
            by ``seed``); 0 trains on all of them.
        test_fraction: share held out for testing when there is no ``_val_lmdb`` (when there
            is, its 300 images are the test split and this is ignored).
        **kwargs: the shared arguments (channels, center_crop, hflip, batch_size,
            num_workers, pin_memory, persistent_workers, drop_last, seed, verify,
            skip_corrupt); see :class:`~datamodules.base.ImageDataModule` and
            :class:`~datamodules.encoded.EncodedImageDataModule`.
    """

    native_channels = 3

    source_url = (
        "https://github.com/fyu/lsun (python download.py -c <category> -o <root>, then unzip "
        "<category>_train_lmdb.zip and <category>_val_lmdb.zip there)"
    )

    def __init__(
        self,
        root: str,
        category: str = "church_outdoor",
        resolution: int = 64,
        val_fraction: float = 0.01,
        test_fraction: float = 0.01,
        **kwargs,
    ) -> None:
        super().__init__(root=root, resolution=resolution, **kwargs)
        if not category or os.sep in category:
            raise ValueError(
                f"data.init_args.category must be an LSUN category such as church_outdoor, got {category!r}"
            )
        check_fractions(val_fraction, test_fraction)
        self.category, self.val_fraction, self.test_fraction = category, val_fraction, test_fraction
        self.sources: dict[str, ImageSource] = {}

    # ------------------------------------------------------------------ where the files are
    def locate(self) -> tuple[Optional[str], Optional[str], Optional[str]]:
        """``(kind, train, test)``: kind ``lmdb`` or ``folder`` (``None`` when nothing is
        found), the training LMDB or image folder, and the val LMDB (``None`` if absent)."""
        root, cat = self.root, self.category
        for path in (os.path.join(root, f"{cat}_train_lmdb"), os.path.join(root, cat), root):
            if _is_lmdb(path):
                parent = os.path.dirname(os.path.normpath(path)) if path == root else root
                val = os.path.join(parent, f"{cat}_val_lmdb")
                return "lmdb", path, (val if _is_lmdb(val) else None)
        for path in (os.path.join(root, cat), root):
            if os.path.isdir(path) and _looks_like_image_folder(path):
                return "folder", path, None
        return None, None, None

    def expected_files(self) -> str:
        cat = self.category
        text = (
            f"{cat}_train_lmdb/data.mdb (and optionally {cat}_val_lmdb/data.mdb), "
            f"or a folder of images {cat}/ (or the images directly in root)"
        )
        hints = []
        if os.path.isdir(self.root):
            names = sorted(os.listdir(self.root))
            zips = [n for n in names if n.startswith(f"{cat}_") and n.endswith("_lmdb.zip")]
            if zips:
                hints.append(f"found {', '.join(zips)}: unzip it there")
            others = [n for n in names if n.endswith("_lmdb") and not n.startswith(f"{cat}_")]
            if others:
                hints.append(f"found {', '.join(others[:5])}: is data.init_args.category right?")
        return text + "".join(f"; {h}" for h in hints)

    def missing_files(self) -> list[str]:
        if self.locate()[0] is not None:
            return []
        return [os.path.join(self.root, f"{self.category}_train_lmdb", "data.mdb")]

    # download_data is the base's: torchvision has no LSUN downloader any more, so
    # ``download: true`` raises DatasetNotFoundError with source_url's instructions.  (An
    # override would make check_files suggest ``download: true``, which cannot help.)

    # ------------------------------------------------------------------ reading
    def read_splits(self) -> dict[str, Dataset]:
        kind, train_path, test_path = self.locate()
        if kind is None:
            self.check_files()
        train_source = _open_lmdb(train_path) if kind == "lmdb" else FolderSource(train_path)
        test_source = _open_lmdb(test_path) if test_path else None
        n = len(train_source)
        if test_source is not None:
            train, val = split_indices(n, (self.val_fraction,), self.seed)
            test = range(len(test_source))
            parts = {"train": (train_source, train), "val": (train_source, val), "test": (test_source, test)}
        else:
            train, val, test = split_indices(n, (self.val_fraction, self.test_fraction), self.seed)
            parts = {"train": (train_source, train), "val": (train_source, val), "test": (train_source, test)}
        self.sources = {"train": train_source, **({"test": test_source} if test_source is not None else {})}
        keep = {id(s): set(self.readable(s)) for s in [train_source, *([test_source] if test_source else [])]}
        return {
            split: EncodedImageDataset(
                source,
                [int(i) for i in idx if int(i) in keep[id(source)]],
                None,
                self.decode_channels,
                self.skip_corrupt,
            )
            for split, (source, idx) in parts.items()
        }
