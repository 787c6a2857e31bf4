"""Sweep the noise dimension n (and the capacity ch) of NoiseDimGAN: the seed paper's Fig. 2-5.

For each capacity ``ch`` of ``--ch`` and each n of ``--dims`` this runs, one point after the other,

    python train.py fit  -c CONFIG --model.init_args.noise.dim N --model.init_args.ch CH
                                                      (-> <save-dir>/<name>/ch{CH}_n{N}/fit)
    python train.py test -c CONFIG ... --ckpt_path .../fit/checkpoints/last.ckpt   (-> .../test)

The config's ``callbacks.GenerativeMetrics`` scores the test (FID, KID, precision/recall of
EMA samples; the project's classifier features work offline); the script reads those values
from the test run's TensorBoard events into ``test/metrics.json``.  The merge writes to
``<save-dir>/<name>/``:

* ``noise_dim.csv`` / ``noise_dim.md``: ch, n, eps = H(Z) in bits, FID, KID (mean, std),
  precision, recall;
* ``fid_vs_n.png`` and ``kid_vs_n.png``: one curve per capacity against n (log axis), with
  Theorem 4.2's lower bound n >= (E[L] - 1) / H(format) as a vertical line when a rate is given
  (``--rate-json`` from ``python -m analysis codec-rate --out``, or ``--bits-per-image``;
  computed by :mod:`analysis.noise_dim`);
* ``samples_ch{CH}.png``: the last fixed-noise sample grid of every n, side by side (Fig. 5).

Resume (finished points are skipped, an interrupted fit resumes from ``last.ckpt``),
``--force``, ``--dry-run``, ``--merge-only`` and ``--array-index I`` (one grid point per SLURM
array task, in the order ``--dry-run`` lists; ``--merge-only`` afterwards) are those of
:mod:`tools.sweep`; arguments after ``--`` go to every ``train.py`` call.

    python -m tools sweep-noise-dim -c configs/noise_dim/digits_biggan.yaml --dims 1 4 16 64 --ch 8 \\
        --rate-json digits.json
    sbatch --array=0-29 --wrap "python -m tools sweep-noise-dim --array-index \\$SLURM_ARRAY_TASK_ID"

(Formerly ``python scripts/sweep_noise_dim.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Any, Optional, Sequence

from analysis.commands.noise_dim import read_rate_json
from analysis.noise_dim import format_entropy, noise_dim_bound
from core.errors import UserError
from tools import sweep
from tools.sweep import ROOT

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "noise_dim", "cifar10_biggan.yaml")
#: The paper's Fig. 2 sweeps n from 1 up past Table 3's bound (475-477 for CIFAR10 in float32).
DEFAULT_DIMS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: BigGAN's CIFAR capacity is ch = 64; the smaller ones are the paper's reduced-capacity runs.
DEFAULT_CH = (16, 32, 64)
METRICS = ("metrics/fid", "metrics/kid_mean", "metrics/kid_std", "metrics/precision", "metrics/recall")
COLUMNS = ["ch", "n", "eps_bits", "fid", "kid_mean", "kid_std", "precision", "recall"]
RESULT_FILE = "metrics.json"


def _tag(ch: int, n: int) -> str:
    return f"ch{ch}_n{n}"


def run_folders(save_dir: str, name: str, ch: int, n: int) -> tuple[str, str]:
    """The fit and test folders of one grid point."""
    base = os.path.join(save_dir, name, _tag(ch, n))
    return os.path.join(base, "fit"), os.path.join(base, "test")


def commands(config: str, ch: int, n: int, save_dir: str, name: str, extra: Sequence[str]) -> tuple[list, list]:
    """The ``train.py fit`` and ``train.py test`` command lines of one grid point."""
    fit_dir, _ = run_folders(save_dir, name, ch, n)
    overrides = ["--model.init_args.noise.dim", str(n), "--model.init_args.ch", str(ch)]
    run_name = os.path.join(name, _tag(ch, n))
    fit = sweep.train_command("fit", config, overrides, save_dir, run_name, "fit", extra)
    last = os.path.join(fit_dir, "checkpoints", "last.ckpt")
    return fit, sweep.train_command("test", config, overrides, save_dir, run_name, "test", extra, ckpt_path=last)


def read_test_metrics(test_dir: str, fit_dir: str) -> dict[str, Any]:
    """The last logged ``metrics/*`` of the test run (TensorBoard events) and the noise entropy (fit hparams)."""
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(test_dir, size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    if "metrics/fid" not in tags:
        raise RuntimeError(
            f"{test_dir}: the test logged no metrics/fid; the config needs a callbacks.GenerativeMetrics"
        )
    out: dict[str, Any] = {tag.split("/", 1)[1]: events.Scalars(tag)[-1].value for tag in METRICS if tag in tags}
    with open(os.path.join(fit_dir, "hparams.yaml")) as handle:
        hparams = yaml.safe_load(handle)
    out["eps_bits"] = float(hparams["noise/entropy_bits"])
    return out


def run_point(config: str, ch: int, n: int, save_dir: str, name: str, extra: Sequence[str], force: bool,
              dry_run: bool) -> int:  # fmt: skip
    """Fit, test and record one (ch, n); returns the first non-zero exit status, else 0."""
    fit, test = commands(config, ch, n, save_dir, name, extra)
    fit_dir, test_dir = run_folders(save_dir, name, ch, n)
    result = os.path.join(test_dir, RESULT_FILE)
    code = sweep.run_fit(fit, fit_dir, force, dry_run)
    code = code or sweep.run_test(test, test_dir, result, fit_dir, force, dry_run)
    if code or dry_run or os.path.isfile(result):
        return code
    record = {"ch": ch, "n": n, **read_test_metrics(test_dir, fit_dir)}
    with open(result, "w") as handle:
        json.dump(record, handle, indent=2)
    return 0


def theorem_bound(rate_json: Optional[str], bits_per_image: Optional[float], fmt: str) -> Optional[dict[str, Any]]:
    """Noise-dim Theorem 4.2 (Eq. 9) for the given rate: ``{"lower", "n_min", "bits", "codec", "format"}``, or None."""
    if rate_json is None and bits_per_image is None:
        return None
    if rate_json is not None:
        _, codec, bits = read_rate_json(rate_json, None)
    else:
        codec, bits = "given", float(bits_per_image)
    bound = noise_dim_bound(bits, format_entropy(fmt))
    return {"lower": bound.lower, "n_min": bound.n_min, "bits": bits, "codec": codec, "format": fmt}


def _plot_metric(rows: Sequence[dict[str, Any]], key: str, label: str, path: str, bound: Optional[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for ch in sorted({r["ch"] for r in rows}):
        points = sorted((r["n"], r[key]) for r in rows if r["ch"] == ch and r.get(key) is not None)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"ch = {ch}")
    if bound is not None:
        ax.axvline(bound["lower"], color="black", ls="--", lw=1,
                   label=f"Theorem 4.2: n >= {bound['lower']:.1f} ({bound['codec']}, {bound['format']})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("noise dimension n")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_samples(save_dir: str, name: str, ch: int, dims: Sequence[int], path: str) -> Optional[str]:
    """The last sample grid of each n (Fig. 5), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    grids = []
    for n in dims:
        pngs = sorted(glob.glob(os.path.join(run_folders(save_dir, name, ch, n)[0], "samples", "*.png")))
        if pngs:
            grids.append((n, pngs[-1]))
    if not grids:
        return None
    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids), 2.9), squeeze=False)
    for ax, (n, png) in zip(axes[0], grids):
        ax.imshow(mpimg.imread(png), cmap="gray")
        ax.set_title(f"n = {n}")
        ax.axis("off")
    fig.suptitle(f"samples, ch = {ch}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def merge(save_dir: str, name: str, grid: Sequence[tuple[int, int]], bound: Optional[dict]) -> Optional[dict]:
    """Table and figures of the finished grid points; returns the written paths (None when there is nothing)."""
    rows, missing = [], []
    for ch, n in grid:
        path = os.path.join(run_folders(save_dir, name, ch, n)[1], RESULT_FILE)
        if os.path.isfile(path):
            with open(path) as handle:
                rows.append(json.load(handle))
        else:
            missing.append(path)
    if missing:
        print("not merged (no test metrics yet):", *missing, sep="\n  ")
    if not rows:
        return None
    return write_results(rows, os.path.join(save_dir, name), bound, save_dir, name)


def write_results(rows: list[dict], folder: str, bound: Optional[dict], save_dir: str = "", name: str = "") -> dict:
    """Table, FID/KID plots and sample figures of ``rows`` (each: ch, n, eps_bits, fid, kid_mean, ...)."""
    rows = sorted(rows, key=lambda r: (r["ch"], r["n"]))
    paths = sweep.write_rows(rows, folder, "noise_dim", COLUMNS)
    if bound is not None:
        with open(os.path.join(folder, "theorem_4_2.json"), "w") as handle:
            json.dump(bound, handle, indent=2)
    paths["fid"] = _plot_metric(rows, "fid", "FID", os.path.join(folder, "fid_vs_n.png"), bound)
    paths["kid"] = _plot_metric(rows, "kid_mean", "KID", os.path.join(folder, "kid_vs_n.png"), bound)
    for ch in sorted({r["ch"] for r in rows}):
        dims = sorted(r["n"] for r in rows if r["ch"] == ch)
        samples = _plot_samples(save_dir, name, ch, dims, os.path.join(folder, f"samples_ch{ch}.png"))
        if samples:
            paths[f"samples_ch{ch}"] = samples
    print(sweep.markdown_table(rows, COLUMNS))
    if bound is not None:
        print(f"\nTheorem 4.2: n >= {bound['lower']:.2f} (n_min = {bound['n_min']}) from {bound['bits']:.1f} bits/image "
              f"({bound['codec']}) and H({bound['format']})")
    print("\nwrote", *paths.values(), sep="\n  ")
    return paths


def add_command(subparsers, name: str, help: str) -> None:
    parser = sweep.command_parser(
        subparsers, name, help, __doc__, "a NoiseDimGAN config with GenerativeMetrics", DEFAULT_CONFIG
    )
    parser.add_argument("--dims", type=int, nargs="+", default=list(DEFAULT_DIMS), help="noise dimensions n")
    parser.add_argument("--ch", type=int, nargs="+", default=list(DEFAULT_CH), help="capacities (model.init_args.ch)")
    parser.add_argument("--rate-json", help="a `python -m analysis codec-rate --out` JSON: Theorem 4.2's line")
    parser.add_argument("--bits-per-image", type=float, help="a lossless rate in bits per image, instead")
    parser.add_argument("--format", default="float32", help="noise format of the bound (default: float32)")
    sweep.add_sweep_arguments(parser, "noise_dim_sweep/<config file stem>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if any(n < 1 for n in args.dims) or any(c < 1 for c in args.ch):
        raise UserError(f"--dims and --ch must be >= 1, got {args.dims} and {args.ch}")
    sweep.check_config(args.config)
    try:
        bound = theorem_bound(args.rate_json, args.bits_per_image, args.format)  # fails early on a bad rate file
    except ValueError as err:
        raise UserError(str(err)) from err
    name = sweep.sweep_name(args, "noise_dim_sweep")
    grid = [(ch, n) for ch in sorted(set(args.ch)) for n in sorted(set(args.dims))]
    extra = args.train_args
    return sweep.run_grid(
        args,
        grid,
        lambda point: run_point(args.config, *point, args.save_dir, name, extra, args.force, args.dry_run),
        lambda: merge(args.save_dir, name, grid, bound),
    )
