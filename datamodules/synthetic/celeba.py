"""A tiny CelebA in torchvision's / the official release's layout.

Writes ``root/celeba/``::

    img_align_celeba/000001.jpg ...      (or img_align_celeba.zip, as Google Drive serves it)
    list_eval_partition.txt              000001.jpg 0        (0 train, 1 valid, 2 test)
    list_attr_celeba.txt                 count / 40 names / 000001.jpg -1  1 ...
    identity_CelebA.txt                  000001.jpg 2880

The aligned CelebA images are 178 x 218 (width x height) JPEGs; ``size`` can be made
smaller (same aspect, e.g. 44 x 54) for speed.  The partition is contiguous like the
real one (train first, then valid, then test) in the real proportions 162,770 / 19,867 /
19,962 of 202,599.
"""

from __future__ import annotations

import os
import zipfile
from typing import Sequence

import numpy as np

from datamodules.synthetic.images import encode, synthetic_images

__all__ = ["CELEBA_ATTRIBUTES", "CELEBA_SPLIT_SIZES", "write_celeba"]

#: The 40 attribute names, in the order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
assert len(CELEBA_ATTRIBUTES) == 40

#: Official split sizes (train, valid, test) of ``list_eval_partition.txt``.
CELEBA_SPLIT_SIZES = (162_770, 19_867, 19_962)
#: Number of identities in ``identity_CelebA.txt`` (ids 1 ... 10,177).
CELEBA_IDENTITIES = 10_177


def _partition(count: int) -> list[int]:
    total = sum(CELEBA_SPLIT_SIZES)
    n_val = round(count * CELEBA_SPLIT_SIZES[1] / total)
    n_test = round(count * CELEBA_SPLIT_SIZES[2] / total)
    n_train = count - n_val - n_test
    return [0] * n_train + [1] * n_val + [2] * n_test


def write_celeba(
    root: str,
    count: int,
    zipped: bool = False,
    seed: int = 0,
    attrs: bool = True,
    identities: bool = True,
    size: Sequence[int] = (178, 218),
    quality: int = 95,
) -> list[str]:
    """Write ``count`` images and the annotation files under ``root/celeba``.

    Args:
        root: the directory that will hold ``celeba/`` (torchvision's ``root``).
        count: number of images (named ``000001.jpg`` ...).
        zipped: write ``img_align_celeba.zip`` (members ``img_align_celeba/000001.jpg``)
            instead of the extracted folder.
        seed: fixes the images, attributes and identities.
        attrs: write ``list_attr_celeba.txt`` (random -1/1 attributes).
        identities: write ``identity_CelebA.txt`` (random ids in 1 ... 10,177).
        size: (width, height) of the JPEGs; the real aligned images are 178 x 218.
        quality: JPEG quality.

    Returns the image file names, in partition-file order.
    """
    width, height = int(size[0]), int(size[1])
    base = os.path.join(root, "celeba")
    os.makedirs(base, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    images, _ = synthetic_images(count, height, width, seed=seed)
    rng = np.random.default_rng(seed + 1)

    if zipped:
        # The Google Drive zip stores the JPEGs deflated, under a folder entry.
        with zipfile.ZipFile(os.path.join(base, "img_align_celeba.zip"), "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("img_align_celeba/", b"")
            for name, image in zip(names, images):
                archive.writestr(f"img_align_celeba/{name}", encode(image, "jpg", quality))
    else:
        folder = os.path.join(base, "img_align_celeba")
        os.makedirs(folder, exist_ok=True)
        for name, image in zip(names, images):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(encode(image, "jpg", quality))

    with open(os.path.join(base, "list_eval_partition.txt"), "w") as f:
        f.writelines(f"{name} {split}\n" for name, split in zip(names, _partition(count)))
    if attrs:
        values = rng.choice(np.array([-1, 1]), size=(count, len(CELEBA_ATTRIBUTES)))
        with open(os.path.join(base, "list_attr_celeba.txt"), "w") as f:
            # The real file: the count, the names (with a trailing space), then right-aligned values.
            f.write(f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n")
            for name, row in zip(names, values):
                f.write(name + " " + " ".join(f"{int(v):2d}" for v in row) + "\n")
    if identities:
        ids = rng.integers(1, CELEBA_IDENTITIES + 1, size=count)
        with open(os.path.join(base, "identity_CelebA.txt"), "w") as f:
            f.writelines(f"{name} {int(i)}\n" for name, i in zip(names, ids))
    return names
