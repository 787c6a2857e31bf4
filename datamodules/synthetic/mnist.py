"""A tiny MNIST in the official IDX format, where torchvision keeps it: ``root/MNIST/raw/``.

IDX: big-endian int32 magic (2051 images, 2049 labels), big-endian int32 dimensions
(n, 28, 28 / n), then unsigned bytes; optionally gzipped as distributed (``*.gz``).
"""

from __future__ import annotations

import gzip as gz
import os

import numpy as np

from datamodules.synthetic.images import synthetic_images

__all__ = ["idx_bytes", "write_mnist"]


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """``array`` (uint8) as an IDX file: magic, dimensions, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_mnist(
    root: str, train_count: int = 100, test_count: int = 20, gzip: bool = True, seed: int = 0, folder: str = "MNIST"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``train-``/``t10k-`` ``images-idx3-ubyte``/``labels-idx1-ubyte`` (``.gz`` with ``gzip``).

    ``folder`` ``FashionMNIST`` gives Fashion-MNIST's layout.  Returns ``{"train": (images,
    labels), "test": (images, labels)}``, images uint8 [N, 28, 28] (dark background, as
    MNIST) and labels int64 [N], in file order.
    """
    raw = os.path.join(root, folder, "raw")
    os.makedirs(raw, exist_ok=True)
    out = {}
    for number, (split, prefix, count) in enumerate([("train", "train", train_count), ("test", "t10k", test_count)]):
        images, labels = synthetic_images(count, 28, 28, channels=1, num_classes=10, seed=seed * 100 + number)
        images = images[..., 0]
        images = np.where(images < 128, 0, images).astype(np.uint8)  # black background, as MNIST
        order = np.random.default_rng(seed * 100 + number).permutation(count)
        images, labels = images[order], labels[order]
        for name, array, magic in [
            (f"{prefix}-images-idx3-ubyte", images, 2051),
            (f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), 2049),
        ]:
            data = idx_bytes(array, magic)
            path = os.path.join(raw, name + (".gz" if gzip else ""))
            with gz.open(path, "wb") if gzip else open(path, "wb") as f:
                f.write(data)
        out[split] = (images, labels)
    return out
