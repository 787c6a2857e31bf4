"""The divergence-entropy trade-off, end to end, on a source of known entropy (seed paper Sec. 4.4).

For each grid point ``BxN`` (B bits per noise dimension, N dimensions: discrete noise of
eps = B*N bits) and each of ``--seeds K`` seeds S (``--first-seed``) this trains
``configs/noise_dim/known_source.yaml`` (or ``-c``)

    python train.py fit -c CONFIG --model.init_args.noise.distribution discrete
        --model.init_args.noise.bits B --model.init_args.noise.dim N --seed_everything S
                                                         (-> <save-dir>/<name>/bB_nN/seed<S>/fit)

whose ``KnownSourceEvaluation`` callback writes ``known_source.json`` (q over the
prototypes, exact by enumeration; D(p||q) and d(eps) for KL, JS and TV) at the end of the
fit.  The merge writes to ``<save-dir>/<name>/``:

* ``known_source.csv`` / ``known_source.md``: per point, the mean and standard deviation over
  its seeds of H(q), of the **gap D(p||q) - d(eps)** for KL, JS and TV (the result), of the
  smoothed KL and of the number of prototypes never generated; d(eps) itself; how many runs
  have KL = inf and whether every run lies on or above the curve;
* ``known_source_runs.csv``: every run (D(p||q) too);
* ``known_source.png``: the learned points (mean ± std over the seeds, each run a dot)
  against the d(eps) curve of Noise-dim Eq. 11.

D(p||q) >= d(eps) holds by construction (q has at most 2^eps outcomes, so H(q) <= eps, and
d(eps) is the minimum over all such q): the ``above_curve`` check tests the d(eps) solver,
not the GAN.  The gap is what the GAN did.

Resume, ``--force``, ``--dry-run``, ``--merge-only`` and ``--array-index`` (one run, a point
and a seed, per SLURM array task; seeds outermost) work as in the other sweeps
(:mod:`tools.sweep`); arguments after ``--`` go to every ``train.py`` call (all but
``--seed_everything``).

    OMP_NUM_THREADS=1 python -m tools known-source                  # 6 points x 3 seeds: 14 min on 2 CPU cores
    python -m tools known-source --grid 1x1 1x2 2x2 --seeds 2 -- --trainer.max_steps 400

(Formerly ``python scripts/known_source.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
from typing import Optional, Sequence

from callbacks.known_source import RESULT_FILE
from evaluation.known_source import BY_CONSTRUCTION, DEFAULT_DIVERGENCES, plot_tradeoff
from tools import sweep
from tools.sweep import ROOT

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "noise_dim", "known_source.yaml")
#: eps = 1, 2, 3, 4, 6, 8 bits: below and above H(X) = 2.30 bits of the default source.
DEFAULT_GRID = ("1x1", "1x2", "1x3", "2x2", "3x2", "4x2")
#: Per-run columns (``known_source_runs.csv``).
COLUMNS = [
    "bits", "dim", "seed", "eps_bits", "H_p_bits", "H_q_bits", "method", "missed",
    "D_kl", "d_eps_kl", "gap_kl", "above_curve_kl", "kl_smoothed_bits",
    "D_js", "d_eps_js", "gap_js", "above_curve_js", "D_tv", "d_eps_tv", "gap_tv", "above_curve_tv",
]  # fmt: skip
#: A point's columns (the same in all its runs) and what is averaged over its seeds (``known_source.csv``).
POINT_KEYS = (
    "bits", "dim", "eps_bits", "H_p_bits", "d_eps_kl", "d_eps_js", "d_eps_tv", "above_curve_all", "kl_inf_runs",
)  # fmt: skip
SEED_METRICS = ("H_q_bits", "gap_kl", "gap_js", "gap_tv", "kl_smoothed_bits", "missed")
HEADERS = {"eps_bits": "eps (bits)", "H_p_bits": "H(X)", "d_eps_kl": "d(eps) KL", "d_eps_js": "d(eps) JS",
           "d_eps_tv": "d(eps) TV", "above_curve_all": "D >= d(eps), all runs", "kl_inf_runs": "runs with KL = inf",
           "H_q_bits": "H(q)", "gap_kl": "gap KL", "gap_js": "gap JS", "gap_tv": "gap TV",
           "kl_smoothed_bits": "KL, q smoothed", "missed": "prototypes missed"}  # fmt: skip


def parse_point(text: str) -> tuple[int, int]:
    """``"BxN"`` -> (bits, dim)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"grid points are BITSxDIM with both >= 1, e.g. 2x3; got {text!r}")
    return int(match[1]), int(match[2])


def _tag(bits: int, dim: int, seed: int) -> str:
    return os.path.join(f"b{bits}_n{dim}", f"seed{seed}")


def fit_folder(save_dir: str, name: str, bits: int, dim: int, seed: int) -> str:
    return os.path.join(save_dir, name, _tag(bits, dim, seed), "fit")


def fit_command(
    config: str, bits: int, dim: int, seed: int, save_dir: str, name: str, extra: Sequence[str]
) -> list[str]:
    overrides = [
        "--model.init_args.noise.distribution", "discrete",
        "--model.init_args.noise.bits", str(bits),
        "--model.init_args.noise.dim", str(dim),
        *sweep.seed_override(seed),
    ]  # fmt: skip
    run_name = os.path.join(name, _tag(bits, dim, seed))
    return sweep.train_command("fit", config, overrides, save_dir, run_name, "fit", extra)


def run_row(report: dict, bits: int, dim: int, seed: int) -> dict:
    """One run's report with its grid point, seed and the number of prototypes of positive p it never generated."""
    missed = sum(1 for p, q in zip(report["p"], report["q"]) if p > 0 and q == 0)
    return {"bits": bits, "dim": dim, "seed": seed, "missed": missed, **report}


def aggregate(runs: Sequence[dict]) -> list[dict]:
    """One row per grid point: :data:`POINT_KEYS` and mean/std over the seeds of :data:`SEED_METRICS`."""
    points = []
    ordered = sorted(runs, key=lambda r: (r["eps_bits"], r["bits"], r["dim"]))
    for _, group in itertools.groupby(ordered, key=lambda r: (r["bits"], r["dim"])):
        group = list(group)
        (row,) = sweep.aggregate_seeds(group, ("bits", "dim"), SEED_METRICS)
        row.update({k: group[0][k] for k in ("eps_bits", "H_p_bits", "d_eps_kl", "d_eps_js", "d_eps_tv")})
        row["above_curve_all"] = all(r[f"above_curve_{d}"] for r in group for d in DEFAULT_DIVERGENCES)
        row["kl_inf_runs"] = f"{sum(not math.isfinite(r['D_kl']) for r in group)}/{len(group)}"
        points.append(row)
    return points


def merge(
    save_dir: str, name: str, points: Sequence[tuple[int, int]], seeds: Sequence[int]
) -> Optional[dict[str, str]]:
    """Tables and figure of the finished runs; returns the written paths (None when there is nothing)."""
    runs, missing = [], []
    for seed in seeds:
        for bits, dim in points:
            path = os.path.join(fit_folder(save_dir, name, bits, dim, seed), RESULT_FILE)
            if not os.path.isfile(path):
                missing.append(path)
                continue
            with open(path) as handle:
                runs.append(run_row(json.load(handle), bits, dim, seed))
    if missing:
        print("not merged (no report yet):", *missing, sep="\n  ")
    if not runs:
        return None
    runs.sort(key=lambda r: (r["eps_bits"], r["bits"], r["seed"]))
    folder = os.path.join(save_dir, name)
    rows = aggregate(runs)
    note = (
        f"Mean ± standard deviation (sample std, ddof 1) over the seeds of each point: K = {len(seeds)} seeds "
        f"(seed_everything {', '.join(map(str, seeds))}); k = the runs merged. The result is the gap "
        "D(p||q) - d(eps) (KL and JS in bits, TV in [0, 1]); it is inf where a run missed a prototype (KL).\n\n"
        + BY_CONSTRUCTION
    )
    paths = sweep.write_seed_table(rows, folder, "known_source", POINT_KEYS, SEED_METRICS, note, HEADERS)
    paths["runs_csv"] = sweep.write_rows(runs, folder, "known_source_runs", COLUMNS, markdown=False)["csv"]
    paths["png"] = plot_tradeoff(
        runs,
        os.path.join(folder, "known_source.png"),
        title=f"known source: {len(runs[0]['p'])} prototypes, H(X) = {runs[0]['H_p_bits']:.3f} bits; "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})",
    )
    with open(paths["md"]) as handle:
        print(handle.read())
    print("wrote", *paths.values(), sep="\n  ")
    return paths


def add_command(subparsers, name: str, help: str) -> None:
    parser = sweep.command_parser(
        subparsers, name, help, __doc__, "a NoiseDimGAN config on KnownSourceDataModule", DEFAULT_CONFIG
    )
    parser.add_argument("--grid", type=parse_point, nargs="+", default=[parse_point(p) for p in DEFAULT_GRID],
                        help=f"BITSxDIM points (default: {' '.join(DEFAULT_GRID)})")  # fmt: skip
    sweep.add_seed_arguments(parser)
    sweep.add_sweep_arguments(parser, "known_source/<config file stem>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sweep.check_config(args.config)
    name = sweep.sweep_name(args, "known_source")
    points = sorted(set(args.grid))
    seeds = sweep.seed_list(args)

    def run_point(run: tuple[int, int, int]) -> int:
        seed, bits, dim = run
        cmd = fit_command(args.config, bits, dim, seed, args.save_dir, name, args.train_args)
        return sweep.run_fit(cmd, fit_folder(args.save_dir, name, bits, dim, seed), args.force, args.dry_run)

    runs = [(seed, bits, dim) for seed in seeds for bits, dim in points]
    return sweep.run_grid(args, runs, run_point, lambda: merge(args.save_dir, name, points, seeds))
