"""``python -m analysis noise-dim``: Theorem 4.2's noise dimension of a perfect GAN (seed "noise dimension" Table 3).

From a lossless rate E[L(X)] in bits per image and a float format's entropy H:
the lower bound n >= (E[L] - 1) / H (Noise-dim Eq. 9) and the bijective-case upper bound
n <= (E[L] + 2) / H (Noise-dim Eq. 10), as real numbers and as integers (n_min = ceil of Eq. 9,
Table 3's quantity; n_max_bijective = floor of Noise-dim Eq. 10).  The rate is given
(--bits-per-image, --bytes-per-image), read from a ``codec-rate --out`` JSON
(--rate-json), or taken from the paper's Table 2 (--paper-table2).  H is exact
(default) or the paper's Table 1 (--entropy paper, which rebuilds Table 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from analysis.cli import Report, UsageError, add_output_arguments, command_parser
from analysis.codec_rate import CODECS
from core.float_entropy import resolve_format
from analysis.noise_dim import (
    ENTROPY_SOURCES,
    PAPER_TABLE_1,
    PAPER_TABLE_2,
    PAPER_TABLE_3,
    ceil_consistent_bits,
    ceil_consistent_entropy,
    format_entropy,
    noise_dim_bound,
    table3_candidates,
)

_PAPER_CODECS = ("png", "webp", "jpegxl")


def _codec_key(name: str, known: list[str]) -> str | None:
    """``name`` matched to a codec name or title ("JPEG-XL", "jpegxl"), case- and dash-insensitive."""

    def squash(text: str) -> str:
        return text.lower().replace("-", "").replace(" ", "").replace("_", "")

    for key in known:
        title = CODECS[key].title if key in CODECS else key
        if squash(name) in (squash(key), squash(title)):
            return key
    return None


def _bits(record: dict[str, Any]) -> float:
    value = record.get("bits_per_image")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.inf


def read_rate_json(path: str, codec: str | None) -> tuple[str, str, float]:
    """(dataset label, codec title, bits per image) from the JSON ``codec-rate --out`` wrote: the named ``codec``,
    else the file's ``best_codec`` (else its fewest bits).  A missing or malformed file is a
    :class:`UsageError` that names it."""
    if not os.path.isfile(path):
        raise UsageError(f"--rate-json {path}: no such file (expected the JSON written by codec-rate --out)")
    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"--rate-json {path}: not a JSON file ({err})") from None
    codecs = payload.get("codecs") if isinstance(payload, dict) else None
    if not isinstance(codecs, dict) or not codecs or not all(isinstance(v, dict) for v in codecs.values()):
        raise UsageError(
            f"--rate-json {path}: no 'codecs' results in it (expected the JSON written by codec-rate --out)"
        )
    if codec is None:
        key = payload.get("best_codec")
        if key not in codecs:
            key = min(codecs, key=lambda k: _bits(codecs[k]))
    else:
        key = _codec_key(codec, list(codecs))
        if key is None:
            raise UsageError(f"--codec {codec}: not in {path}; it has: {', '.join(codecs)}")
    bits = _bits(codecs[key])
    if not (math.isfinite(bits) and bits > 0):
        raise UsageError(f"--rate-json {path}: codec {key} has no positive bits_per_image")
    data = payload.get("data")
    source = data.get("source", path) if isinstance(data, dict) else path
    return str(source), str(codecs[key].get("title", key)), float(bits)


def _sources(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """(dataset label, codec label, bits per image) for each rate to bound."""
    if args.paper_table2:
        codec = "jpegxl" if args.codec is None else _codec_key(args.codec, list(_PAPER_CODECS))
        if codec is None:
            raise UsageError(f"--codec {args.codec}: Table 2 has PNG, WebP and JPEG-XL (png, webp, jpegxl)")
        return [(dataset, CODECS[codec].title, 8.0 * cells[codec]) for dataset, cells in PAPER_TABLE_2.items()]
    if args.codec is not None and args.rate_json is None:
        raise UsageError("--codec picks a codec of --rate-json or --paper-table2; it means nothing with a given rate")
    if args.rate_json is not None:
        return [read_rate_json(args.rate_json, args.codec)]
    if args.bytes_per_image is not None:
        value, label, bits = args.bytes_per_image, "--bytes-per-image", 8.0 * args.bytes_per_image
    else:
        value, label, bits = args.bits_per_image, "--bits-per-image", args.bits_per_image
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{label} must be a positive number, got {value}")
    return [("given", "-", bits)]


def _table3_notes() -> list[str]:
    candidates = table3_candidates("jpegxl")
    cells = [(d, f) for d in PAPER_TABLE_3 for f in PAPER_TABLE_3[d]]
    notes = ["which formula rebuilds Table 3 (JPEG-XL bytes x 8, Table 1's H; cells matched of 6):"]
    for rule, values in candidates.items():
        wrong = [f"{d} {f} {values[(d, f)]} vs {PAPER_TABLE_3[d][f]}" for d, f in cells]
        wrong = [w for (d, f), w in zip(cells, wrong) if values[(d, f)] != PAPER_TABLE_3[d][f]]
        notes.append(f"  {rule:<20} {6 - len(wrong)}" + (f"  (off: {'; '.join(wrong)})" if wrong else ""))
    fp32 = ceil_consistent_entropy(
        [(8.0 * PAPER_TABLE_2[d]["jpegxl"], PAPER_TABLE_3[d]["float32"]) for d in PAPER_TABLE_3]
    )
    lsun = ceil_consistent_bits([(PAPER_TABLE_1[f], n) for f, n in PAPER_TABLE_3["LSUN-Church"].items()])
    if fp32 is not None:
        notes.append(
            f"  all six follow from ceil((8B - 1) / H) if FP32's H was in [{fp32[0]:.5f}, {fp32[1]:.5f}), "
            "i.e. unrounded and printed as 26.55 (FP16's 11.36 and FP64's 55.56 fit as printed)"
        )
    if lsun is None:
        notes.append("  no single LSUN-Church byte count gives all three of its cells with the printed H")
    return notes


def run(args: argparse.Namespace) -> Report:
    try:
        entropies = {resolve_format(f).name: format_entropy(f, args.entropy, args.distribution) for f in args.formats}
    except ValueError as err:
        raise UsageError(f"--formats / --entropy: {err}") from None
    sources = _sources(args)
    rows: list[dict[str, Any]] = []
    for dataset, codec, bits in sources:
        for name, h in entropies.items():
            bound = noise_dim_bound(bits, h)
            row: dict[str, Any] = {
                "data": dataset,
                "codec": codec,
                "bits_per_image": bits,
                "format": name,
                "H": h,
                "lower_eq9": bound.lower,
                "n_min": bound.n_min,
                "upper_eq10": bound.upper,
                "n_max_bijective": bound.n_max_bijective,
            }
            if args.paper_table2:
                paper = PAPER_TABLE_3.get(dataset, {}).get(name) if codec == "JPEG-XL" else None
                row["paper_table3"] = paper
                row["n_min_minus_paper"] = None if paper is None else bound.n_min - paper
            rows.append(row)
    columns = ["data", "codec", "bits_per_image", "format", "H", "lower_eq9", "n_min", "upper_eq10", "n_max_bijective"]
    if args.paper_table2:
        columns += ["paper_table3", "n_min_minus_paper"]
    h_source = (
        "seed Table 1 (Monte Carlo; FP16 11.36, FP32 26.55, FP64 55.56)"
        if args.entropy == "paper"
        else f"exact entropy of {args.distribution} noise rounded to the format (core.float_entropy)"
    )
    notes = [
        "lower_eq9 = (E[L] - 1) / H (Noise-dim Eq. 9), n_min = ceil(lower_eq9); "
        "upper_eq10 = (E[L] + 2) / H (Noise-dim Eq. 10, bijective g), n_max_bijective = floor(upper_eq10)",
        f"H: {h_source}",
        "E[L] = bits_per_image, a practical codec's rate: at least the minimal E[L(X)], so these estimate the bounds",
        "[lower, upper] is 3 / H wide (< 1 here), so n_max_bijective < n_min is common: "
        "then no integer n meets both bounds",
    ]
    if args.paper_table2:
        notes.append(
            f"rates: seed Table 2 ({sources[0][1]} bytes x 8); paper_table3: seed Table 3 (JPEG-XL, Table 1's H)"
        )
        if args.entropy == "paper":
            notes += _table3_notes()
        else:
            notes.append("--entropy paper uses Table 1's H, as Table 3 did, and shows which formula rebuilds it")
    elif args.rate_json:
        notes.append(f"rate: {sources[0][1]} in {args.rate_json}")
    return Report(
        title="Noise dimension of a perfect GAN (seed Sec. 4.3, Theorem 4.2, Table 3)",
        columns=columns,
        rows=rows,
        notes=notes,
        extra={"entropy_source": args.entropy, "distribution": args.distribution, "entropies": entropies},
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "noise-dim",
        help="noise dimension a perfect GAN needs from a lossless rate (Theorem 4.2, Table 3)",
        description=__doc__,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bits-per-image", type=float, metavar="B", help="E[L(X)] in bits per image")
    source.add_argument("--bytes-per-image", type=float, metavar="N", help="E[L(X)] in bytes per image (x 8)")
    source.add_argument("--rate-json", metavar="FILE", help="a codec-rate --out JSON (its smallest codec, or --codec)")
    source.add_argument("--paper-table2", action="store_true", help="the paper's Table 2 bytes (CIFAR10, LSUN-Church)")
    parser.add_argument(
        "--codec", metavar="NAME", help="codec of --rate-json or --paper-table2 (default: the smallest / jpegxl)"
    )
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["float16", "float32", "float64"],
        metavar="FMT",
        help="float formats (default: the paper's three)",
    )
    parser.add_argument(
        "--entropy", choices=ENTROPY_SOURCES, default="exact", help="H(format): exact (default) or the paper's Table 1"
    )
    parser.add_argument(
        "--distribution", choices=("gaussian", "uniform"), default="gaussian", help="the noise (exact H only)"
    )
    add_output_arguments(parser, plot=False)
    parser.set_defaults(handler=run)
