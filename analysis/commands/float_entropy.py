"""``python -m analysis float-entropy``: seed "noise dimension" Table 1, exact and by Monte Carlo.

For each float format: the exact entropy of N(0, 1) (or U[-1, 1)) rounded to it
(:mod:`core.float_entropy`, the ideal), the entropy per dimension of the noise as
``NoiseSpec`` draws it on the CPU and on CUDA, with its default sampler (``torch``) and with
``sampler: exact`` (:mod:`core.sampler_entropy`, derived from the samplers' algorithms),
the paper's Monte Carlo estimator (Noise-dim Eq. 6) over K draws of the project's own
sampler with its standard error, and the paper's published value where Table 1 has one.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from analysis.cli import Report, UsageError, add_output_arguments, command_parser, progress
from analysis.float_entropy import PAPER_TABLE_1, information_bits
from core.float_entropy import FORMATS, entropy_bits, resolve_format
from core.noise import NoiseSpec
from core.sampler_entropy import DEVICES, SAMPLERS, scalar_entropy_bits

_CHUNK = 1_000_000


def monte_carlo(fmt: str, distribution: str, samples: int, seed: int) -> tuple[float, float]:
    """Noise-dim Eq. 6 over ``samples`` draws of ``NoiseSpec``, in chunks; (estimate, standard error)."""
    spec = NoiseSpec(dim=1, distribution=distribution, format=fmt)
    generator = torch.Generator().manual_seed(seed)
    total = total_sq = 0.0
    chunks = [min(_CHUNK, samples - start) for start in range(0, samples, _CHUNK)]
    for size in progress(chunks, desc=f"Noise-dim Eq. 6 {fmt}"):
        info = information_bits(spec.sample(size, generator=generator), fmt, distribution)
        total += float(info.sum())
        total_sq += float(np.square(info).sum())
    mean = total / samples
    variance = max(total_sq / samples - mean * mean, 0.0) * samples / (samples - 1)
    return mean, math.sqrt(variance / samples)


def drawn_per_dim(fmt: str, distribution: str, sampler: str, device: str) -> float | None:
    """Bits per dimension of ``NoiseSpec(sampler=...)`` noise as drawn on ``device``, dim a multiple of 16."""
    try:
        spec = NoiseSpec(dim=16, distribution=distribution, format=fmt, sampler=sampler)
    except ValueError:  # sampler: exact refuses float64
        return None
    return spec.entropy_bits_per_dim(device)


def run(args: argparse.Namespace) -> Report:
    try:
        formats = [resolve_format(f).name for f in args.formats]
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.mc_samples < 0 or args.mc_samples == 1:
        raise UsageError(f"--mc-samples must be 0 (skip) or >= 2, got {args.mc_samples}")
    rows = []
    start = time.perf_counter()
    for fmt in formats:
        rows.append({"format": fmt, "bits": FORMATS[fmt].total_bits, "exact_H": entropy_bits(fmt, args.distribution)})
    exact_seconds = time.perf_counter() - start
    drawn_columns = [f"{sampler}_{device}" for sampler in SAMPLERS for device in DEVICES]
    start = time.perf_counter()
    for row in rows:
        for sampler in SAMPLERS:
            for device in DEVICES:
                row[f"{sampler}_{device}"] = drawn_per_dim(row["format"], args.distribution, sampler, device)
    drawn_seconds = time.perf_counter() - start
    for row in rows:
        paper = PAPER_TABLE_1.get(row["format"]) if args.distribution == "gaussian" else None
        row["paper_H"] = paper
        row["exact_minus_paper"] = row["exact_H"] - paper if paper is not None else None
        if args.mc_samples:
            row["mc_H"], row["mc_stderr"] = monte_carlo(row["format"], args.distribution, args.mc_samples, args.seed)
    columns = ["format", "bits", "exact_H", *drawn_columns]
    if args.mc_samples:
        columns += ["mc_H", "mc_stderr"]
    columns += ["paper_H", "exact_minus_paper"]
    dist = "N(0, 1)" if args.distribution == "gaussian" else "U[-1, 1)"
    notes = [
        f"exact: every value enumerated (<= 16 bits) or a closed form per binade (32/64 bits); {exact_seconds:.2f} s for all",
        "torch_cpu ... exact_cuda: bits per dimension of NoiseSpec noise as drawn (sampler torch / exact,"
        f" on cpu / cuda, dim a multiple of 16), derived from the samplers' algorithms; {drawn_seconds:.2f} s",
        _drawn_note(args.distribution),
        "paper_H: seed 'noise dimension' Table 1 (Monte Carlo, K = 1e7); why it differs: README, 'The noise spec'",
    ]
    if args.mc_samples:
        notes.insert(
            1,
            f"mc: Noise-dim Eq. 6 over K = {args.mc_samples:,} draws of NoiseSpec (seed {args.seed}),"
            " +- one standard error; it sees one value at a time (dim 1), not what a pair of values shares",
        )
    return Report(title=f"Entropy in bits of {dist} rounded to each float format (Sec. 4.1, Table 1)", columns=columns, rows=rows, notes=notes)


def _drawn_note(distribution: str) -> str:
    if distribution == "uniform":
        return (
            "uniform as drawn is exact (every uniform enumerated; exact sampler: within 1e-6); torch's float32 rand"
            " has 24 random bits (CPU) and 5 * 2^24 uneven values (CUDA), float64 53 (CPU) / 52.5 (CUDA)"
        )
    alone = scalar_entropy_bits("gaussian", "float32", "cpu").upper
    return (
        "gaussian as drawn is an upper bound (Theorem 4.2 needs one): CPU pairs of 24-bit (53-bit) uniforms give at"
        f" most 24 (53) bits per float32 (float64) value; a value whose Box-Muller partner lies in another sample"
        f" (dim not a multiple of 16, and on CUDA every value) carries at most {alone:.4f} (float32)"
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "float-entropy",
        help="entropy of Gaussian noise rounded to each float format (Table 1)",
        description=__doc__,
    )
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), metavar="FMT", help="formats (default: all six)")
    parser.add_argument("--distribution", choices=("gaussian", "uniform"), default="gaussian")
    parser.add_argument("--mc-samples", type=int, default=10_000_000, metavar="K", help="Monte Carlo draws (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    add_output_arguments(parser, plot=False)
    parser.set_defaults(handler=run)
