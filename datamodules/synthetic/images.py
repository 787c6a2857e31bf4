"""Synthetic images, and a folder or zip of them in StyleGAN's dataset-tool layout.

The images have a class-dependent structure (stripes whose orientation and colour depend
on the label, plus noise), so a classifier can learn them and flips/crops are visible.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["dataset_tool_files", "encode", "synthetic_images", "write_image_folder", "write_image_zip"]


def synthetic_images(
    count: int, height: int, width: Optional[int] = None, channels: int = 3, num_classes: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images [N, H, W, C] (C = channels) and their labels [N] (int64).

    Image ``i`` has label ``i % num_classes``: stripes at an angle and a tint set by the
    label, a random phase, and mild noise.
    """
    width = height if width is None else width
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % num_classes
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.pi * labels / num_classes
    phase = rng.uniform(0, 2 * np.pi, size=count).astype(np.float32)
    period = max(4.0, min(height, width) / 4)
    wave = np.sin(
        (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy) * (2 * np.pi / period)
        + phase[:, None, None]
    )
    tint = 0.5 + 0.5 * np.stack([np.cos(2 * np.pi * (labels / num_classes + k / 3)) for k in range(3)], axis=-1).astype(
        np.float32
    )
    base = 0.5 + 0.35 * wave[..., None] * tint[:, None, None, :]
    base = base + rng.normal(0, 0.04, size=base.shape).astype(np.float32)
    images = np.clip(base * 255 + 0.5, 0, 255).astype(np.uint8)
    if channels == 1:
        images = images.mean(axis=-1, keepdims=True).astype(np.uint8)
    return images, labels


def encode(image: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """One uint8 image [H, W, C] (C 1 or 3) as PNG / JPEG / WebP bytes (Pillow)."""
    from PIL import Image

    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    kind = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}[fmt.lower()]
    pil.save(buffer, kind, **({"quality": quality} if kind != "PNG" else {}))
    return buffer.getvalue()


def _tool_names(count: int, ext: str) -> list[str]:
    # StyleGAN's dataset_tool.py layout: 1,000 images per folder, img{index:08d}.png.
    return [f"{i // 1000:05d}/img{i:08d}.{ext}" for i in range(count)]


def dataset_tool_files(
    count: int,
    size: int = 32,
    channels: int = 3,
    fmt: str = "png",
    labels: bool = False,
    num_classes: int = 10,
    seed: int = 0,
    names: Optional[Sequence[str]] = None,
) -> tuple[list[str], list[bytes], Optional[list[list[Any]]]]:
    """``count`` encoded images in the dataset tool's layout: their relative names, bytes and labels.

    Names default to the tool's nested ``{i // 1000:05d}/img{i:08d}.<fmt>``; the labels are
    ``dataset.json``'s ``[[name, label], ...]`` with ``labels``, else ``None``.
    """
    images, classes = synthetic_images(count, size, channels=channels, num_classes=num_classes, seed=seed)
    names = list(names) if names is not None else _tool_names(count, fmt)
    meta = [[n, int(c)] for n, c in zip(names, classes)] if labels else None
    return names, [encode(image, fmt) for image in images], meta


def write_image_folder(root: str, count: int, size: int = 32, **options: Any) -> list[str]:
    """Write ``count`` images under ``root`` in the dataset tool's nested layout; the relative names.

    ``options`` are :func:`dataset_tool_files`' (``channels``, ``fmt``, ``labels``, ``num_classes``,
    ``seed``, ``names``).  With ``labels``, also write ``dataset.json`` (``{"labels": [[name, label], ...]}``).
    """
    names, files, meta = dataset_tool_files(count, size, **options)
    for name, data in zip(names, files):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    if meta is not None:
        with open(os.path.join(root, "dataset.json"), "w") as f:
            json.dump({"labels": meta}, f)
    return names


def write_image_zip(path: str, count: int, size: int = 32, **options: Any) -> list[str]:
    """Write a zip as ``dataset_tool.py --dest=*.zip`` does (stored, not deflated: PNGs are compressed).

    ``options`` as :func:`write_image_folder`'s; the zip always holds a ``dataset.json``
    (``{"labels": null}`` without labels).
    """
    names, files, meta = dataset_tool_files(count, size, **options)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in zip(names, files):
            archive.writestr(name, data)
        archive.writestr("dataset.json", json.dumps({"labels": meta}))
    return names
