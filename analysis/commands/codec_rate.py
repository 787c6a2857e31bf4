"""``python -m analysis codec-rate``: lossless bytes per image of a dataset (seed "noise dimension" Table 2).

Every image of --data (a folder or a DataModule split) is encoded with each lossless
codec of imagecodecs at its strongest setting, decoded, and checked bit-exact; the
table gives the mean bytes per image (Table 2's unit) and bits per pixel.  The smallest
rate approximates E[L(X)] in Theorem 4.2: pass --out FILE.json to ``noise-dim --rate-json``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from analysis.cli import Report, UsageError, add_output_arguments, command_parser, progress
from analysis.codec_rate import (
    CODECS,
    LEFT_OUT,
    PAPER_TABLE_2,
    CodecError,
    default_workers,
    measure_rate,
    resolve_codecs,
)
from analysis.data import add_data_arguments, image_files, iter_uint8_images

def _total(args: argparse.Namespace) -> int | None:
    if os.path.isdir(args.data):
        count = len(image_files(args.data))
        return count if args.limit is None else min(count, args.limit)
    return args.limit


def run(args: argparse.Namespace) -> Report:
    try:
        codecs = resolve_codecs(args.codecs)
    except ValueError as err:
        raise UsageError(f"--codecs: {err}") from None
    if not codecs:
        raise UsageError("no lossless codec of imagecodecs is available here")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    images = iter_uint8_images(args.data, args.split, args.limit, args.data_args)
    start = time.perf_counter()
    with progress(None, total=_total(args), desc="codec-rate", disable=None) as bar:
        try:
            result = measure_rate(images, codecs, workers=args.workers, on_progress=bar.update)
        except CodecError as err:
            raise UsageError(str(err)) from None
    seconds = time.perf_counter() - start

    rows: list[dict[str, Any]] = []
    records: dict[str, Any] = {}
    for name in codecs:
        codec, sums = CODECS[name], result.totals[name]
        summary = sums.summary()
        rows.append(
            {
                "codec": codec.title,
                "bytes_per_image": summary["bytes_per_image"],
                "bits_per_pixel": summary["bits_per_pixel"],
                "vs_raw": result.raw_bytes / sums.bytes,
                "name": name,
                "settings": codec.settings,
            }
        )
        records[name] = {**codec.record(), **summary}
    best = result.best
    shapes = ", ".join(f"{shape} ({n})" if len(result.shapes) > 1 else shape for shape, n in result.shapes.items())
    source = args.data if os.path.isdir(args.data) else f"{args.data} {args.split} split"
    notes = [
        "every image encoded, decoded and checked bit-exact; "
        "bytes = length of the whole encoded stream, headers included",
        f"raw: {result.raw_bytes / result.images:.1f} bytes per image (8 bits per value); "
        "vs_raw = raw bytes / encoded bytes",
        "grey images stay 1 channel (WebP and QOI have no grey mode: given as RGB with 3 equal channels); "
        "an alpha channel is kept, encoded as a 4th channel and checked like the others",
        "settings:",
        *(f"  {CODECS[n].title:<13} {CODECS[n].record()['library']}: {CODECS[n].settings}" for n in codecs),
        f"smallest: {CODECS[best].title}, {result.totals[best].bits_per_image:.1f} bits per image "
        "(the estimate of E[L(X)] in Theorem 4.2; noise-dim --rate-json takes this file's --out JSON)",
        "seed Table 2 (bytes per image): "
        + "; ".join(
            f"{ds} PNG {t['png']}, WebP {t['webp']}, JPEG-XL {t['jpegxl']}" for ds, t in PAPER_TABLE_2.items()
        ),
        "imagecodecs codecs tried and left out:",
        *(f"  {k}: {v}" for k, v in LEFT_OUT.items()),
        f"{result.images} images, {args.workers} worker{'s' if args.workers > 1 else ''}, {seconds:.1f} s",
    ]
    extra = {
        "data": {"source": args.data, "split": args.split, "data_args": args.data_args, "limit": args.limit},
        "images": result.images,
        "pixels": result.pixels,
        "raw_bytes": result.raw_bytes,
        "shapes": result.shapes,
        "best_codec": best,
        "codecs": records,
        "left_out": LEFT_OUT,
        "workers": args.workers,
        "seconds": seconds,
    }
    return Report(
        title=f"Lossless bytes per image: {source}, {result.images} images of {shapes} (seed Sec. 4.3, Table 2)",
        columns=["codec", "bytes_per_image", "bits_per_pixel", "vs_raw"],
        rows=rows,
        notes=notes,
        extra=extra,
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "codec-rate",
        help="lossless bytes per image of a dataset under PNG, WebP, JPEG-XL and more (Table 2)",
        description=__doc__,
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--codecs",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"codecs to measure (default: every available one): {', '.join(CODECS)}",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="worker processes (default: min(4, CPUs); 1 runs in this process)",
    )
    add_output_arguments(parser, plot=False)
    parser.set_defaults(handler=run)
