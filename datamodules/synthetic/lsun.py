"""A tiny LSUN scene category: a real LMDB in the official release's key/value layout.

The release (``python download.py -c church_outdoor`` from https://github.com/fyu/lsun,
then unzip) is ``<category>_train_lmdb/`` and ``<category>_val_lmdb/``, each an LMDB
environment (``data.mdb`` + ``lock.mdb``) whose keys are image ids as 40 ASCII hex
characters (``b"0000a1b2..."``) and whose values are encoded images -- WebP in the
official release -- with a short side of 256 pixels and various aspect ratios.
:func:`export_lsun_folder` writes the folder that LSUN's ``data.py export`` makes from one.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

from datamodules.synthetic.images import encode, synthetic_images

__all__ = ["export_lsun_folder", "lsun_key", "write_lsun"]


def lsun_key(category: str, split: str, index: int, seed: int = 0) -> bytes:
    """A 40-hex-character image id, as LSUN's keys look (a SHA-1 here)."""
    return hashlib.sha1(f"{category}/{split}/{seed}/{index}".encode()).hexdigest().encode("ascii")


def write_lsun(
    root: str,
    category: str,
    count: int,
    split: str = "train",
    fmt: str = "webp",
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] = ((48, 40), (40, 48), (56, 40), (40, 40)),
    quality: int = 90,
) -> list[bytes]:
    """Write ``root/<category>_<split>_lmdb`` holding ``count`` images; return its keys, sorted.

    Args:
        root: directory that receives the LMDB directory.
        category: e.g. ``church_outdoor``.
        count: number of images.
        split: ``train`` or ``val`` (the directory suffix).
        fmt: ``webp`` (the official release) or ``jpg``.
        seed: fixes the images and the keys.
        sizes: (width, height) of the images, used in turn: non-square like LSUN's
            (whose short side is 256), small for speed.
        quality: WebP/JPEG quality.
    """
    import lmdb

    path = os.path.join(root, f"{category}_{split}_lmdb")
    os.makedirs(path, exist_ok=True)
    records: list[tuple[bytes, bytes]] = []
    for k, (width, height) in enumerate(sizes):
        positions = list(range(k, count, len(sizes)))
        if not positions:
            continue
        images, _ = synthetic_images(len(positions), height, width, seed=seed + 1000 * k)
        for i, image in zip(positions, images):
            records.append((lsun_key(category, split, i, seed), encode(image, fmt, quality)))
    map_size = max(1 << 20, 4 * sum(len(v) for _, v in records) + (1 << 20))
    env = lmdb.open(path, map_size=map_size, subdir=True)
    try:
        with env.begin(write=True) as txn:
            for key, value in records:
                txn.put(key, value)
    finally:
        env.close()
    return sorted(key for key, _ in records)


def export_lsun_folder(lmdb_path: str, out_dir: str, flat: bool = False, ext: str = "webp") -> list[str]:
    """Write every value of ``lmdb_path`` to a file, as LSUN's ``data.py export`` does.

    Nested (default): ``out_dir/k/e/y/1/2/3/<key>.webp``, one folder level per character of
    the key's first six; ``flat``: ``out_dir/<key>.webp``.  Returns the relative paths.
    """
    import lmdb

    env = lmdb.open(lmdb_path, readonly=True, lock=False)
    paths = []
    try:
        with env.begin(write=False) as txn:
            for key, value in txn.cursor():
                name = key.decode("ascii")
                rel = os.path.join(*([] if flat else list(name[:6])), f"{name}.{ext}")
                os.makedirs(os.path.dirname(os.path.join(out_dir, rel)), exist_ok=True)
                with open(os.path.join(out_dir, rel), "wb") as f:
                    f.write(value)
                paths.append(rel)
    finally:
        env.close()
    return paths
