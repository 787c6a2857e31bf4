"""``python -m tools de-gan-metrics NAME=RUN ... [--epochs 1 2 5] [--plot fig6.png]``.

DE-GAN's evaluation across runs (seed paper "GANs with decoder-encoder output noise"): a
Markdown table of each run's accuracy after the given epochs (Fig. 6, Table V) and the mean
relative diversity degree after the last of them (Table VI), one row per run, read from each
run's ``de_gan/metrics.csv`` (written by ``callbacks.DEGANEvaluation``); with ``--plot``, Fig. 6
with every run's curve.  The "metric" column says which accuracy a row shows: ``label``, the
paper's test accuracy of a conditional generator (``de_gan/label_accuracy``: the share of
samples the classifier assigns to the label they were generated for), or ``confident``, the
project's measure for an unconditional one (``de_gan/confident_share``: the share whose top
class probability exceeds the callback's threshold).

(Formerly ``python -m evaluation.de_gan_metrics``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import os

from core.errors import UserError
from evaluation.de_gan_metrics import convergence_figure, read_metrics_csv

__all__ = ["add_command", "run"]


def add_command(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR (a runs/de_gan/.../version_N folder, or its metrics.csv)")
    p.add_argument("--epochs", nargs="+", type=int, default=[1, 2, 5])
    p.add_argument("--plot", help="write Fig. 6 (all runs' accuracy curves) to this PNG")


METRICS = {"label": "de_gan/label_accuracy", "confident": "de_gan/confident_share"}


def run(args: argparse.Namespace) -> int:
    curves = {}
    header = ["metric"] + [f"acc. epoch {e}" for e in args.epochs] + [f"mean rdd epoch {args.epochs[-1]}"]
    print("| run | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    kinds = set()
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        if not folder:
            name, folder = spec, spec
        if not os.path.exists(folder):
            raise UserError(f"{folder}: no such run folder (give NAME=RUN_DIR, a runs/de_gan/.../version_N folder)")
        rows = {int(r["epoch"]): r for r in read_metrics_csv(folder)}
        kind = next((k for k, col in METRICS.items() if any(col in r for r in rows.values())), None)
        if kind is None:
            raise UserError(f"{folder}: its de_gan/metrics.csv has neither {' nor '.join(METRICS.values())}")
        kinds.add(kind)
        column = METRICS[kind]
        curves[(name, kind)] = [(e, r[column]) for e, r in sorted(rows.items()) if column in r]
        cells = [kind] + [f"{rows[e][column]:.3f}" if column in rows.get(e, {}) else "-" for e in args.epochs]
        last = rows.get(args.epochs[-1], {})
        cells.append(f"{last['de_gan/rdd_mean']:.2f}" if "de_gan/rdd_mean" in last else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.plot:
        ylabel = {"label": "share classified as their label", "confident": "share of confident samples"}
        label = ylabel[next(iter(kinds))] if len(kinds) == 1 else "label accuracy / confident share"
        named = {(n if len(kinds) == 1 else f"{n} ({k})"): points for (n, k), points in curves.items()}
        convergence_figure(named, ylabel=label).savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0
