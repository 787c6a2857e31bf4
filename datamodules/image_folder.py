"""A folder or a zip of images, as StyleGAN's dataset tooling writes them; FFHQ.

``root`` is a directory (searched recursively; nested folders such as FFHQ's
``images1024x1024/00000/00000.png`` are fine) or a ``.zip`` (NVlabs' ``dataset_tool.py``
output, e.g. ``ffhq-256x256.zip`` holding ``00000/img00000000.png``...).  Images are
read in sorted path order.  When a ``dataset.json`` sits at the top of the folder/zip in
the dataset tool's format -- ``{"labels": [["00000/img00000000.png", 6], ...]}`` -- and
``use_labels: true``, its integer labels are used; otherwise labels are -1.

There is no official split: ``val_fraction`` and ``test_fraction`` of the images are held
out at random, fixed by ``seed``.  StyleGAN trains on all 70k FFHQ images and computes FID
against all of them: set both fractions to 0 (and the metrics' ``real_split: train``)
to do the same.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Optional

from torch.utils.data import Dataset

from datamodules.base import check_fractions, split_indices
from datamodules.encoded import EncodedImageDataModule, EncodedImageDataset, FolderSource, ImageSource, ZipSource

__all__ = ["FFHQDataModule", "ImageFolderDataModule"]


class ImageFolderDataModule(EncodedImageDataModule):
    """Images from a folder (nested allowed) or a zip; optional labels from ``dataset.json``.

    Args:
        root: a directory of images or a ``.zip`` of images.
        resolution: image side; images of another size are center-cropped to a square
            and resized on load.
        val_fraction: share of the images held out for validation (random, fixed by ``seed``).
        test_fraction: share of the images held out for testing.
        use_labels: read integer class labels from the dataset tool's ``dataset.json``.
        **kwargs: the shared arguments (channels, center_crop, hflip, batch_size,
            num_workers, pin_memory, persistent_workers, drop_last, seed, verify,
            skip_corrupt); see :class:`~datamodules.base.ImageDataModule`.
    """

    source_url = "any folder or zip of PNG/JPEG/WebP images"

    def __init__(
        self,
        root: str,
        resolution: int = 64,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        use_labels: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(root=root, resolution=resolution, **kwargs)
        check_fractions(val_fraction, test_fraction)
        self.val_fraction, self.test_fraction, self.use_labels = val_fraction, test_fraction, use_labels
        self.num_classes: Optional[int] = None
        self.source: Optional[ImageSource] = None

    @property
    def is_zip(self) -> bool:
        return self.root.lower().endswith(".zip")

    def expected_files(self) -> str:
        return "a folder of images (nested folders allowed) or a .zip of images" + (
            ", with dataset.json holding the labels" if self.use_labels else ""
        )

    def missing_files(self) -> list[str]:
        if not os.path.exists(self.root):
            return [self.root]
        if self.is_zip and not zipfile.is_zipfile(self.root):
            return [f"{self.root} (not a readable zip file)"]
        return []

    def open_source(self) -> ImageSource:
        """The folder or zip as an :class:`ImageSource` (listed once, then kept)."""
        if self.source is None:
            self.source = ZipSource(self.root) if self.is_zip else FolderSource(self.root)
        return self.source

    def read_labels(self, source: ImageSource) -> list[int]:
        """The label of each source image, from ``dataset.json``."""
        names = source.members if isinstance(source, ZipSource) else source.files
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.root) as archive:
                    meta = json.loads(archive.read("dataset.json"))
            else:
                with open(os.path.join(self.root, "dataset.json")) as f:
                    meta = json.load(f)
        except (KeyError, FileNotFoundError):
            raise FileNotFoundError(
                f"data.init_args.use_labels is true but {self.root} has no dataset.json "
                '({"labels": [["relative/path.png", label], ...]}, as dataset_tool.py writes it)'
            ) from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.root}: dataset.json is not valid JSON ({err})") from None
        table = dict(meta.get("labels") or [])
        missing = [n for n in names if n.replace(os.sep, "/") not in table]
        if missing:
            raise ValueError(f"{self.root}: dataset.json has no label for {len(missing)} image(s), e.g. {missing[0]}")
        return [int(table[n.replace(os.sep, "/")]) for n in names]

    def read_splits(self) -> dict[str, Dataset]:
        source = self.open_source()
        if len(source) == 0:
            return {s: EncodedImageDataset(source, []) for s in ("train", "val", "test")}
        labels = self.read_labels(source) if self.use_labels else None
        if labels is not None:
            self.num_classes = max(labels) + 1
        train, val, test = split_indices(len(source), (self.val_fraction, self.test_fraction), self.seed)
        keep = set(self.readable(source))
        splits = {"train": train, "val": val, "test": test}
        return {
            name: EncodedImageDataset(
                source, [int(i) for i in idx if int(i) in keep], labels, self.decode_channels, self.skip_corrupt
            )
            for name, idx in splits.items()
        }


class FFHQDataModule(ImageFolderDataModule):
    """FFHQ (Karras et al. 2019): 70,000 aligned faces, as a PNG folder or a dataset-tool zip.

    Args:
        root: e.g. ``data/ffhq/images1024x1024`` (the official PNG folder) or
            ``data/ffhq/ffhq-256x256.zip`` (``python dataset_tool.py --source=images1024x1024
            --dest=ffhq-256x256.zip --resolution=256x256`` from NVlabs/stylegan2-ada-pytorch).
        resolution: a power of two (4 ... 1024); stored images of another size are resized.
        val_fraction: share held out for validation (0 to train on all 70k, as StyleGAN does).
        test_fraction: share held out for testing.
        hflip: x-flips, StyleGAN2-ADA's ``--mirror=1`` (on by default, as in its FFHQ configs).
        **kwargs: the shared arguments; see :class:`ImageFolderDataModule`.
    """

    source_url = "https://github.com/NVlabs/ffhq-dataset (images1024x1024, 89 GB, or a zip made by dataset_tool.py)"

    def __init__(
        self,
        root: str,
        resolution: int = 256,
        val_fraction: float = 0.01,
        test_fraction: float = 0.01,
        hflip: bool = True,
        **kwargs,
    ) -> None:
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(
                f"data.init_args.resolution must be a power of two (4 ... 1024) for FFHQ, got {resolution}"
            )
        super().__init__(
            root=root,
            resolution=resolution,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            hflip=hflip,
            **kwargs,
        )

    def expected_files(self) -> str:
        return "the FFHQ PNGs (images1024x1024/ with 00000/ ... 69000/ inside) or a dataset-tool zip of them"
