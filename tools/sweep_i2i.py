"""Train a NoisyI2I config at several training-noise levels sigma_t^2 and compare their robustness.

For each sigma_t^2 of ``--sigma-t2`` this runs, one after the other,

    python train.py fit  -c CONFIG --model.init_args.sigma_t2 V  (logs to <save-dir>/<name>/sigma_t2_V/fit)
    python train.py test -c CONFIG --model.init_args.sigma_t2 V --ckpt_path .../fit/checkpoints/last.ckpt
                                                             (logs to <save-dir>/<name>/sigma_t2_V/test)

where the config's ``callbacks.NoiseRobustness`` writes ``robustness/robustness.csv`` in the
test folder (one row per inference noise type and power).  The tables of all sigma_t^2 are
then merged into ``<save-dir>/<name>/robustness.{csv,json,md}`` and
``robustness_{psnr,ssim}.png``: the I2I poster's curves (metric vs sigma_e^2, one per
sigma_t^2) with the theory's optimal training noise (lambda_max / 2 and minimax) marked next
to the sigma_t^2 that did best.

A finished fit is not repeated, an interrupted one resumes from its ``last.ckpt``, and a
test whose table is newer than its fit is not repeated (``--force`` redoes everything),
so an interrupted sweep continues where it stopped.
``--merge-only`` only merges; ``--dry-run`` prints the commands; ``--array-index I`` runs the
I-th sigma_t^2 alone (a SLURM array task), so ``--merge-only`` collects afterwards.
Arguments after ``--`` go to every ``train.py`` call (e.g. ``-- --trainer.max_epochs 5``).

    python -m tools sweep-i2i -c configs/i2i/digits_sr8.yaml --sigma-t2 0 0.05 0.1 0.2 0.4

(Formerly ``python scripts/i2i_sweep.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Optional, Sequence

from core.errors import UserError
from evaluation.robustness import (
    plot_robustness,
    read_csv,
    summary_markdown,
    table_markdown,
    write_table,
)
from tools.sweep import add_sweep_arguments, check_config, command_parser, run_fit, run_grid, run_test, sweep_name
from tools.sweep import train_command


def _tag(value: float) -> str:
    return f"sigma_t2_{value:g}"


def run_folders(save_dir: str, name: str, value: float) -> tuple[str, str]:
    """The fit and test folders of one sigma_t^2."""
    base = os.path.join(save_dir, name, _tag(value))
    return os.path.join(base, "fit"), os.path.join(base, "test")


def commands(config: str, value: float, save_dir: str, name: str, extra: Sequence[str]) -> tuple[list[str], list[str]]:
    """The ``train.py fit`` and ``train.py test`` command lines of one sigma_t^2."""
    fit_dir, _ = run_folders(save_dir, name, value)
    overrides = ["--model.init_args.sigma_t2", repr(float(value))]
    run_name = os.path.join(name, _tag(value))
    fit = train_command("fit", config, overrides, save_dir, run_name, "fit", extra)
    last = os.path.join(fit_dir, "checkpoints", "last.ckpt")
    test = train_command("test", config, overrides, save_dir, run_name, "test", extra, ckpt_path=last)
    return fit, test


def merge(save_dir: str, name: str, values: Sequence[float]) -> Optional[dict[str, str]]:
    """Merge the test tables of ``values`` into the sweep folder; returns the written paths."""
    rows, theory, missing = [], None, []
    for value in values:
        _, test_dir = run_folders(save_dir, name, value)
        table = os.path.join(test_dir, "robustness", "robustness.csv")
        if not os.path.isfile(table):
            missing.append(table)
            continue
        rows += read_csv(table)
        with open(os.path.join(test_dir, "robustness", "robustness.json")) as handle:
            theory = theory or json.load(handle).get("theory")
    if missing:
        print("not merged (no robustness table; was NoiseRobustness in the config's callbacks?):", *missing, sep="\n  ")
    if not rows:
        return None
    folder = os.path.join(save_dir, name)
    paths = write_table(rows, folder, theory)
    for metric in ("psnr", "ssim"):
        paths[metric] = os.path.join(folder, f"robustness_{metric}.png")
        plot_robustness(rows, paths[metric], metric, theory, title=name)
    print(summary_markdown(rows, "psnr", theory), "", table_markdown(rows, "psnr"), sep="\n")
    print("\nwrote", *paths.values(), sep="\n  ")
    return paths


def run_one(
    config: str, value: float, save_dir: str, name: str, extra: Sequence[str], force: bool, dry_run: bool
) -> int:
    """Fit (or resume) and test one sigma_t^2; returns the first non-zero exit status, else 0.

    A finished fit leaves ``fit/FINISHED``; a fit interrupted after a checkpoint resumes
    from its ``last.ckpt`` (same folder, same noise stream: see ``NoisyI2I``).
    """
    fit, test = commands(config, value, save_dir, name, extra)
    fit_dir, test_dir = run_folders(save_dir, name, value)
    code = run_fit(fit, fit_dir, force, dry_run)
    if code:
        return code
    table = os.path.join(test_dir, "robustness", "robustness.csv")
    return run_test(test, test_dir, table, fit_dir, force, dry_run)


def add_command(subparsers, name: str, help: str) -> None:
    parser = command_parser(subparsers, name, help, __doc__, "a NoisyI2I config with the NoiseRobustness callback")
    parser.add_argument(
        "--sigma-t2", type=float, nargs="+", required=True, help="training-noise variances ([-1, 1] scale)"
    )
    add_sweep_arguments(parser, "i2i_sweep/<config file stem>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if any(v < 0 for v in args.sigma_t2):
        raise UserError(f"--sigma-t2 values must be >= 0, got {args.sigma_t2}")
    check_config(args.config)
    name = sweep_name(args, "i2i_sweep")
    values = sorted(set(args.sigma_t2))
    return run_grid(
        args,
        values,
        lambda value: run_one(args.config, value, args.save_dir, name, args.train_args, args.force, args.dry_run),
        lambda: merge(args.save_dir, name, values),
    )
