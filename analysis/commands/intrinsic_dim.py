"""``python -m analysis intrinsic-dim``: Levina-Bickel intrinsic dimension (seed DE-GAN Eq. 15-17, Fig. 4).

For every k in [--k-min, --k-max]: M_k, the mean over the points of the per-point
maximum-likelihood estimate m_k (DE-GAN Eq. 15-16), and beside it MacKay & Ghahramani's
inverse-of-the-mean-inverse, which removes DE-GAN Eq. 16's upward bias of (k-1)/(k-2).
The neighbours are exact (brute force in torch, chunked).  Input: images (--data,
flattened to vectors in [0, 1]) or an [N, D] array (--array x.npy).  --plot draws
M_k against k (Fig. 4).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from analysis.cli import Report, UsageError, add_output_arguments, command_parser, progress
from analysis.data import add_data_arguments, iter_uint8_images, load_npy
from analysis.intrinsic_dim import AVERAGES, LevinaBickelResult, levina_bickel

_AVERAGE_LABEL = {
    "mean": "DE-GAN Eq. 16: mean of m_k",
    "inverse": "MacKay-Ghahramani: 1 / mean of 1/m_k",
}


def _load_array(path: str) -> np.ndarray:
    x = load_npy(path, "--array", "an [N, D] array")
    if x.ndim != 2:
        raise UsageError(f"--array {path}: expected an [N, D] array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise UsageError(f"--array {path}: holds NaN or infinite values")
    return x


def _load_images(args: argparse.Namespace) -> np.ndarray:
    vectors, shape = [], None
    for name, image in iter_uint8_images(args.data, args.split, args.limit, args.data_args):
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise UsageError(f"--data {args.data}: {name} is {image.shape}, the first image {shape}; all must match")
        vectors.append(image.reshape(-1))
    return np.stack(vectors).astype(np.float32) / 255.0


def _figure(result: LevinaBickelResult, default: str, source: str):
    def build():
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for average in AVERAGES:
            style = "-o" if average == default else "--"
            ax.plot(result.ks, result.estimate(average), style, ms=3, label=_AVERAGE_LABEL[average])
        ax.set_xlabel("k (nearest neighbours)")
        ax.set_ylabel(r"$\hat M_k$")
        ax.set_title(f"Levina-Bickel intrinsic dimension: {source}")
        ax.grid(alpha=0.3)
        ax.legend()
        return fig

    return build


def run(args: argparse.Namespace) -> Report:
    if (args.data is None) == (args.array is None):
        raise UsageError("give exactly one input: --data FOLDER|DATAMODULE or --array FILE.npy")
    if args.k_min < 2:
        raise UsageError(
            f"--k-min must be >= 2 (DE-GAN Eq. 15 averages over the k-1 nearer neighbours), got {args.k_min}"
        )
    if args.k_min >= args.k_max:
        raise UsageError(f"--k-min must be smaller than --k-max, got --k-min {args.k_min} --k-max {args.k_max}")
    if args.chunk < 1:
        raise UsageError(f"--chunk must be >= 1, got {args.chunk}")
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)

    x = _load_array(args.array) if args.array is not None else _load_images(args)
    source = args.array if args.array is not None else args.data
    if args.array is not None and args.limit is not None:
        if args.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {args.limit}")
        x = x[: args.limit]
    start = time.perf_counter()
    try:
        result = levina_bickel(
            x,
            args.k_min,
            args.k_max,
            query_chunk=args.chunk,
            precision=args.precision,
            progress=lambda it, total: progress(it, total=total, desc="kNN chunks"),
        )
    except ValueError as err:
        raise UsageError(f"{source}: {err}") from None
    seconds = time.perf_counter() - start

    default = args.average
    chosen = result.estimate(default)
    rows = [
        {"k": k, "M_k": float(m), "M_k_inverse": float(mi), "m_k_sd": float(sd)}
        for k, m, mi, sd in zip(result.ks, result.mean, result.inverse, result.per_point_sd)
    ]
    notes = [
        f"input: {source}, N = {result.n_points:,} distinct points in D = {result.dim}"
        + (
            f" ({result.n_duplicates:,} duplicate rows removed: a zero distance makes DE-GAN Eq. 15 degenerate)"
            if result.n_duplicates
            else ""
        ),
        "M_k: DE-GAN Eq. 16, the mean of m_k (Eq. 15) over the points;"
        " M_k_inverse: MacKay-Ghahramani, 1 / mean of 1/m_k; m_k_sd: spread of m_k over the points",
        f"DE-GAN Eq. 16 is biased up by about (k-1)/(k-2) (+{100 / (args.k_max - 2):.1f} % at k = {args.k_max});"
        " the inverse average is not",
        f"M (DE-GAN Eq. 17, taken at k = {args.k_max}) by {default}: {chosen[-1]:.3f};"
        f" average over k = {args.k_min}..{args.k_max} (Levina-Bickel's choice): {chosen.mean():.3f}",
        f"exact kNN ({args.precision} search, float64 distances), {args.chunk} query rows per chunk,"
        f" {torch.get_num_threads()} threads: {seconds:.1f} s"
        + (f"; {result.rechecked_rows:,} rows re-searched in float64 (float32 too close to call)" if result.rechecked_rows else ""),
    ]
    if args.data is not None:
        notes.insert(1, "images flattened to vectors, pixels scaled to [0, 1]")
    if not np.isfinite(result.mean).all():
        notes.append(
            "some points have T_1 = ... = T_k (tied distances, e.g. grid data): m_k is infinite there,"
            " so DE-GAN Eq. 16 is too; the inverse average counts them as 1/m_k = 0"
        )
    return Report(
        title=f"Levina-Bickel intrinsic dimension M_k (DE-GAN Eq. 15-17) of {source}",
        columns=["k", "M_k", "M_k_inverse", "m_k_sd"],
        rows=rows,
        notes=notes,
        figure=_figure(result, default, os.path.basename(source.rstrip("/")) or source),
        extra={
            "n_points": result.n_points,
            "n_duplicates": result.n_duplicates,
            "dim": result.dim,
            "default_average": default,
            "seconds": seconds,
            "rechecked_rows": result.rechecked_rows,
        },
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "intrinsic-dim",
        help="Levina-Bickel intrinsic dimension M_k against k (DE-GAN Eq. 15-17, Fig. 4)",
        description=__doc__,
    )
    add_data_arguments(parser, required=False)
    parser.add_argument("--array", metavar="FILE.npy", help="an [N, D] array of points instead of --data")
    parser.add_argument("--k-min", type=int, default=5, metavar="K", help="smallest k (>= 2; default 5)")
    parser.add_argument("--k-max", type=int, default=20, metavar="K", help="largest k (default 20)")
    parser.add_argument(
        "--average",
        choices=AVERAGES,
        default="mean",
        help="which M_k the summary and the solid plot line use: mean (DE-GAN Eq. 16, default)"
        " or inverse (MacKay-Ghahramani)",
    )
    parser.add_argument("--chunk", type=int, default=1024, metavar="ROWS", help="query rows per kNN chunk (default 1024)")
    parser.add_argument(
        "--precision",
        choices=("float32", "float64"),
        default="float32",
        help="float32: fast search, exact float64 distances of the candidates, float64 re-search where unsure (default)",
    )
    add_output_arguments(parser)
    parser.set_defaults(handler=run)
