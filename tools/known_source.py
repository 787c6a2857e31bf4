"""The divergence-entropy trade-off, end to end, on a source of known entropy (seed paper Sec. 4.4).

For each grid point ``BxN`` (B bits per noise dimension, N dimensions: discrete noise of
eps = B*N bits) this trains ``configs/noise_dim/known_source.yaml`` (or ``-c``)

    python train.py fit -c CONFIG --model.init_args.noise.distribution discrete
        --model.init_args.noise.bits B --model.init_args.noise.dim N   (-> <save-dir>/<name>/bB_nN/fit)

whose ``KnownSourceEvaluation`` callback writes ``known_source.json`` (q over the
prototypes, exact by enumeration; D(p||q) and d(eps) for KL, JS and TV) at the end of the
fit.  The reports are merged into ``<save-dir>/<name>/known_source.{csv,md}`` and
``known_source.png``: learned points (eps, D(p||q)) against the d(eps) curve of Noise-dim Eq. 11.
The theorem says every point lies on or above the curve; the table's ``above_curve_*``
columns check it.

Resume, ``--force``, ``--dry-run``, ``--merge-only`` and ``--array-index`` (a SLURM array
task) work as in the other sweeps (:mod:`tools.sweep`); arguments after ``--`` go to
every ``train.py`` call.

    OMP_NUM_THREADS=1 python -m tools known-source                  # the default grid, ~6 min on CPU
    python -m tools known-source --grid 1x1 1x2 2x2 -- --trainer.max_steps 400

(Formerly ``python scripts/known_source.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Optional, Sequence

from callbacks.known_source import RESULT_FILE
from evaluation.known_source import plot_tradeoff
from tools import sweep
from tools.sweep import ROOT

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "noise_dim", "known_source.yaml")
#: eps = 1, 2, 3, 4, 6, 8 bits: below and above H(X) = 2.30 bits of the default source.
DEFAULT_GRID = ("1x1", "1x2", "1x3", "2x2", "3x2", "4x2")
COLUMNS = [
    "bits", "dim", "eps_bits", "H_p_bits", "H_q_bits", "method",
    "D_kl", "d_eps_kl", "above_curve_kl", "kl_smoothed_bits",
    "D_js", "d_eps_js", "above_curve_js", "D_tv", "d_eps_tv", "above_curve_tv",
]  # fmt: skip


def parse_point(text: str) -> tuple[int, int]:
    """``"BxN"`` -> (bits, dim)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"grid points are BITSxDIM with both >= 1, e.g. 2x3; got {text!r}")
    return int(match[1]), int(match[2])


def fit_folder(save_dir: str, name: str, bits: int, dim: int) -> str:
    return os.path.join(save_dir, name, f"b{bits}_n{dim}", "fit")


def fit_command(config: str, bits: int, dim: int, save_dir: str, name: str, extra: Sequence[str]) -> list[str]:
    overrides = [
        "--model.init_args.noise.distribution", "discrete",
        "--model.init_args.noise.bits", str(bits),
        "--model.init_args.noise.dim", str(dim),
    ]  # fmt: skip
    return sweep.train_command("fit", config, overrides, save_dir, os.path.join(name, f"b{bits}_n{dim}"), "fit", extra)


def merge(save_dir: str, name: str, points: Sequence[tuple[int, int]]) -> Optional[dict[str, str]]:
    """Table and figure of the finished points; returns the written paths (None when there is nothing)."""
    reports, missing = [], []
    for bits, dim in points:
        path = os.path.join(fit_folder(save_dir, name, bits, dim), RESULT_FILE)
        if not os.path.isfile(path):
            missing.append(path)
            continue
        with open(path) as handle:
            report = json.load(handle)
        reports.append({"bits": bits, "dim": dim, **report})
    if missing:
        print("not merged (no report yet):", *missing, sep="\n  ")
    if not reports:
        return None
    reports.sort(key=lambda r: (r["eps_bits"], r["bits"]))
    folder = os.path.join(save_dir, name)
    paths = sweep.write_rows(reports, folder, "known_source", COLUMNS)
    paths["png"] = plot_tradeoff(
        reports,
        os.path.join(folder, "known_source.png"),
        title=f"known source: {len(reports[0]['p'])} prototypes, H(X) = {reports[0]['H_p_bits']:.3f} bits",
    )
    print(sweep.markdown_table(reports, COLUMNS))
    print("\nwrote", *paths.values(), sep="\n  ")
    return paths


def add_command(subparsers, name: str, help: str) -> None:
    parser = sweep.command_parser(
        subparsers, name, help, __doc__, "a NoiseDimGAN config on KnownSourceDataModule", DEFAULT_CONFIG
    )
    parser.add_argument("--grid", type=parse_point, nargs="+", default=[parse_point(p) for p in DEFAULT_GRID],
                        help=f"BITSxDIM points (default: {' '.join(DEFAULT_GRID)})")  # fmt: skip
    sweep.add_sweep_arguments(parser, "known_source/<config file stem>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sweep.check_config(args.config)
    name = sweep.sweep_name(args, "known_source")
    points = sorted(set(args.grid))

    def run_point(point: tuple[int, int]) -> int:
        bits, dim = point
        cmd = fit_command(args.config, bits, dim, args.save_dir, name, args.train_args)
        return sweep.run_fit(cmd, fit_folder(args.save_dir, name, bits, dim), args.force, args.dry_run)

    return sweep.run_grid(args, points, run_point, lambda: merge(args.save_dir, name, points))
