"""Rate-distortion of GANZ against the baselines at equal size (GANZ Fig. 2, 4, 5).

For each image set (train, test, out-of-domain), each GANZ mode (ratio) and each latent
dtype, the images are compressed to real ``.ganz`` files; then, at the same size:

* the paper's wavelet baseline at the same degrees of freedom (M = d_c coefficients,
  :mod:`lightning_modules.ganz.compression_baselines`), placed on the bits-per-pixel axis by
  :func:`~lightning_modules.ganz.compression_baselines.wavelet_bytes`;
* JPEG, WebP, JPEG-XL and AVIF, each tuned to the byte size of the GANZ file.

Every method's output is an 8-bit image (GANZ's decoded image is rounded to 8 bits as a
PNG would be), scored against the 8-bit original with PSNR and SSIM
(:mod:`lightning_modules.reconstruction`).  :func:`run` returns one row per (set, method,
setting) with mean bytes, bits per pixel, PSNR, SSIM; :func:`write_outputs` writes them
as CSV and markdown, the PSNR-vs-bpp plot and a grid of originals and reconstructions.

Out-of-domain images come from ``skimage.data`` (real photographs shipped with
scikit-image, no download), centre-cropped to a square and resized to the model's shape.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lightning_modules.ganz.codec import GanzCodec, from_uint8, to_uint8
from lightning_modules.ganz.compression_baselines import (
    available_codecs,
    codec_at_budget,
    wavelet_bytes,
    wavelet_compress,
    wavelet_keep_for,
)
from lightning_modules.ganz.inversion import InversionConfig
from lightning_modules.ganz.latent import LatentMode
from lightning_modules.reconstruction import psnr, ssim

__all__ = ["OOD_IMAGES", "ImageSet", "fit_to_shape", "ood_images", "run", "write_outputs"]

#: the scikit-image photographs used as out-of-domain images by default.
OOD_IMAGES = ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "moon", "immunohistochemistry")


@dataclass
class ImageSet:
    """A named set of 8-bit images in the model's shape ([H, W] grey or [H, W, C])."""

    name: str
    labels: list[str]
    images: list[np.ndarray]


def fit_to_shape(image: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """An 8-bit image centre-cropped to a square, resized (Lanczos) and converted to ``shape`` (C, H, W)."""
    from PIL import Image

    c, h, w = shape
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected 8-bit pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    side = min(array.shape[:2])
    top, left = (array.shape[0] - side) // 2, (array.shape[1] - side) // 2
    pil = Image.fromarray(np.ascontiguousarray(array[top : top + side, left : left + side]))
    pil = pil.convert("L" if c == 1 else "RGB")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.LANCZOS)
    return np.ascontiguousarray(np.asarray(pil))


def ood_images(shape: tuple[int, int, int], names: Sequence[str] = OOD_IMAGES) -> ImageSet:
    """scikit-image's sample photographs, fitted to ``shape``: the out-of-domain set."""
    import skimage.data

    images = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        if loader is None or name.startswith("_"):
            raise ValueError(f"skimage.data has no image {name!r}")
        try:
            image = np.asarray(loader())
        except Exception as err:  # noqa: BLE001 - e.g. an image that scikit-image would have to download
            raise ValueError(f"skimage.data.{name}() cannot be loaded here: {err}") from None
        if image.dtype != np.uint8:
            raise ValueError(f"skimage.data.{name}() is not an 8-bit image ({image.dtype})")
        images.append(fit_to_shape(image, shape))
    return ImageSet("ood", list(names), images)


def _batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.stack([from_uint8(im) for im in images])


def _scores(decoded: Sequence[np.ndarray], originals: torch.Tensor) -> tuple[float, float]:
    rec = _batch(decoded)
    return float(psnr(rec, originals, "mean")), float(ssim(rec, originals, "mean"))


def run(
    codec: GanzCodec,
    sets: Sequence[ImageSet],
    modes: Sequence[LatentMode],
    dtypes: Sequence[str] = ("float32", "uint8"),
    config: InversionConfig = InversionConfig(),
    codecs: Optional[Sequence[str]] = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[list[dict], dict[str, dict[str, list[np.ndarray]]]]:
    """The rate-distortion table, and the decoded 8-bit images per set and method (for grids).

    Rows have: ``set``, ``method`` (``GANZ``, ``wavelet``, or a codec), ``setting``, ``mode``,
    ``dtype``, ``d_c``, ``ratio_dof`` (H*W*C / degrees of freedom), ``bytes`` (mean),
    ``bpp``, ``psnr``, ``ssim``, ``over_budget`` (images whose codec stream exceeds the
    GANZ file's size) and ``images``.
    """
    codecs = available_codecs() if codecs is None else available_codecs(tuple(codecs))
    c, h, w = codec.image_shape
    pixels = h * w
    rows: list[dict] = []
    decoded: dict[str, dict[str, list[np.ndarray]]] = defaultdict(dict)
    for image_set in sets:
        originals = _batch(image_set.images)
        decoded[image_set.name]["original"] = list(image_set.images)
        for mode in modes:
            zs, errors = [], []
            for start in range(0, len(originals), batch_size):
                z, err = codec.fit(originals[start : start + batch_size], mode, seed, config, progress)
                zs.append(z)
                errors.append(err)
            z = torch.cat(zs)
            d_c = z.shape[1]
            for dtype in dtypes:
                files, images = [], []
                for i in range(len(z)):
                    data, _, image = codec.encode(z[i], mode, dtype, seed)
                    files.append(len(data))
                    images.append(to_uint8(image))
                budget = int(np.mean(files))
                p, s = _scores(images, originals)
                rows.append(
                    dict(
                        set=image_set.name,
                        method="GANZ",
                        setting=f"{mode} {dtype}",
                        mode=str(mode),
                        dtype=dtype,
                        d_c=d_c,
                        ratio_dof=c * pixels / d_c,
                        bytes=float(np.mean(files)),
                        bpp=8 * float(np.mean(files)) / pixels,
                        psnr=p,
                        ssim=s,
                        over_budget=0,
                        images=len(images),
                    )
                )
                decoded[image_set.name][f"GANZ {mode} {dtype}"] = images
                bar = tqdm(codecs, desc=f"{image_set.name}: codecs at {budget} B", disable=not progress, leave=False)
                for name in bar:
                    results = [codec_at_budget(im, name, budget) for im in image_set.images]
                    p, s = _scores([r.decoded for r in results], originals)
                    sizes = [r.num_bytes for r in results]
                    rows.append(
                        dict(
                            set=image_set.name,
                            method=name,
                            setting=f"<= {budget} B (q {min(r.quality for r in results)}-"
                            f"{max(r.quality for r in results)})",
                            mode=str(mode),
                            dtype=dtype,
                            d_c=None,
                            ratio_dof=None,
                            bytes=float(np.mean(sizes)),
                            bpp=8 * float(np.mean(sizes)) / pixels,
                            psnr=p,
                            ssim=s,
                            over_budget=sum(r.over_budget for r in results),
                            images=len(results),
                        )
                    )
                    decoded[image_set.name][f"{name} {mode} {dtype}"] = [r.decoded for r in results]
            # The paper's wavelet baseline: the same degrees of freedom as the latent.
            keep = wavelet_keep_for(d_c, c)
            wave = [
                to_uint8(torch.from_numpy(wavelet_compress(from_uint8(im).numpy(), keep)[0]).float())
                for im in image_set.images
            ]
            p, s = _scores(wave, originals)
            size = wavelet_bytes(keep, c, h, w)
            rows.append(
                dict(
                    set=image_set.name,
                    method="wavelet",
                    setting=f"db4, {keep} coeff./channel",
                    mode=str(mode),
                    dtype="float32",
                    d_c=keep * c,
                    ratio_dof=c * pixels / (keep * c),
                    bytes=float(size),
                    bpp=8 * size / pixels,
                    psnr=p,
                    ssim=s,
                    over_budget=0,
                    images=len(wave),
                )
            )
            decoded[image_set.name][f"wavelet, {keep * c} coeff."] = wave
    return rows, decoded


COLUMNS = ("set", "method", "setting", "d_c", "ratio_dof", "bytes", "bpp", "psnr", "ssim", "over_budget", "images")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.4f}"
    return str(value)


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(row.get(k)) for k in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(
    rows: Sequence[dict], decoded: dict[str, dict[str, list[np.ndarray]]], out_dir: str, grid_images: int = 6
) -> dict[str, str]:
    """``rd.csv``, ``rd.md``, ``rd_psnr_bpp.png`` and ``rd_grid_<set>.png`` in ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = {"csv": os.path.join(out_dir, "rd.csv"), "md": os.path.join(out_dir, "rd.md")}
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS) + ["mode", "dtype"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in writer.fieldnames})
    with open(paths["md"], "w") as f:
        f.write(markdown_table(rows) + "\n")

    sets = list(dict.fromkeys(r["set"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 3.8), squeeze=False)
    for ax, name in zip(axes[0], sets):
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            if r["set"] != name:
                continue
            label = f"GANZ {r['dtype']}" if r["method"] == "GANZ" else r["method"]
            if r["method"] not in ("GANZ", "wavelet") and r["over_budget"]:
                continue  # a codec that could not reach the budget is not a point at that rate
            series[label].append((r["bpp"], r["psnr"]))
        for label, points in sorted(series.items()):
            points = sorted(set(points))
            style = "o-" if label.startswith("GANZ") else ("s--" if label == "wavelet" else ".:")
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label, markersize=4)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths["plot"] = os.path.join(out_dir, "rd_psnr_bpp.png")
    fig.savefig(paths["plot"], dpi=110)
    plt.close(fig)

    from PIL import Image, ImageDraw

    for name, methods in decoded.items():
        ganz = [k for k in methods if k.startswith("GANZ")]
        dtype = "float32" if any(k.endswith("float32") for k in ganz) else (ganz[0].split()[-1] if ganz else "")
        keys = ["original"] + [k for k in ganz if k.endswith(dtype)]
        keys += [k for k in methods if k.startswith("wavelet")]
        count = min(grid_images, len(methods["original"]))
        tiles = []
        for key in keys:
            row = [methods[key][i] for i in range(count)]
            row = [np.repeat(t[:, :, None], 3, axis=2) if t.ndim == 2 else t for t in row]
            tiles.append(np.concatenate(row, axis=1))
        grid = np.concatenate(tiles, axis=0)
        label_width = 190
        canvas = Image.new("RGB", (grid.shape[1] + label_width, grid.shape[0]), "white")
        canvas.paste(Image.fromarray(grid), (label_width, 0))
        draw = ImageDraw.Draw(canvas)
        tile_h = grid.shape[0] // len(keys)
        for i, key in enumerate(keys):
            draw.text((4, i * tile_h + tile_h // 2 - 5), key, fill="black")
        paths[f"grid_{name}"] = os.path.join(out_dir, f"rd_grid_{name}.png")
        canvas.save(paths[f"grid_{name}"])
    return paths
