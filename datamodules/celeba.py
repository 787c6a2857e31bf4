"""CelebA (Liu et al. 2015): 202,599 aligned 178 x 218 face JPEGs, with the official split.

``root`` is the directory holding ``celeba/`` (torchvision's layout) or that ``celeba``
folder itself::

    celeba/img_align_celeba/000001.jpg ... 202599.jpg   (or celeba/img_align_celeba.zip,
                                                          the Google Drive download, unextracted)
    celeba/list_eval_partition.txt                      000001.jpg 0   (0 train, 1 valid, 2 test)
    celeba/list_attr_celeba.txt                         target: attr
    celeba/identity_CelebA.txt                          target: identity

Splits are the official ones: 162,770 train / 19,867 val / 19,962 test.  Only the images
the partition file lists are used (in its order); one it lists that is not in the folder
or zip is an error naming it, or is left out with a warning under ``skip_corrupt: true``.

The files are read here, not by ``torchvision.datasets.CelebA``: that class MD5-checks
every annotation file (list_attr_celeba.txt, identity_CelebA.txt, list_bbox_celeba.txt,
list_landmarks_align_celeba.txt, list_eval_partition.txt) and refuses to load without all
five, so it rejects fixtures, partial downloads and re-saved files, and it cannot read the
zip.  It is used for ``download: true`` only.
"""

from __future__ import annotations

import gc
import os
import warnings
import zipfile
from contextlib import contextmanager
from typing import Literal, Optional

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from datamodules.base import DatasetNotFoundError
from datamodules.encoded import EncodedImageDataModule, EncodedImageDataset, FolderSource, ImageSource, ZipSource

__all__ = ["CelebADataModule"]

PARTITION_FILE = "list_eval_partition.txt"
ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_DIR = "img_align_celeba"
IMAGE_ZIP = "img_align_celeba.zip"
#: identity ids run from 1 to this in identity_CelebA.txt.
NUM_IDENTITIES = 10_177

Target = Literal["none", "attr", "identity"]


@contextmanager
def _gc_paused():
    """No garbage collection while building 200k small lists (else full collections, with
    torch's many objects alive, take seconds; nothing made here is cyclic)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CelebADataModule(EncodedImageDataModule):
    """CelebA's aligned faces, official split; labels none, 40 attributes, or identities.

    Center crop (of the 178 x 218 aligned image, before resizing) -- the usual choices:

    * ``108``: DCGAN-era code (carpedm20's DCGAN-tensorflow and the many ports of it,
      BEGAN-era 64 x 64 baselines): a tight face crop, cutting chin and forehead;
    * ``140`` (default): ``CenterCrop(140)`` then resize, as in NCSN (to 32) and NCSNv2 (to
      64) and much score-based, diffusion and GAN code after them: the whole face with
      some hair and background;
    * ``null``: the short side (178 x 178), what ``Resize(64)`` + ``CenterCrop(64)`` gives
      (PyTorch's DCGAN tutorial).

    140 is the default because it keeps the whole face and because at ``resolution: 128``
    it still only downsamples (108 would have to be upsampled to 128, blurring).  Report the
    crop with any FID: numbers from different crops are not comparable.

    Args:
        root: the directory holding ``celeba/`` (as torchvision downloads it), or the
            ``celeba`` folder itself.
        resolution: image side after cropping: 64 (default) or 128.
        center_crop: side of the square center crop before resizing (see above).
        target: the label of each image: ``none`` (-1), ``attr`` (an int64 tensor [40] of
            0/1 in the order of :attr:`attr_names`, torchvision's convention; use
            ``.float()`` for a BCE loss), or ``identity`` (int, the person's id - 1, in
            0 ... 10,176; ``num_classes`` is then 10,177).
        **kwargs: the shared arguments (channels, hflip, batch_size, num_workers,
            pin_memory, persistent_workers, drop_last, seed, download, verify,
            skip_corrupt); see :class:`~datamodules.base.ImageDataModule` and
            :class:`~datamodules.encoded.EncodedImageDataModule`.
    """

    native_channels = 3
    source_url = (
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images: img_align_celeba.zip; "
        "Anno/list_attr_celeba.txt, Anno/identity_CelebA.txt; Eval/list_eval_partition.txt)"
    )

    def __init__(
        self,
        root: str,
        resolution: int = 64,
        center_crop: Optional[int] = 140,
        target: Target = "none",
        **kwargs,
    ) -> None:
        super().__init__(root=root, resolution=resolution, center_crop=center_crop, **kwargs)
        if target not in ("none", "attr", "identity"):
            raise ValueError(f"data.init_args.target must be none, attr or identity, got {target!r}")
        self.target = target
        self.num_classes: Optional[int] = NUM_IDENTITIES if target == "identity" else None
        #: the 40 attribute names (from the file) once ``setup`` has run with ``target: attr``.
        self.attr_names: list[str] = []
        self.source: Optional[ImageSource] = None

    # ------------------------------------------------------------------ where the files are
    @property
    def base_dir(self) -> str:
        """``root/celeba`` when it exists (torchvision's layout), else ``root`` when it holds the files."""
        nested = os.path.join(self.root, "celeba")
        if os.path.isdir(nested):
            return nested
        if any(os.path.exists(os.path.join(self.root, f)) for f in (PARTITION_FILE, IMAGE_DIR, IMAGE_ZIP)):
            return self.root
        return nested

    def _label_file(self) -> Optional[str]:
        return {"attr": ATTR_FILE, "identity": IDENTITY_FILE}.get(self.target)

    def expected_files(self) -> str:
        label = self._label_file()
        return (
            f"celeba/{IMAGE_DIR}/ (000001.jpg ... 202599.jpg) or celeba/{IMAGE_ZIP}, "
            f"and celeba/{PARTITION_FILE}"
            + (f" and celeba/{label}" if label else "")
            + " (or these directly under root)"
        )

    def missing_files(self) -> list[str]:
        base = self.base_dir
        missing = []
        folder, archive = os.path.join(base, IMAGE_DIR), os.path.join(base, IMAGE_ZIP)
        if not os.path.isdir(folder):
            if not os.path.exists(archive):
                missing.append(f"{folder}{os.sep} (or {IMAGE_ZIP})")
            elif not zipfile.is_zipfile(archive):
                missing.append(f"{archive} (not a readable zip file; download it again)")
        for name in (PARTITION_FILE, self._label_file()):
            if name and not os.path.isfile(os.path.join(base, name)):
                missing.append(os.path.join(base, name))
        return missing

    def download_data(self) -> None:
        """``torchvision.datasets.CelebA(split="all", download=True)`` (needs ``gdown``)."""
        from torchvision.datasets import CelebA

        base = os.path.normpath(self.base_dir)
        parent = os.path.dirname(base) if os.path.basename(base) == "celeba" else self.root
        try:
            CelebA(parent, split="all", target_type=[], download=True)
        except Exception as err:  # gdown missing, Google Drive quota, MD5 mismatch, ...
            raise DatasetNotFoundError(
                f"{type(self).__name__}: downloading CelebA into {os.path.join(parent, 'celeba')} failed "
                f"({type(err).__name__}: {err}). Google Drive often refuses these files once their daily "
                f"quota is used up; download them by hand from {self.source_url} into that directory "
                "(or try again later)."
            ) from err

    # ------------------------------------------------------------------ reading
    def _read_table(self, name: str, columns: int, skip: int = 0) -> tuple[list[str], list[str], np.ndarray]:
        """``(header lines, image names, int64 values [N, columns])`` of an annotation file.

        NumPy parses the numbers: 202,599 x 40 attributes take well under a second.
        """
        path = os.path.join(self.base_dir, name)
        with open(path) as f:
            lines = f.read().splitlines()
        with _gc_paused():
            rows = [(n, line.split(None, 1)) for n, line in enumerate(lines[skip:], skip + 1) if line.strip()]
        for number, row in rows:
            if len(row) != 2:
                raise ValueError(f"{path}, line {number}: expected '<image>.jpg' and {columns} integer(s), got {row!r}")
        try:
            with warnings.catch_warnings():  # older NumPy warns instead of raising on a bad number
                warnings.simplefilter("error", DeprecationWarning)
                values = np.fromstring(" ".join(row[1] for _, row in rows), dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            values = np.empty(0, np.int64)
        if values.size != columns * len(rows):
            raise ValueError(
                f"{path}: expected '<image>.jpg' and {columns} integer(s) on each line"
                + (f" after the first {skip}" if skip else "")
            )
        return lines[:skip], [row[0] for _, row in rows], values.reshape(len(rows), columns)

    def read_partition(self) -> tuple[list[str], torch.Tensor]:
        """Image names and their split (0 train, 1 valid, 2 test) from ``list_eval_partition.txt``."""
        _, names, values = self._read_table(PARTITION_FILE, 1)
        splits = torch.from_numpy(values[:, 0])
        if len(splits) and not bool(((splits >= 0) & (splits <= 2)).all()):
            raise ValueError(f"{os.path.join(self.base_dir, PARTITION_FILE)}: split ids must be 0, 1 or 2")
        return names, splits

    def read_targets(self, names: list[str]):
        """The label of each image in ``names``: attribute vectors, identities or ``None``."""
        if self.target == "none":
            return None
        path = os.path.join(self.base_dir, self._label_file())
        if self.target == "attr":
            header, keys, values = self._read_table(ATTR_FILE, 40, skip=2)
            self.attr_names = header[1].split() if len(header) == 2 else []
            if len(self.attr_names) != 40:
                raise ValueError(f"{path}: expected the image count on line 1 and the 40 attribute names on line 2")
        else:
            _, keys, values = self._read_table(IDENTITY_FILE, 1)
        position = {key: i for i, key in enumerate(keys)}
        unlabelled = [n for n in names if n not in position]
        if unlabelled:
            raise ValueError(
                f"{path} has no line for {len(unlabelled)} image(s) of the partition file, e.g. {unlabelled[0]}"
            )
        values = torch.from_numpy(values[[position[n] for n in names]])
        if self.target == "attr":
            return (values > 0).long()  # -1/1 -> 0/1
        return (values[:, 0] - 1).tolist()  # ids 1 ... 10,177 -> classes 0 ... 10,176

    def open_source(self, names: list[str]) -> tuple[ImageSource, list[int]]:
        """The images of ``names`` (folder, else zip) and the indices of those that are missing."""
        base = self.base_dir
        folder = os.path.join(base, IMAGE_DIR)
        if os.path.isdir(folder):
            present = set(os.listdir(folder))  # one listing, not 202,599 stat calls
            source: ImageSource = FolderSource(folder, files=names)
            missing = [i for i, n in enumerate(names) if n not in present]
        else:
            archive = os.path.join(base, IMAGE_ZIP)
            with zipfile.ZipFile(archive) as zf:
                # Members are img_align_celeba/000001.jpg in the official zip; match on the base name.
                members = {m.rsplit("/", 1)[-1]: m for m in zf.namelist() if not m.endswith("/")}
            source = ZipSource(archive, members=[members.get(n, f"{IMAGE_DIR}/{n}") for n in names])
            missing = [i for i, n in enumerate(names) if n not in members]
        return source, missing

    def read_splits(self) -> dict[str, Dataset]:
        names, splits = self.read_partition()
        targets = self.read_targets(names)
        source, missing = self.open_source(names)
        self.source = source
        if missing:
            listing = ", ".join(names[i] for i in missing[:20])
            listing += f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            partition = os.path.join(self.base_dir, PARTITION_FILE)
            text = (
                f"{type(self).__name__}: {len(missing)} image(s) listed in {partition} "
                f"are not in {source.location}: {listing}"
            )
            if not self.skip_corrupt:
                raise DatasetNotFoundError(
                    f"{text}. Extract {IMAGE_ZIP} again (or download it from {self.source_url}), "
                    "or set data.init_args.skip_corrupt: true to leave them out."
                )
            rank_zero_warn(f"{text}; leaving them out (skip_corrupt: true)")
        gone = set(missing)
        keep = set(self.readable(source, [i for i in range(len(names)) if i not in gone]))
        out = {}
        for split, code in (("train", 0), ("val", 1), ("test", 2)):
            indices = [i for i in torch.nonzero(splits == code).flatten().tolist() if i in keep]
            out[split] = EncodedImageDataset(source, indices, targets, self.decode_channels, self.skip_corrupt)
        return out
