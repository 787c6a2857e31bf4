"""Sweep the noise entropy eps of NoiseDimGAN, in bits and over seeds: the seed paper's Fig. 2-5.

The grid is every capacity ``ch`` of ``--ch`` x every noise kind x every n of ``--dims``, and
every grid point runs ``--seeds K`` times (seed_everything S, S+1, ..., S+K-1; S is
``--first-seed``).  The noise kinds:

* the config's own noise (its distribution and format), when neither option below is given;
* ``--formats F ...``: the config's noise stored in each float format F (``noise.format``:
  float64, float32, bfloat16, float16, float8_e4m3fn, float8_e5m2; aliases fp64, fp32, bf16,
  fp16);
* ``--discrete-bits B ...``: B-bit discrete noise (``noise.distribution: discrete``,
  ``noise.bits: B``), eps = B n bits exactly.

Each run of a point (tag ``ch{CH}_n{N}``, ``ch{CH}_n{N}_{format}`` or ``ch{CH}_n{N}_b{B}``) is

    python train.py fit  -c CONFIG --model.init_args.noise.dim N --model.init_args.ch CH \\
        [--model.init_args.noise.format F | --model.init_args.noise.distribution discrete \\
         --model.init_args.noise.bits B] --seed_everything S     (-> <save-dir>/<name>/<tag>/seed<S>/fit)
    python train.py test ... --ckpt_path .../fit/checkpoints/last.ckpt                  (-> .../test)

The config's ``callbacks.GenerativeMetrics`` scores the test (FID, KID, precision/recall; the
project's classifier features work offline); the script reads those values from the test
run's TensorBoard events into ``test/metrics.json``, with the point's eps in bits:
``noise/budget_bits`` of the fit's ``hparams.yaml`` where the model logs it (all the
randomness the generator receives per sample), else ``NoiseSpec(...).entropy_bits()`` of the
point's noise (the config's noise with the point's settings).  Column ``eps_source`` says
which (``budget_bits`` or ``entropy_bits``).

The merge writes to ``<save-dir>/<name>/``:

* ``noise_dim.csv`` / ``noise_dim.md``: per point ch, n, noise, eps_bits, eps_source, k (runs
  merged), seeds, and the mean and standard deviation over its seeds of FID, KID, precision
  and recall (``<metric>_mean``, ``<metric>_std``; the Markdown shows ``mean ± std`` and names
  K and the seeds);
* ``noise_dim_runs.csv``: every run (one row per seed), KID's subset std included;
* ``fid_vs_eps.png``, ``kid_vs_eps.png`` and, where logged, ``precision_recall_vs_eps.png``:
  mean ± std error bars against eps (log2 axis), one curve per (ch, noise kind), with Theorem
  4.2's line when a rate is given: eps = n H(format) >= E[L] - 1 bits (Noise-dim Eq. 9 times
  H; ``--rate-json`` from ``python -m analysis codec-rate --out``, or ``--bits-per-image``;
  computed by :mod:`analysis.noise_dim`, which also gives n_min for ``--format``);
* ``samples_ch{CH}.png``: the last fixed-noise sample grid of every point (first seed),
  side by side (Fig. 5).

Resume (finished runs are skipped, an interrupted fit resumes from ``last.ckpt``),
``--force``, ``--dry-run``, ``--merge-only`` and ``--array-index I`` (one *run* -- a point
and a seed -- per SLURM array task, in the order ``--dry-run`` lists: seeds outermost, so the
first seed of every point comes first; ``--merge-only`` afterwards) are those of
:mod:`tools.sweep`; arguments after ``--`` go to every ``train.py`` call (all but
``--seed_everything``, which ``--seeds`` sets).

    python -m tools sweep-noise-dim -c configs/noise_dim/digits_biggan.yaml --dims 1 4 16 64 --ch 8 \\
        --rate-json digits.json
    python -m tools sweep-noise-dim -c configs/noise_dim/digits_biggan.yaml --dims 8 --ch 4 \\
        --formats fp16 bf16 fp32 fp64 --discrete-bits 1 4 --seeds 3
    sbatch --array=0-89 --wrap "python -m tools sweep-noise-dim --array-index \\$SLURM_ARRAY_TASK_ID"

(Formerly ``python scripts/sweep_noise_dim.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from analysis.commands.noise_dim import read_rate_json
from analysis.noise_dim import format_entropy, lower_bound, noise_dim_bound
from core.errors import UserError
from core.float_entropy import resolve_format
from core.noise import NoiseSpec
from tools import sweep
from tools.sweep import ROOT

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "noise_dim", "cifar10_biggan.yaml")
#: The paper's Fig. 2 sweeps n from 1 up past Table 3's bound (475-477 for CIFAR10 in float32).
DEFAULT_DIMS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: BigGAN's CIFAR capacity is ch = 64; the smaller ones are the paper's reduced-capacity runs.
DEFAULT_CH = (16, 32, 64)
METRICS = ("metrics/fid", "metrics/kid_mean", "metrics/kid_std", "metrics/precision", "metrics/recall")
#: Per-run columns (``noise_dim_runs.csv``); kid_std is KID's std over its subsets, within one run.
RUN_COLUMNS = [
    "ch", "n", "noise", "seed", "eps_bits", "eps_source", "fid", "kid_mean", "kid_std", "precision", "recall",
]  # fmt: skip
#: A point's columns and the metrics averaged over its seeds (``noise_dim.csv``).
POINT_KEYS = ("ch", "n", "noise", "eps_bits", "eps_source")
SEED_METRICS = {"fid": "FID", "kid_mean": "KID", "precision": "precision", "recall": "recall"}
RESULT_FILE = "metrics.json"
#: The hparams key of the total randomness per sample a generator receives, when the model logs it.
BUDGET_KEY = "noise/budget_bits"


@dataclass(frozen=True)
class Point:
    """One run of the grid: capacity ``ch``, noise dimension ``n``, noise kind and seed.

    The noise kind: the config's noise (``fmt`` empty, ``bits`` 0), the config's noise stored in
    float format ``fmt``, or ``bits``-bit discrete noise (``bits`` > 0).
    """

    ch: int
    n: int
    fmt: str = ""
    bits: int = 0
    seed: int = 0

    @property
    def tag(self) -> str:
        kind = f"_b{self.bits}" if self.bits else (f"_{self.fmt}" if self.fmt else "")
        return f"ch{self.ch}_n{self.n}{kind}"

    @property
    def kind(self) -> tuple[str, int]:
        return self.fmt, self.bits

    def overrides(self) -> list[str]:
        """The ``train.py`` arguments of the point (not of the seed)."""
        out = ["--model.init_args.noise.dim", str(self.n), "--model.init_args.ch", str(self.ch)]
        if self.bits:
            out += ["--model.init_args.noise.distribution", "discrete", "--model.init_args.noise.bits", str(self.bits)]
        elif self.fmt:
            out += ["--model.init_args.noise.format", self.fmt]
        return out

    def noise(self, config_noise: dict[str, Any]) -> NoiseSpec:
        """The point's noise: the config's ``model.init_args.noise`` with n and the kind's settings."""
        settings = {**config_noise, "dim": self.n}
        if self.bits:
            settings.update(distribution="discrete", bits=self.bits)
        elif self.fmt:
            settings["format"] = self.fmt
        return NoiseSpec.coerce(settings)


def noise_kinds(formats: Sequence[str], discrete_bits: Sequence[int]) -> list[tuple[str, int]]:
    """The (fmt, bits) kinds of ``--formats`` (canonical names) and ``--discrete-bits``; else the config's noise."""
    try:
        kinds = [(resolve_format(f).name, 0) for f in formats]
    except ValueError as err:
        raise UserError(f"--formats: {err}") from None
    if any(b < 1 for b in discrete_bits):
        raise UserError(f"--discrete-bits must be >= 1, got {list(discrete_bits)}")
    kinds += [("", b) for b in discrete_bits]
    return list(dict.fromkeys(kinds)) or [("", 0)]


def noise_label(spec: NoiseSpec) -> str:
    """``discrete 4-bit`` or ``<distribution> <format>``."""
    return f"discrete {spec.bits}-bit" if spec.distribution == "discrete" else f"{spec.distribution} {spec.format}"


def config_noise(config: str) -> dict[str, Any]:
    """The config file's ``model.init_args.noise`` (``{}`` where it has none)."""
    import yaml

    with open(config) as handle:
        loaded = yaml.safe_load(handle) or {}
    noise = ((loaded.get("model") or {}).get("init_args") or {}).get("noise")
    return dict(noise) if isinstance(noise, dict) else {}


def run_folders(save_dir: str, name: str, point: Point) -> tuple[str, str]:
    """The fit and test folders of one run."""
    base = os.path.join(save_dir, name, point.tag, f"seed{point.seed}")
    return os.path.join(base, "fit"), os.path.join(base, "test")


def commands(config: str, point: Point, save_dir: str, name: str, extra: Sequence[str]) -> tuple[list, list]:
    """The ``train.py fit`` and ``train.py test`` command lines of one run."""
    fit_dir, _ = run_folders(save_dir, name, point)
    overrides = point.overrides() + sweep.seed_override(point.seed)
    run_name = os.path.join(name, point.tag, f"seed{point.seed}")
    fit = sweep.train_command("fit", config, overrides, save_dir, run_name, "fit", extra)
    last = os.path.join(fit_dir, "checkpoints", "last.ckpt")
    return fit, sweep.train_command("test", config, overrides, save_dir, run_name, "test", extra, ckpt_path=last)


def point_entropy(fit_dir: str, spec: NoiseSpec) -> tuple[float, str]:
    """(eps in bits, its source): ``noise/budget_bits`` of the fit's hparams.yaml, else ``spec.entropy_bits()``."""
    import yaml

    path = os.path.join(fit_dir, "hparams.yaml")
    if os.path.isfile(path):
        with open(path) as handle:
            hparams = yaml.safe_load(handle) or {}
        if hparams.get(BUDGET_KEY) is not None:
            return float(hparams[BUDGET_KEY]), "budget_bits"
    return float(spec.entropy_bits()), "entropy_bits"


def read_test_metrics(test_dir: str) -> dict[str, Any]:
    """The last logged ``metrics/*`` of the test run (TensorBoard events)."""
    scalars = sweep.tensorboard_scalars(test_dir)
    if "metrics/fid" not in scalars:
        raise RuntimeError(
            f"{test_dir}: the test logged no metrics/fid; the config needs a callbacks.GenerativeMetrics"
        )
    return {tag.split("/", 1)[1]: scalars[tag][-1][1] for tag in METRICS if tag in scalars}


def run_point(config: str, point: Point, spec: NoiseSpec, save_dir: str, name: str, extra: Sequence[str],
              force: bool, dry_run: bool) -> int:  # fmt: skip
    """Fit, test and record one run; returns the first non-zero exit status, else 0."""
    fit, test = commands(config, point, save_dir, name, extra)
    fit_dir, test_dir = run_folders(save_dir, name, point)
    result = os.path.join(test_dir, RESULT_FILE)
    code = sweep.run_fit(fit, fit_dir, force, dry_run)
    code = code or sweep.run_test(test, test_dir, result, fit_dir, force, dry_run)
    if code or dry_run or os.path.isfile(result):
        return code
    eps, source = point_entropy(fit_dir, spec)
    record = {"ch": point.ch, "n": point.n, "noise": noise_label(spec), "seed": point.seed,
              "eps_bits": eps, "eps_source": source, **read_test_metrics(test_dir)}  # fmt: skip
    with open(result, "w") as handle:
        json.dump(record, handle, indent=2)
    return 0


def theorem_bound(rate_json: Optional[str], bits_per_image: Optional[float], fmt: str) -> Optional[dict[str, Any]]:
    """Noise-dim Theorem 4.2 (Eq. 9) for the given rate, or None.

    Keys: ``lower`` and ``n_min`` (n >= (E[L] - 1) / H(fmt)), ``eps_min`` (the same bound on
    eps = n H in bits: E[L] - 1, whatever the format), ``bits``, ``codec``, ``format``.
    """
    if rate_json is None and bits_per_image is None:
        return None
    if rate_json is not None:
        _, codec, bits = read_rate_json(rate_json, None)
    else:
        codec, bits = "given", float(bits_per_image)
    bound = noise_dim_bound(bits, format_entropy(fmt))
    return {"lower": bound.lower, "n_min": bound.n_min, "eps_min": lower_bound(bits, 1.0), "bits": bits,
            "codec": codec, "format": fmt}  # fmt: skip


def seeds_text(seeds: Sequence[int]) -> str:
    return f"K = {len(seeds)} seed{'s' if len(seeds) != 1 else ''} (seed_everything {', '.join(map(str, seeds))})"


def _plot_vs_eps(points: Sequence[dict[str, Any]], panels: Sequence[tuple[str, str]], path: str,
                 bound: Optional[dict], seeds: Sequence[int]) -> str:  # fmt: skip
    """One panel per (metric, label): mean ± std over the seeds against eps, one curve per (ch, noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.8 * len(panels), 4.0), squeeze=False)
    series = sorted({(p["ch"], p["noise"]) for p in points}, key=lambda s: (s[0], s[1]))
    for ax, (metric, label) in zip(axes[0], panels):
        for ch, noise in series:
            rows = sorted((p for p in points if (p["ch"], p["noise"]) == (ch, noise) and f"{metric}_mean" in p),
                          key=lambda p: p["eps_bits"])  # fmt: skip
            if not rows:
                continue
            std = [0.0 if p[f"{metric}_std"] != p[f"{metric}_std"] else p[f"{metric}_std"] for p in rows]  # nan: 1 seed
            ax.errorbar([p["eps_bits"] for p in rows], [p[f"{metric}_mean"] for p in rows], yerr=std, marker="o",
                        capsize=3, label=f"ch = {ch}, {noise}")  # fmt: skip
        if bound is not None:
            ax.axvline(bound["eps_min"], color="black", ls="--", lw=1,
                       label=f"Theorem 4.2: eps >= {bound['eps_min']:.0f} bits ({bound['codec']})")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("eps = noise entropy (bits per sample)")
        ax.set_ylabel(f"{label} (mean ± std)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"mean ± std over {seeds_text(seeds)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_samples(grids: Sequence[tuple[str, str]], title: str, path: str) -> Optional[str]:
    """The last sample grid of each (panel title, fit folder), side by side (Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    found = []
    for panel, fit_dir in grids:
        pngs = sorted(glob.glob(os.path.join(fit_dir, "samples", "*.png")))
        if pngs:
            found.append((panel, pngs[-1]))
    if not found:
        return None
    fig, axes = plt.subplots(1, len(found), figsize=(2.6 * len(found), 2.9), squeeze=False)
    for ax, (panel, png) in zip(axes[0], found):
        ax.imshow(mpimg.imread(png), cmap="gray")
        ax.set_title(panel, fontsize=8)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def merge(
    save_dir: str, name: str, grid: Sequence[Point], bound: Optional[dict], seeds: Sequence[int]
) -> Optional[dict]:
    """Tables and figures of the finished runs; returns the written paths (None when there is nothing)."""
    runs, missing, samples = [], [], {}
    for point in grid:
        fit_dir, test_dir = run_folders(save_dir, name, point)
        path = os.path.join(test_dir, RESULT_FILE)
        if not os.path.isfile(path):
            missing.append(path)
            continue
        with open(path) as handle:
            runs.append(json.load(handle))
        if point.seed == seeds[0]:
            title = f"n = {point.n}, {runs[-1]['noise']}"
            samples.setdefault(point.ch, []).append((runs[-1]["eps_bits"], title, fit_dir))
    if missing:
        print("not merged (no test metrics yet):", *missing, sep="\n  ")
    if not runs:
        return None
    grids = {ch: [(title, fit_dir) for _, title, fit_dir in sorted(found)] for ch, found in samples.items()}
    return write_results(runs, os.path.join(save_dir, name), bound, seeds, grids)


def write_results(runs: list[dict], folder: str, bound: Optional[dict], seeds: Sequence[int],
                  samples: Optional[dict[int, list[tuple[str, str]]]] = None) -> dict:  # fmt: skip
    """Tables, plots and sample figures of ``runs`` (each: ch, n, noise, seed, eps_bits, eps_source, fid, ...).

    ``samples`` maps a capacity to its (panel title, fit folder) pairs for ``samples_ch<ch>.png``.
    """
    runs = sorted(runs, key=lambda r: (r["ch"], r["noise"], r["eps_bits"], r["n"], r["seed"]))
    points = sweep.aggregate_seeds(runs, POINT_KEYS, list(SEED_METRICS))
    note = (
        f"Mean ± standard deviation (sample std, ddof 1) over the seeds of each point: {seeds_text(seeds)}; "
        "k = the runs merged, seeds = theirs. eps = the noise entropy in bits per sample; eps from: budget_bits = "
        "noise/budget_bits of the run's hparams.yaml, entropy_bits = NoiseSpec(...).entropy_bits() of the point's "
        "noise."
    )
    headers = {**SEED_METRICS, "eps_bits": "eps (bits)", "eps_source": "eps from"}
    paths = sweep.write_seed_table(points, folder, "noise_dim", POINT_KEYS, list(SEED_METRICS), note, headers)
    paths["runs_csv"] = sweep.write_rows(runs, folder, "noise_dim_runs", RUN_COLUMNS, markdown=False)["csv"]
    if bound is not None:
        with open(os.path.join(folder, "theorem_4_2.json"), "w") as handle:
            json.dump(bound, handle, indent=2)
    paths["fid"] = _plot_vs_eps(points, [("fid", "FID")], os.path.join(folder, "fid_vs_eps.png"), bound, seeds)
    paths["kid"] = _plot_vs_eps(points, [("kid_mean", "KID")], os.path.join(folder, "kid_vs_eps.png"), bound, seeds)
    if any("precision_mean" in p or "recall_mean" in p for p in points):
        panels = [("precision", "precision"), ("recall", "recall")]
        path = os.path.join(folder, "precision_recall_vs_eps.png")
        paths["precision_recall"] = _plot_vs_eps(points, panels, path, bound, seeds)
    for ch, grids in sorted((samples or {}).items()):
        figure = plot_samples(grids, f"samples, ch = {ch}", os.path.join(folder, f"samples_ch{ch}.png"))
        if figure:
            paths[f"samples_ch{ch}"] = figure
    with open(paths["md"]) as handle:
        print(handle.read())
    if bound is not None:
        print(
            f"Theorem 4.2: eps >= {bound['eps_min']:.1f} bits, i.e. n >= {bound['lower']:.2f} (n_min = "
            f"{bound['n_min']}) in {bound['format']}, from {bound['bits']:.1f} bits/image ({bound['codec']})"
        )
    print("\nwrote", *paths.values(), sep="\n  ")
    return paths


def add_command(subparsers, name: str, help: str) -> None:
    parser = sweep.command_parser(
        subparsers, name, help, __doc__, "a NoiseDimGAN config with GenerativeMetrics", DEFAULT_CONFIG
    )
    parser.add_argument("--dims", type=int, nargs="+", default=list(DEFAULT_DIMS), help="noise dimensions n")
    parser.add_argument("--ch", type=int, nargs="+", default=list(DEFAULT_CH), help="capacities (model.init_args.ch)")
    parser.add_argument(
        "--formats", nargs="+", default=[], metavar="F",
        help="float formats of the noise (noise.format: fp16 bf16 fp32 fp64 ...); default: the config's own noise",
    )  # fmt: skip
    parser.add_argument(
        "--discrete-bits", type=int, nargs="+", default=[], metavar="B",
        help="B-bit discrete noise (noise.distribution discrete, noise.bits B), eps = B n bits",
    )  # fmt: skip
    sweep.add_seed_arguments(parser)
    parser.add_argument("--rate-json", help="a `python -m analysis codec-rate --out` JSON: Theorem 4.2's line")
    parser.add_argument("--bits-per-image", type=float, help="a lossless rate in bits per image, instead")
    parser.add_argument(
        "--format", default="float32", help="format of Theorem 4.2's n_min (default: float32; its eps line needs none)"
    )
    sweep.add_sweep_arguments(parser, "noise_dim_sweep/<config file stem>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if any(n < 1 for n in args.dims) or any(c < 1 for c in args.ch):
        raise UserError(f"--dims and --ch must be >= 1, got {args.dims} and {args.ch}")
    sweep.check_config(args.config)
    seeds = sweep.seed_list(args)
    kinds = noise_kinds(args.formats, args.discrete_bits)
    try:
        bound = theorem_bound(args.rate_json, args.bits_per_image, args.format)  # fails early on a bad rate file
    except ValueError as err:
        raise UserError(str(err)) from err
    base = config_noise(args.config)
    specs = {}
    for fmt, bits in kinds:  # a bad combination (e.g. levels that collide in the format) fails before any training
        for n in sorted(set(args.dims)):
            point = Point(1, n, fmt, bits)
            try:
                specs[point.kind, n] = point.noise(base)
            except ValueError as err:
                raise UserError(f"the noise of {point.tag[4:]}: {err}") from None
    name = sweep.sweep_name(args, "noise_dim_sweep")
    grid = [
        Point(ch, n, fmt, bits, seed)
        for seed in seeds
        for ch in sorted(set(args.ch))
        for fmt, bits in kinds
        for n in sorted(set(args.dims))
    ]
    extra = args.train_args
    return sweep.run_grid(
        args,
        grid,
        lambda p: run_point(args.config, p, specs[p.kind, p.n], args.save_dir, name, extra, args.force, args.dry_run),
        lambda: merge(args.save_dir, name, grid, bound, seeds),
    )
