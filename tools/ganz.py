"""``python -m tools ganz {compress,decompress,rd,cs,dt-sweep}``: GANZ as a codec.

    compress    images -> .ganz files (GANZ Eq. 1); prints bytes, bits per pixel, PSNR and SSIM per image
    decompress  .ganz files -> PNG images (G(z*)), with the G or G_ema each file names; checks format,
                CRC and generator hash
    rd          rate-distortion of GANZ vs wavelets and JPEG/WebP/JPEG-XL/AVIF at equal size
                (train, test and out-of-domain images): CSV, markdown, PSNR-vs-bpp plot, grids
    cs          compressive sensing from M Gaussian measurements (Sec. 4, Fig. 8)
    dt-sweep    GANZ Fig. 2: PSNR against the training latent d_t at one compression ratio (default 10),
                with wavelets at the same degrees of freedom, mean +- std over seeds; from checkpoints
                (--ckpts) or training them first (--configs, like the sweeps)

Every command takes ``--ckpt``, a checkpoint of :class:`~lightning_modules.ganz.GANZ`
(``python train.py fit -c configs/ganz/<config>.yaml``).  Images come as files or from
``--data`` (a folder, or a DataModule such as ``DigitsDataModule`` with ``--data-args``)
and are centre-cropped and resized to the generator's shape.  Errors a user can act on
(a corrupted, truncated or foreign ``.ganz`` file, a generator mismatch, a missing input)
print ``error: ...`` and exit with status 2, writing nothing.

(Formerly ``python -m lightning_modules.ganz``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import time
from typing import Any, Optional, Sequence

import numpy as np
import torch

from analysis.cli import format_table
from analysis.data import add_data_arguments, iter_uint8_images, read_image
from core.errors import UserError, check_checkpoint_file
from lightning_modules.ganz import rate_distortion as rd
from lightning_modules.ganz.codec import (
    GanzCodec,
    GeneratorMismatchError,
    checkpoint_generators,
    from_uint8,
    to_uint8,
)
from lightning_modules.ganz.format import GanzFormatError, dequantize, read_ganz, write_atomic
from lightning_modules.ganz.inversion import InversionConfig
from lightning_modules.ganz.latent import LatentMode
from lightning_modules.ganz.rate_distortion import OOD_IMAGES, fit_to_shape, ood_images
from lightning_modules.ganz.sensing import BORA_BEST_MSE, recover
from lightning_modules.reconstruction import psnr, ssim
from tools import sweep

__all__ = ["add_command"]


# ---------------------------------------------------------------------------------------------- arguments
def _inversion_arguments(parser: argparse.ArgumentParser, steps: int = 500) -> None:
    group = parser.add_argument_group("latent optimisation (GANZ Eq. 1)")
    group.add_argument("--steps", type=int, default=steps, help="optimiser steps per restart (default %(default)s)")
    group.add_argument("--lr", type=float, default=0.05, help="learning rate (default %(default)s)")
    group.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    group.add_argument("--restarts", type=int, default=1, help="initialisations per image; the best is kept")
    group.add_argument("--init", choices=("zeros", "gaussian", "uniform"), default="gaussian")
    group.add_argument("--init-scale", type=float, default=0.1, help="scale of the random initialisation")
    group.add_argument("--init-seed", type=int, default=0, help="seed of the initialisations")
    group.add_argument("--batch-size", type=int, default=64, help="images optimised together")


def _common(parser: argparse.ArgumentParser, choose_generator: bool = True) -> None:
    parser.add_argument("--ckpt", required=True, help="GANZ checkpoint (runs/ganz/.../checkpoints/last.ckpt)")
    parser.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    if choose_generator:  # decompress takes the network each file names
        parser.add_argument("--raw-generator", action="store_true",
                            help="use the trained G, not its EMA (recorded in every .ganz file)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _data(parser: argparse.ArgumentParser) -> None:

    add_data_arguments(parser, required=False)


def _config(args: argparse.Namespace) -> InversionConfig:
    try:
        return InversionConfig(
            steps=args.steps,
            lr=args.lr,
            optimizer=args.optimizer,
            momentum=args.momentum,
            restarts=args.restarts,
            init=args.init,
            init_scale=args.init_scale,
            seed=args.init_seed,
        )
    except ValueError as err:
        raise UserError(str(err)) from None


def _mode(text: str) -> LatentMode:
    try:
        return LatentMode.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _codec(args: argparse.Namespace):

    check_checkpoint_file(args.ckpt, "--ckpt", howto="python train.py fit -c configs/ganz/<config>.yaml")
    return GanzCodec.from_checkpoint(args.ckpt, ema=not args.raw_generator, device=args.device)


def _inputs(args: argparse.Namespace, shape: tuple[int, int, int]) -> list[tuple[str, np.ndarray]]:
    """(name, 8-bit image in the model's shape) from the positional files and/or --data."""

    found = []
    for path in getattr(args, "images", None) or []:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such image file")
        found.append((os.path.splitext(os.path.basename(path))[0], fit_to_shape(read_image(path), shape)))
    if getattr(args, "data", None):
        for name, image in iter_uint8_images(args.data, args.split, args.limit, args.data_args):
            label = name.replace("[", "_").replace("]", "").replace("/", "_")
            found.append((os.path.splitext(label)[0], fit_to_shape(image, shape)))
    if not found:
        raise UserError("no images: give image files, or --data FOLDER|DATAMODULE")
    return found


def _ood(shape: tuple[int, int, int], names: Sequence[str]):

    try:
        return ood_images(shape, names)
    except ValueError as err:
        raise UserError(f"--ood: {err}") from None


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- commands
def cmd_compress(args: argparse.Namespace) -> None:

    codec = _codec(args)
    items = _inputs(args, codec.image_shape)
    config = _config(args)
    os.makedirs(args.out_dir, exist_ok=True)
    c, h, w = codec.image_shape
    rows = []
    start = time.time()
    for first in range(0, len(items), args.batch_size):
        chunk = items[first : first + args.batch_size]
        originals = torch.stack([from_uint8(image) for _, image in chunk])
        z, mse = codec.fit(originals, args.mode, args.seed, config, progress=not args.quiet)
        for i, (name, _) in enumerate(chunk):
            data, header, image = codec.encode(z[i], args.mode, args.dtype, args.seed)
            path = os.path.join(args.out_dir, f"{name}.ganz")
            write_atomic(path, data)
            decoded = from_uint8(to_uint8(image))[None]  # the 8-bit image decompress writes
            rows.append(
                dict(
                    file=path,
                    bytes=len(data),
                    bpp=8 * len(data) / (h * w),
                    ratio_dof=c * h * w / header.d_c,
                    psnr=float(psnr(decoded, originals[i : i + 1])[0]),
                    ssim=float(ssim(decoded, originals[i : i + 1])[0]),
                )
            )
    print(
        f"GANZ compress: {len(rows)} image(s), {c}x{h}x{w}, mode {args.mode}, d_c = {header.d_c}, "
        f"latent {args.dtype}, {config.steps} {config.optimizer} steps x {config.restarts} restart(s), "
        f"{time.time() - start:.1f} s"
    )
    print(format_table(("file", "bytes", "bpp", "ratio_dof", "psnr", "ssim"), rows))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("bytes", "bpp", "psnr", "ssim")}
    print(
        f"mean: {mean['bytes']:.1f} bytes, {mean['bpp']:.3f} bpp, PSNR {mean['psnr']:.2f} dB, "
        f"SSIM {mean['ssim']:.4f}"
    )


def cmd_decompress(args: argparse.Namespace) -> None:

    if args.output and len(args.files) != 1:
        raise UserError("--output names one file: give one .ganz file, or use --out-dir")
    check_checkpoint_file(args.ckpt, "--ckpt", howto="python train.py fit -c configs/ganz/<config>.yaml")
    generators = checkpoint_generators(args.ckpt)
    codecs: dict[str, GanzCodec] = {}
    rows = []
    for path in args.files:
        header, payload = read_ganz(path)
        # The network the file names (G or G_ema); a version-1 file: the one whose hash matches.
        codec = GanzCodec.for_file(header, generators, args.device)
        codec = codecs.setdefault(codec.weights, codec)
        codec.check_header(header, path)
        image = codec.reconstruct(header, dequantize(payload, header))
        target = args.output or os.path.join(args.out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        if target.endswith(".npy"):
            buffer = io.BytesIO()
            np.save(buffer, image.numpy())
            write_atomic(target, buffer.getvalue())
        else:
            write_atomic(target, _png_bytes(to_uint8(image)))
        _, h, w = header.image_shape
        size = os.path.getsize(path)
        rows.append(
            dict(
                file=path,
                output=target,
                mode=header.mode,
                d_c=header.d_c,
                dtype=header.dtype,
                weights=codec.weights,
                bytes=size,
                bpp=8 * size / (h * w),
            )
        )
    print(format_table(("file", "output", "mode", "d_c", "dtype", "weights", "bytes", "bpp"), rows))


def _image_sets(args: argparse.Namespace, shape) -> list:
    """The ``--data`` splits and the ``--ood`` images, fitted to the generator's image shape."""

    sets = []
    if args.data:
        for split in args.splits:
            images = list(iter_uint8_images(args.data, split, args.limit, args.data_args))
            sets.append(rd.ImageSet(split, [k for k, _ in images], [rd.fit_to_shape(im, shape) for _, im in images]))
    if args.ood:
        sets.append(_ood(shape, args.ood))
    return sets


def cmd_rd(args: argparse.Namespace) -> None:

    codec = _codec(args)
    sets = _image_sets(args, codec.image_shape)
    if not sets:
        raise UserError("no images: give --data (train/test splits) and/or --ood names")
    rows, decoded = rd.run(
        codec,
        sets,
        args.modes,
        args.dtypes,
        _config(args),
        codecs=args.codecs,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    paths = rd.write_outputs(rows, decoded, args.out_dir, args.grid_images)
    print(rd.markdown_table(rows))
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))


def cmd_cs(args: argparse.Namespace) -> None:

    codec = _codec(args)
    shape = codec.image_shape
    n = int(np.prod(shape))
    sets = _image_sets(args, shape)
    if args.from_generator:
        g = torch.Generator().manual_seed(args.seed + 1)
        z = torch.rand(args.from_generator, codec.generator.latent_dim, generator=g) * 2 - 1
        with torch.no_grad():
            fake = codec.generator(z.to(codec.device)).clamp(-1, 1).cpu()
        sets.append(rd.ImageSet("generated", [f"G(z_{i})" for i in range(len(z))], [to_uint8(x) for x in fake]))
    if not sets:
        raise UserError("no images: give --data, --ood and/or --from-generator N")
    net = codec.latent_generator(args.mode, args.seed)
    rows, grid_rows = [], []
    for m in args.measurements:
        if m >= n:
            raise UserError(f"--measurements {m}: not fewer than the N = {n} pixel values")
        for image_set in sets:
            x = torch.stack([from_uint8(im) for im in image_set.images])
            result = recover(net, x, m, args.seed, _config(args), progress=not args.quiet)
            rec8 = torch.stack([from_uint8(to_uint8(im)) for im in result.reconstruction])
            rows.append(
                dict(
                    set=image_set.name,
                    M=m,
                    M_over_N=m / n,
                    psnr=float(result.psnr.mean()),
                    psnr_8bit=float(psnr(rec8, x).mean()),
                    mse_unit=float(result.mse_unit.mean()),
                    mse_pm1=float(result.mse_pm1.mean()),
                    below_bora=int((result.mse_unit < BORA_BEST_MSE).sum()),
                    images=len(x),
                )
            )
            recovered = [to_uint8(r) for r in result.reconstruction]
            grid_rows.append((f"{image_set.name} M={m}", image_set.images, recovered))
    print(
        f"Compressive sensing (GANZ Sec. 4): N = {n}, mode {args.mode} (d_c = {net.d_c}), Gaussian A ~ N(0, 1/M), "
        f"seed {args.seed}"
    )
    columns = ("set", "M", "M_over_N", "psnr", "psnr_8bit", "mse_unit", "mse_pm1", "below_bora", "images")
    print(format_table(columns, rows))
    print(
        f"Bora et al.'s best per-pixel MSE is >= {BORA_BEST_MSE} (GANZ Sec. 4; PSNR 16.02 dB on [0, 1]); below_bora "
        "counts images with mse_unit under it.  mse_unit: images on [0, 1]; mse_pm1: on [-1, 1] (4x)."
    )
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        for label, originals, recs in grid_rows:
            count = min(args.grid_images, len(originals))
            top = np.concatenate([_rgb(o) for o in originals[:count]], axis=1)
            bottom = np.concatenate([_rgb(r) for r in recs[:count]], axis=1)
            path = os.path.join(args.out_dir, f"cs_{label.replace(' ', '_').replace('=', '')}.png")
            write_atomic(path, _png_bytes(np.concatenate([top, bottom], axis=0)))
            print(f"grid: {path}  (top: originals, bottom: recovered)")


# ---------------------------------------------------------------------------------------------- dt-sweep (Fig. 2)
#: the paper's Fig. 2: "varying training latent dimensions of GANZ with a fixed compression ratio of 10".
FIG2_RATIO = 10.0
#: per-run columns (``dt_sweep_runs.csv``); a point is (set, d_t) and its runs are its seeds.
DT_RUN_COLUMNS = (
    "set", "d_t", "seed", "ratio_dof", "d_c", "bytes", "bpp", "psnr", "ssim", "wavelet_psnr", "wavelet_ssim",
    "wavelet_bpp", "images", "ckpt",
)  # fmt: skip
DT_KEYS = ("set", "d_t", "ratio_dof", "d_c", "bpp")
DT_METRICS = ("psnr", "ssim", "wavelet_psnr", "wavelet_ssim")
_SEED_IN_PATH = re.compile(r"seed[_-]?(\d+)")


def dt_fit_dir(save_dir: str, name: str, config: str, seed: int) -> str:
    """Where ``dt-sweep --configs`` trains ``config`` with ``seed``: ``<save-dir>/<name>/<config stem>/seed<S>/fit``."""
    stem = os.path.splitext(os.path.basename(config))[0]
    return os.path.join(save_dir, name, stem, f"seed{seed}", "fit")


def _dt_runs_from_configs(args: argparse.Namespace) -> tuple[list[tuple[str, int]], int]:
    """Train (or find) every config x seed; the (checkpoint, seed) pairs and the exit status."""
    for config in args.configs:
        sweep.check_config(config)
    points = [(config, seed) for seed in sweep.seed_list(args) for config in args.configs]

    def fit(point: tuple[str, int]) -> int:
        config, seed = point
        fit_dir = dt_fit_dir(args.save_dir, args.name, config, seed)
        run_name = os.path.relpath(os.path.dirname(fit_dir), args.save_dir)
        extra = list(args.train_args) + sweep.seed_override(seed)
        command = sweep.train_command("fit", config, [], args.save_dir, run_name, "fit", extra)
        return sweep.run_fit(command, fit_dir, args.force, args.dry_run)

    if not args.merge_only:
        for point in sweep.select_points(points, args.array_index):
            code = fit(point)
            if code:
                return [], code
    found = []
    for config, seed in points:
        last = os.path.join(dt_fit_dir(args.save_dir, args.name, config, seed), "checkpoints", "last.ckpt")
        if os.path.isfile(last):
            found.append((last, seed))
        elif not args.dry_run and args.array_index is None:
            raise UserError(f"{last}: no checkpoint (the fit of {config} with seed {seed} did not finish)")
    return found, 0


def _dt_runs_from_checkpoints(paths: Sequence[str]) -> list[tuple[str, Optional[int]]]:
    """(checkpoint, seed) for ``--ckpts``: the seed is ``seed<S>`` in the path, else numbered per d_t later."""
    for path in paths:
        check_checkpoint_file(path, "--ckpts", howto="python train.py fit -c configs/ganz/celeba128_dt64.yaml")
    return [(path, int(m.group(1)) if (m := _SEED_IN_PATH.search(path)) else None) for path in paths]


def dt_sweep_runs(
    checkpoints: Sequence[tuple[str, Optional[int]]],
    args: argparse.Namespace,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per (checkpoint, image set): GANZ at ``random_linear(--ratio)`` and wavelets at the same d_c.

    GANZ's latents are float32 (the paper's files); its PSNR and SSIM are those of the decoded
    8-bit images (:func:`lightning_modules.ganz.rate_distortion.run`).
    """
    mode = LatentMode("random_linear", args.ratio)
    config = _config(args)
    runs: list[dict[str, Any]] = []
    sets, shape, numbered = None, None, {}
    for path, seed in checkpoints:
        codec = GanzCodec.from_checkpoint(path, ema=not args.raw_generator, device=args.device)
        if shape is None:
            shape = codec.image_shape
            sets = _image_sets(args, shape)
            if not sets:
                raise UserError("no images: give --data (train/test splits) and/or --ood names")
        elif codec.image_shape != shape:
            raise UserError(f"{path}: makes {codec.image_shape} images, the first checkpoint {shape}")
        d_t = int(codec.generator.latent_dim)
        if seed is None:
            seed = numbered[d_t] = numbered.get(d_t, -1) + 1
        rows, _ = rd.run(codec, sets, [mode], ["float32"], config, codecs=[], seed=args.seed,
                         batch_size=args.batch_size, progress=progress)  # fmt: skip
        for image_set in sets:
            ganz = next(r for r in rows if r["set"] == image_set.name and r["method"] == "GANZ")
            wave = next(r for r in rows if r["set"] == image_set.name and r["method"] == "wavelet")
            runs.append(
                dict(
                    set=image_set.name,
                    d_t=d_t,
                    seed=seed,
                    ratio_dof=ganz["ratio_dof"],
                    d_c=ganz["d_c"],
                    bytes=ganz["bytes"],
                    bpp=ganz["bpp"],
                    psnr=ganz["psnr"],
                    ssim=ganz["ssim"],
                    wavelet_psnr=wave["psnr"],
                    wavelet_ssim=wave["ssim"],
                    wavelet_bpp=wave["bpp"],
                    images=ganz["images"],
                    ckpt=path,
                )
            )
    seen: dict[tuple, str] = {}
    for run in runs:
        key = (run["set"], run["d_t"], run["seed"])
        if key in seen and seen[key] != run["ckpt"]:
            raise UserError(f"{run['ckpt']} and {seen[key]}: both d_t = {run['d_t']} with seed {run['seed']}")
        seen[key] = run["ckpt"]
    order = {name: i for i, name in enumerate(dict.fromkeys(r["set"] for r in runs))}
    return sorted(runs, key=lambda r: (order[r["set"]], r["d_t"], r["seed"]))


def plot_dt_sweep(points: Sequence[dict[str, Any]], path: str) -> str:
    """GANZ Fig. 2: PSNR against d_t (log2 axis), one panel per image set; GANZ mean +- std, wavelets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(p["set"] for p in points))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], sets):
        rows = sorted((p for p in points if p["set"] == name), key=lambda p: p["d_t"])
        d_t = [p["d_t"] for p in rows]
        std = [0.0 if math.isnan(p.get("psnr_std", math.nan)) else p["psnr_std"] for p in rows]
        ax.errorbar(d_t, [p["psnr_mean"] for p in rows], yerr=std, fmt="o-", capsize=3, label="GANZ")
        ax.plot(d_t, [p["wavelet_psnr_mean"] for p in rows], "s--", label="wavelet (db4), same d_c")
        ax.set_xscale("log", base=2)
        ax.set_xticks(d_t, [str(v) for v in d_t])
        ax.set_xlabel("training latent d_t")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{name}: ratio {rows[0]['ratio_dof']:.3g}, d_c = {rows[0]['d_c']}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cmd_dt_sweep(args: argparse.Namespace) -> int:
    """GANZ Fig. 2: train or take one run per d_t and seed, evaluate each at ``--ratio``, write table and figure."""
    if bool(args.ckpts) == bool(args.configs):
        raise UserError("give the trained checkpoints (--ckpts) or the configs to train (--configs), not both")
    if not args.ratio > 0:
        raise UserError(f"--ratio must be > 0, got {args.ratio}")
    if args.ckpts:
        if args.train_args:
            raise UserError("arguments after -- go to train.py, which --ckpts does not run")
        checkpoints = _dt_runs_from_checkpoints(args.ckpts)
    else:
        checkpoints, code = _dt_runs_from_configs(args)
        if code or args.dry_run or args.array_index is not None:
            return code  # a failed fit, or commands only, or one SLURM array task
    runs = dt_sweep_runs(checkpoints, args, progress=not args.quiet)
    out_dir = args.out_dir or os.path.join(args.save_dir, args.name)
    points = sweep.aggregate_seeds(runs, DT_KEYS, DT_METRICS)
    seeds = sorted({r["seed"] for r in runs})
    note = (
        f"GANZ Fig. 2: PSNR (dB) of the decoded 8-bit images against the training latent d_t at compression "
        f"ratio {args.ratio:g} (random_linear, float32 latent, {args.steps} {args.optimizer} steps), and "
        f"Daubechies-4 wavelets keeping the same number of coefficients; mean ± std over the runs (k) of "
        f"each d_t, seeds {', '.join(map(str, seeds))}."
    )
    paths = sweep.write_seed_table(points, out_dir, "dt_sweep", DT_KEYS, DT_METRICS, note)
    paths["runs"] = sweep.write_rows(runs, out_dir, "dt_sweep_runs", DT_RUN_COLUMNS, markdown=False)["csv"]
    paths["plot"] = plot_dt_sweep(points, os.path.join(out_dir, "dt_sweep_psnr.png"))
    with open(paths["md"]) as handle:
        print(handle.read().rstrip())
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


# ---------------------------------------------------------------------------------------------- parser
def add_command(subparsers, name: str, help: str) -> None:
    """``python -m tools ganz`` and its five commands."""
    parser = subparsers.add_parser(
        name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(run=_run)
    sub = parser.add_subparsers(dest="ganz_command", metavar="<command>", required=True)

    p = sub.add_parser("compress", help="images -> .ganz files (GANZ Eq. 1)")
    _common(p)
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...)")
    _data(p)
    p.add_argument("-o", "--out-dir", default=".", help="where the .ganz files go (default: here)")
    p.add_argument("--mode", type=_mode, default=LatentMode("keep_linear"), help="keep_linear | no_linear | "
                   "square_linear | random_linear(R) (default keep_linear)")
    p.add_argument("--dtype", choices=("float32", "float16", "uint8"), default="float32", help="latent storage")
    p.add_argument("--seed", type=int, default=0, help="seed of the random linear layer (stored in the file)")
    _inversion_arguments(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help=".ganz files -> PNG images (with the G or G_ema each file names)")
    _common(p, choose_generator=False)
    p.add_argument("files", nargs="+", help=".ganz files")
    p.add_argument("-o", "--out-dir", default=".", help="where the PNGs go (default: here)")
    p.add_argument("--output", help="output file for a single input (.png, or .npy for the float image)")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("rd", help="rate-distortion: GANZ vs wavelets and standard codecs")
    _common(p)
    _data(p)
    p.add_argument("--splits", nargs="+", default=["train", "test"], choices=("train", "val", "test"))
    p.add_argument("--ood", nargs="*", default=list(OOD_IMAGES),
                   help="skimage.data images as the out-of-domain set (give none to leave it out)")
    p.add_argument("--modes", type=_mode, nargs="+", default=[LatentMode("keep_linear")])
    p.add_argument("--dtypes", nargs="+", default=["float32", "uint8"], choices=("float32", "float16", "uint8"))
    p.add_argument("--codecs", nargs="*", default=None, help="jpeg webp jpegxl avif (default: all available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random linear layers")
    p.add_argument("--out-dir", required=True, help="where rd.csv, rd.md and the figures go")
    p.add_argument("--grid-images", type=int, default=6, help="images per row of the grids")
    _inversion_arguments(p)
    p.set_defaults(func=cmd_rd)

    p = sub.add_parser("cs", help="compressive sensing from Gaussian measurements (Sec. 4)")
    _common(p)
    _data(p)
    p.add_argument("--splits", nargs="+", default=["test"], choices=("train", "val", "test"))
    p.add_argument("--ood", nargs="*", default=[], help="skimage.data images as out-of-domain set")
    p.add_argument("--from-generator", type=int, default=0, metavar="K", help="also K images G(z), z ~ U[-1, 1]")
    p.add_argument("--measurements", type=int, nargs="+", default=[4000, 10000], help="M, rows of A")
    p.add_argument("--mode", type=_mode, default=LatentMode("no_linear"), help="latent mode (the paper: ratio 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of A and of the random linear layer")
    p.add_argument("--out-dir", default=None, help="write grids of originals and recoveries here")
    p.add_argument("--grid-images", type=int, default=6)
    _inversion_arguments(p, steps=1000)
    p.set_defaults(func=cmd_cs)


    p = sub.add_parser(
        "dt-sweep",
        help="GANZ Fig. 2: PSNR vs the training latent d_t at a fixed ratio, vs wavelets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(takes_train_args=True)
    runs = p.add_argument_group("the runs, one per d_t and seed (give one of the two)")
    runs.add_argument("--ckpts", nargs="+", default=[], metavar="CKPT",
                      help="trained GANZ checkpoints; d_t is read from each, several of one d_t are its seeds "
                      "(seed<S> in the path names the seed)")  # fmt: skip
    runs.add_argument("--configs", nargs="+", default=[], metavar="YAML",
                      help="configs to train first, e.g. configs/ganz/celeba128_dt{64,128,256,512}.yaml; "
                      "each runs --seeds times into <save-dir>/<name>/<config>/seed<S>/fit")  # fmt: skip
    sweep.add_sweep_arguments(p, "ganz/dt_sweep")
    p.set_defaults(name="ganz/dt_sweep")
    sweep.add_seed_arguments(p, default=1)
    p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    p.add_argument("--raw-generator", action="store_true", help="use the trained G, not its EMA")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _data(p)
    p.add_argument("--splits", nargs="+", default=["train", "test"], choices=("train", "val", "test"))
    p.add_argument("--ood", nargs="*", default=list(OOD_IMAGES),
                   help="skimage.data images as the out-of-domain set (give none to leave it out)")  # fmt: skip
    p.add_argument("--ratio", type=float, default=FIG2_RATIO,
                   help="compression ratio R (degrees of freedom), random_linear(R) (the paper: %(default)g)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random linear layer")
    p.add_argument("--out-dir", default=None, help="where dt_sweep.{csv,md}, dt_sweep_runs.csv and "
                   "dt_sweep_psnr.png go (default: <save-dir>/<name>)")  # fmt: skip
    _inversion_arguments(p)
    p.set_defaults(func=cmd_dt_sweep)


def _run(args: argparse.Namespace) -> int:

    try:
        return args.func(args) or 0  # a command returns None, or dt-sweep a failed fit's exit status
    except (GanzFormatError, GeneratorMismatchError) as err:  # a bad .ganz file or the wrong --ckpt
        raise UserError(str(err)) from err
