"""``python -m tools reproduce <paper> --data-root ../shared/data``: a paper's headline experiment on real data.

Every stage in order (feature classifier, VAE, models, evaluation, tables and figures),
skipping finished stages and resuming interrupted fits (:mod:`tools.reproduce.pipeline`),
into ``runs/reproduce/<paper>/``: ``manifest.json`` (commands, seeds, checkpoints, metrics,
versions, wall time per stage), ``logs/<stage>.log``, and the tables (Markdown, CSV) and
figures (PNG) the results page ``docs/results/<paper>.md`` shows.

``--scale default`` is sized for 2 CPU cores (the target: 30 minutes a paper; each results
page gives the measured time), its independent fits run ``--jobs`` (2) at a time with one
torch thread each; ``--scale paper`` runs the paper's own settings (a GPU cluster).  A
failing stage stops the pipeline with one line naming the stage and its log; run the same
command again to go on from there.
"""

from __future__ import annotations

import argparse
import importlib
import os

from core.errors import UserError
from tools.reproduce.pipeline import Pipeline

__all__ = ["PAPERS", "add_command", "run"]

#: paper -> module defining ``SETTINGS`` ({scale: settings}), ``SEEDS`` and ``stages(pipeline)``.
PAPERS = {
    "de_gan": "tools.reproduce.de_gan",
    "ganz": "tools.reproduce.ganz",
    "noise_dim": "tools.reproduce.noise_dim",
    "noisy_i2i": "tools.reproduce.noisy_i2i",
    "rni": "tools.reproduce.rni",
}


def add_command(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    p.add_argument("paper", choices=sorted(PAPERS), help="which paper's experiment")
    p.add_argument("--data-root", required=True, help="folder holding mnist/ and cifar10/ (torchvision layouts)")
    p.add_argument("--scale", choices=["default", "paper"], default="default",
                   help="default: sized for 2 CPU cores; paper: the paper's settings (GPUs)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", help="seeds of every compared model (default: the paper's list)")
    p.add_argument("--out", help="output folder (default runs/reproduce/<paper>)")
    p.add_argument("--force", nargs="+", default=[], metavar="STAGE", help="run these stages again ('all': every one)")
    p.add_argument("--jobs", type=int,
                   help="fits run at once, each with OMP_NUM_THREADS = cores / jobs (default: 2 at the default "
                        "scale, for 2 cores; 1 at the paper scale, for one GPU)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the stages' commands; run and write nothing")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(PAPERS[args.paper])
    if not os.path.isdir(args.data_root):
        raise UserError(f"--data-root {args.data_root}: no such folder (it should hold mnist/ and cifar10/)")
    settings = module.SETTINGS[args.scale]
    seeds = args.seeds or module.SEEDS[args.scale]
    if len(seeds) < 1:
        raise UserError("--seeds: give at least one seed")
    pipeline = Pipeline(
        args.paper,
        args.out or os.path.join("runs", "reproduce", args.paper),
        args.data_root,
        args.scale,
        seeds,
        force=args.force,
        dry_run=args.dry_run,
        settings=settings,
        jobs=args.jobs or (min(2, os.cpu_count() or 1) if args.scale == "default" else 1),
    )
    pipeline.run(module.stages(pipeline))
    if not args.dry_run:
        print(f"manifest: {pipeline.path('manifest.json')}")
    return 0
