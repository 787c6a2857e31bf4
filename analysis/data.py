"""Inputs of the analysis commands: a folder of images, or any of the project's DataModules.

``--data`` takes either a folder (searched recursively for .png/.jpg/.jpeg/.bmp/.webp/
.tif/.tiff, in sorted order) or a DataModule, named by class (``DigitsDataModule``) or by
dotted path (``datamodules.DigitsDataModule``), with ``--data-args`` as JSON for its
``__init__`` (e.g. ``'{"resolution": 8}'``) and ``--split`` (train/val/test).
DataModule images in [-1, 1] are mapped back to 8-bit pixels: round((x + 1) * 127.5).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from typing import Any, Iterator, Optional

import numpy as np
import torch

from analysis.cli import UsageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "add_data_arguments",
    "image_files",
    "read_image",
    "iter_uint8_images",
    "load_uint8_images",
    "load_npy",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def add_data_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--data``, ``--data-args``, ``--split`` and ``--limit``."""
    parser.add_argument(
        "--data",
        required=required,
        metavar="FOLDER|DATAMODULE",
        help="a folder of images, or a DataModule class (e.g. DigitsDataModule)",
    )
    parser.add_argument("--data-args", default="{}", metavar="JSON", help="DataModule __init__ arguments as JSON")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"), help="DataModule split")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images")


def image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursive), sorted."""
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 [H, W] (grey) or [H, W, C]; a clear error if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    if array.dtype != np.uint8:
        raise UsageError(f"image {path} has {array.dtype} pixels; only 8-bit images are supported")
    return array


def _datamodule(name: str, data_args: str):
    try:
        kwargs: dict[str, Any] = json.loads(data_args)
    except json.JSONDecodeError as err:
        raise UsageError(f"--data-args is not valid JSON ({err}): {data_args!r}") from None
    if not isinstance(kwargs, dict):
        raise UsageError(f"--data-args must be a JSON object, got {data_args!r}")
    module_name, _, class_name = name.rpartition(".")
    try:
        module = importlib.import_module(module_name or "datamodules")
        cls = getattr(module, class_name)
    except (ImportError, AttributeError):
        raise UsageError(
            f"--data {name}: no such folder, and no DataModule of that name "
            "(give a folder of images, or a class such as DigitsDataModule or datamodules.DigitsDataModule)"
        ) from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise UsageError(f"--data-args for {class_name}: {err}") from None


def iter_uint8_images(
    data: str, split: str = "train", limit: Optional[int] = None, data_args: str = "{}"
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, uint8 image)`` from a folder or a DataModule split."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    if os.path.isdir(data):
        files = image_files(data)
        if not files:
            raise UsageError(f"--data {data}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        for path in files[:limit]:
            yield os.path.relpath(path, data), read_image(path)
        return
    if os.path.exists(data):
        raise UsageError(f"--data {data}: expected a folder of images or a DataModule name, got a file")
    dm = _datamodule(data, data_args)
    dm.setup("fit" if split in ("train", "val") else "test")
    dataset = getattr(dm, f"{split}_dataloader")().dataset
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(count):
        item = dataset[i]
        x = item[0] if isinstance(item, (tuple, list)) else item
        pixels = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        array = pixels.permute(1, 2, 0).numpy() if pixels.ndim == 3 else pixels.numpy()
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        yield f"{split}[{i}]", np.ascontiguousarray(array)


def load_uint8_images(
    data: str, split: str = "train", limit: Optional[int] = None, data_args: str = "{}"
) -> list[tuple[str, np.ndarray]]:
    """All of :func:`iter_uint8_images` as a list."""
    return list(iter_uint8_images(data, split, limit, data_args))


def load_npy(path: str, option: str, expected: str) -> np.ndarray:
    """A .npy file of real numbers as float64, or a UsageError naming ``option`` and ``path``.

    ``expected`` says what the file should hold (e.g. "probabilities", "an [N, D] array").
    """
    if not os.path.isfile(path):
        raise UsageError(f"{option} {path}: no such file (expected a .npy file holding {expected})")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"{option} {path}: cannot read it as a .npy array ({err})") from None
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UsageError(f"{option} {path}: expected real numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)
