"""Shared pieces of the sweeps: ``python -m tools sweep-noise-dim``, ``sweep-i2i`` and ``known-source``.

Each sweep trains one model per grid point with ``train.py fit`` (a subprocess, so a
crash or a SLURM preemption costs one point), optionally scores it with ``train.py test``,
and merges the per-run results into one table and figure.  The conventions are shared:

* a point's runs live in ``<save-dir>/<name>/<tag>/{fit,test}`` (TensorBoard versions
  ``fit`` and ``test``);
* a finished fit leaves ``fit/FINISHED`` and is not repeated; an interrupted one resumes
  from its ``last.ckpt``; a test whose result file is newer than ``FINISHED`` is not
  repeated; ``--force`` redoes everything;
* ``--dry-run`` prints the commands, ``--merge-only`` only merges, and
  ``--array-index I`` runs grid point I alone (a SLURM array task,
  ``--array-index $SLURM_ARRAY_TASK_ID``) without merging;
* arguments after ``--`` go to every ``train.py`` call (``args.train_args``);
* ``--seeds K`` (``--first-seed S``) runs every grid point K times, with ``seed_everything``
  S, S+1, ..., S+K-1, in ``<tag>/seed<S>/``; :func:`aggregate_seeds` and
  :func:`write_seed_table` give each point's mean and standard deviation over its seeds.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shlex
import statistics
import shutil
import subprocess
import sys
from typing import Any, Callable, Optional, Sequence

from core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = [
    "ROOT",
    "add_seed_arguments",
    "add_sweep_arguments",
    "aggregate_seeds",
    "check_config",
    "command_parser",
    "run_grid",
    "sweep_name",
    "markdown_table",
    "mean_std",
    "seed_list",
    "seed_override",
    "run_fit",
    "run_test",
    "select_points",
    "tensorboard_scalars",
    "train_command",
    "write_rows",
    "write_seed_table",
]


def command_parser(
    subparsers, name: str, help: str, doc: Optional[str], config_help: str, default_config: Optional[str] = None
) -> argparse.ArgumentParser:
    """A sweep's sub-parser: its module docstring, ``-c/--config``, and arguments after ``--`` for train.py."""
    parser = subparsers.add_parser(
        name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--config", required=default_config is None, default=default_config, help=config_help)
    parser.set_defaults(takes_train_args=True)
    return parser


def check_config(path: str) -> None:
    """A UserError unless the sweep's config file exists."""
    if not os.path.isfile(path):
        raise UserError(f"-c/--config {path}: no such file")


def sweep_name(args: argparse.Namespace, prefix: str) -> str:
    """``--name``, or ``<prefix>/<config file stem>``."""
    return args.name or os.path.join(prefix, os.path.splitext(os.path.basename(args.config))[0])


def run_grid(
    args: argparse.Namespace, points: Sequence[Any], run_point: Callable[[Any], int], merge: Callable[[], Any]
) -> int:
    """Run ``run_point`` on every point (or the ``--array-index`` one), then ``merge``; the exit status.

    Stops at the first failing point.  ``--dry-run`` and an array task do not merge;
    ``--merge-only`` only merges.  A merge that finds nothing (returns a falsy value) is status 1.
    """
    if not args.merge_only:
        for point in select_points(points, args.array_index):
            code = run_point(point)
            if code:
                return code
    if args.dry_run or args.array_index is not None:
        return 0
    return 0 if merge() else 1


def add_sweep_arguments(parser: argparse.ArgumentParser, default_name: str) -> None:
    """The options every sweep script shares."""
    parser.add_argument("--name", help=f"sweep folder under --save-dir (default: {default_name})")
    parser.add_argument("--save-dir", default="runs")
    parser.add_argument("--force", action="store_true", help="retrain and retest even where results exist")
    parser.add_argument("--merge-only", "--merge", action="store_true", help="only merge the existing results")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--array-index",
        type=int,
        help="run only grid point I (0-based, in the order --dry-run lists), e.g. $SLURM_ARRAY_TASK_ID; no merge",
    )


def add_seed_arguments(parser: argparse.ArgumentParser, default: int = 3) -> None:
    """``--seeds K`` and ``--first-seed S``: every grid point runs with seed_everything S..S+K-1."""
    parser.add_argument("--seeds", type=int, default=default, metavar="K",
                        help=f"runs per grid point, each with its own seed_everything (default: {default})")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="the seeds are S, S+1, ..., S+K-1 (default: 0)")  # fmt: skip


def seed_list(args: argparse.Namespace) -> list[int]:
    """The seeds of ``--seeds`` / ``--first-seed``; a UserError for K < 1 or a ``--seed_everything`` after ``--``."""
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if any(a == "--seed_everything" or a.startswith("--seed_everything=") for a in args.train_args):
        raise UserError(
            "the sweep sets seed_everything itself: use --seeds K and --first-seed S, not --seed_everything"
        )
    return list(range(args.first_seed, args.first_seed + args.seeds))


def seed_override(seed: int) -> list[str]:
    """The ``train.py`` arguments of one seed."""
    return ["--seed_everything", str(seed)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof 1) of ``values``.

    The standard deviation of one value is nan (undefined, not 0).  An infinite value makes
    the mean infinite and the standard deviation nan.
    """
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    if not all(math.isfinite(v) for v in values):
        return sum(values), math.nan  # inf (or nan where +inf meets -inf or a nan)
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, math.nan
    return mean, (statistics.stdev(values, mean) if min(values) != max(values) else 0.0)  # equal: 0, not 1e-17


def aggregate_seeds(
    runs: Sequence[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per distinct value of ``keys`` among ``runs`` (each a dict with those keys and ``seed``).

    Each row holds the keys, ``k`` (the number of runs), ``seeds`` (their seeds, space-separated,
    ascending) and, for every metric that at least one of its runs has, ``<metric>_mean`` and
    ``<metric>_std`` (:func:`mean_std` over the runs that have it).  Rows come in the order of
    their first run.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in keys), []).append(run)
    rows = []
    for key, group in groups.items():
        row: dict[str, Any] = dict(zip(keys, key))
        row["k"] = len(group)
        row["seeds"] = " ".join(str(s) for s in sorted(r["seed"] for r in group))
        for metric in metrics:
            values = [r[metric] for r in group if r.get(metric) is not None]
            if values:
                row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(values)
        rows.append(row)
    return rows


def _pm(mean: Any, std: Any) -> str:
    if mean is None:
        return ""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return _cell(mean)
    return f"{_cell(mean)} ± {_cell(std)}"


def write_seed_table(
    rows: Sequence[dict[str, Any]],
    folder: str,
    stem: str,
    keys: Sequence[str],
    metrics: Sequence[str],
    note: str = "",
    headers: Optional[dict[str, str]] = None,
) -> dict[str, str]:
    """``folder/stem.csv`` (keys, k, seeds, ``<metric>_mean``, ``<metric>_std``) and ``folder/stem.md``.

    The Markdown table shows each metric as ``mean ± std`` (std left out where it is nan: one
    seed); ``note`` goes above it (what the seeds are, what the table shows), ``headers``
    renames columns there.  Returns the paths.
    """
    columns = [*keys, "k", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    paths = write_rows(rows, folder, stem, columns, markdown=False)
    paths["md"] = os.path.join(folder, f"{stem}.md")
    display = [
        {**{c: row.get(c) for c in (*keys, "k", "seeds")},
         **{m: _pm(row.get(f"{m}_mean"), row.get(f"{m}_std")) for m in metrics}}
        for row in rows
    ]  # fmt: skip
    table = markdown_table(display, [*keys, "k", "seeds", *metrics], headers)
    with open(paths["md"], "w") as handle:
        handle.write((note.rstrip() + "\n\n" if note else "") + table + "\n")
    return paths


def select_points(points: Sequence[Any], index: Optional[int]) -> list[Any]:
    """All points, or the one at ``index`` (a SLURM array task); an index out of range is an error."""
    if index is None:
        return list(points)
    if not 0 <= index < len(points):
        raise UserError(f"--array-index {index} is outside the grid of {len(points)} points (0..{len(points) - 1})")
    return [points[index]]


def train_command(
    subcommand: str,
    config: str,
    overrides: Sequence[str],
    save_dir: str,
    name: str,
    version: str,
    extra: Sequence[str] = (),
    ckpt_path: Optional[str] = None,
) -> list[str]:
    """``python train.py SUBCOMMAND -c CONFIG OVERRIDES`` logging to ``save_dir/name/version``."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), subcommand, "-c", config, *overrides]
    cmd += ["--trainer.logger.init_args.save_dir", save_dir, "--trainer.logger.init_args.name", name]
    cmd += ["--trainer.logger.init_args.version", version]
    if ckpt_path is not None:
        cmd += ["--ckpt_path", ckpt_path]
    return cmd + list(extra)


def _run(cmd: list[str]) -> int:
    result = subprocess.run(cmd)
    if result.returncode != 0:
        print(f"failed (exit {result.returncode}): {shlex.join(cmd)}", file=sys.stderr)
    return result.returncode


def run_fit(cmd: list[str], fit_dir: str, force: bool, dry_run: bool) -> int:
    """Fit once: skip a finished fit (``fit_dir/FINISHED``), resume an interrupted one from ``last.ckpt``.

    Returns the exit status (0 when skipped or dry).
    """
    finished = os.path.join(fit_dir, "FINISHED")
    last = os.path.join(fit_dir, "checkpoints", "last.ckpt")
    if force and os.path.isdir(fit_dir) and not dry_run:
        shutil.rmtree(fit_dir)
    if not force and os.path.isfile(finished):
        print("# done: " + shlex.join(cmd), flush=True)
        return 0
    if not force and os.path.isfile(last):
        cmd = cmd + ["--ckpt_path", last]  # resume the interrupted run
    print(shlex.join(cmd), flush=True)
    if dry_run:
        return 0
    code = _run(cmd)
    if code == 0:
        with open(finished, "w") as handle:
            handle.write(shlex.join(cmd) + "\n")
    return code


def run_test(cmd: list[str], test_dir: str, result: str, fit_dir: str, force: bool, dry_run: bool) -> int:
    """Test once: skip when ``result`` is newer than the fit's ``FINISHED``; else a fresh ``test_dir``."""
    finished = os.path.join(fit_dir, "FINISHED")
    if (
        not force
        and os.path.isfile(finished)
        and os.path.isfile(result)
        and os.path.getmtime(result) >= os.path.getmtime(finished)
    ):
        print("# done: " + shlex.join(cmd), flush=True)
        return 0
    print(shlex.join(cmd), flush=True)
    if dry_run:
        return 0
    if os.path.isdir(test_dir):
        shutil.rmtree(test_dir)
    return _run(cmd)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Optional[dict[str, str]] = None
) -> str:
    """A GitHub markdown table of ``columns`` (4 significant digits); ``headers`` renames columns in the header."""
    headers = headers or {}
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_rows(
    rows: Sequence[dict[str, Any]], folder: str, stem: str, columns: Sequence[str], markdown: bool = True
) -> dict[str, str]:
    """``folder/stem.csv`` (full precision) and, with ``markdown``, ``folder/stem.md``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = {"csv": os.path.join(folder, f"{stem}.csv")}
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if markdown:
        paths["md"] = os.path.join(folder, f"{stem}.md")
        with open(paths["md"], "w") as handle:
            handle.write(markdown_table(rows, columns) + "\n")
    return paths


def tensorboard_scalars(folder: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar logged in ``folder``'s TensorBoard event files: ``{tag: [(step, value), ...]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(folder, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, float(e.value)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
