"""Aligned image pairs in pix2pix's two layouts, for tests and benchmarks.

* ``side_by_side`` -- as the pix2pix datasets (``facades.tar.gz`` ...) unpack:
  ``root/<split>/<i>.jpg``, each JPEG holding A and B side by side (A the left half);
* ``folders`` -- ``root/<split>/A/<i>.png`` and ``root/<split>/B/<i>.png``.

B is a :func:`~datamodules.synthetic.images.synthetic_images` image and A its photometric
negative (``A = 255 - B``), so a test can check the pairing exactly: in [-1, 1] the
input is minus the target (up to JPEG error), whatever flip or direction was applied.
"""

from __future__ import annotations

import os
from typing import Literal, Mapping, Union

import numpy as np

from datamodules.synthetic.images import encode, synthetic_images

__all__ = ["write_pix2pix"]


def write_pix2pix(
    root: str,
    count_per_split: Union[int, Mapping[str, int]],
    size: int = 32,
    layout: Literal["side_by_side", "folders"] = "side_by_side",
    seed: int = 0,
    channels: int = 3,
) -> dict[str, list[str]]:
    """Write pairs of ``size x size`` images under ``root`` in pix2pix's ``layout``.

    Args:
        root: the dataset directory (created).
        count_per_split: pairs per split, the same for train, val and test, or a mapping
            such as ``{"train": 8, "val": 2}`` (a split left out or 0 gets no folder, as
            edges2shoes has no ``test/``).
        size: side of A and of B (a side-by-side file is ``size`` x ``2 size``).
        layout: ``side_by_side`` (JPEG, quality 95, as the real datasets) or ``folders`` (PNG).
        seed: fixes the images; each split gets different ones.
        channels: 1 or 3.

    Returns the file names of each split, relative to its folder (``1.jpg`` ... as pix2pix
    numbers them, or the shared name in A/ and B/).
    """
    if layout not in ("side_by_side", "folders"):
        raise ValueError(f"layout must be side_by_side or folders, got {layout!r}")
    counts = (
        dict(count_per_split)
        if isinstance(count_per_split, Mapping)
        else {"train": count_per_split, "val": count_per_split, "test": count_per_split}
    )
    written: dict[str, list[str]] = {}
    for k, (split, count) in enumerate(counts.items()):
        if count <= 0:
            continue
        b_images, _ = synthetic_images(count, size, channels=channels, seed=seed * 1000 + k)
        a_images = 255 - b_images
        ext = "jpg" if layout == "side_by_side" else "png"
        names = [f"{i + 1}.{ext}" for i in range(count)]
        for name, a, b in zip(names, a_images, b_images):
            if layout == "side_by_side":
                files = {os.path.join(root, split, name): np.concatenate([a, b], axis=1)}
            else:
                files = {os.path.join(root, split, "A", name): a, os.path.join(root, split, "B", name): b}
            for path, image in files.items():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(encode(image, ext))
        written[split] = names
    return written
