"""``python -m analysis divergence-entropy``: d(eps) of seed "noise dimension" Sec. 4.4 (Noise-dim Eq. 11, Fig. 1).

d(eps) = min over q of D(p, q) s.t. H(q) <= eps: the best divergence from the source p that a
generator whose output carries at most eps bits can reach. Each eps of the sweep is solved
twice: as the paper's DCCP program (``dccp`` + cvxpy + Clarabel, a local heuristic) and by
an exact solver built on the Lagrange conditions (analysis.divergence_entropy); the report
gives both and their largest disagreement. eps and H are in bits; KL, reverse KL and JS in
bits too; TV is a plain number in [0, 1].

The source p: --p numbers, --p-file x.npy, or --data (images) for the empirical histogram of
8-bit pixel values (--symbols pixels, 256 symbols) or of whole images (--symbols images,
each distinct image a symbol). Default: p = (0.58, 0.19, 0.09, 0.07, 0.04, 0.02, 0.01),
our 7-class example with H = 1.857 bits like the paper's Fig. 1(a), whose probabilities the
paper does not print. --solver auto (the default) runs DCCP beside the exact solver for up
to 64 symbols and the exact solver alone above (DCCP needs about 0.5 s per eps at 256
symbols and 2 s at 1024, and fails more often there); --solver both forces it.
"""

from __future__ import annotations

import argparse
import math
from typing import Optional

import numpy as np

from analysis.cli import Report, UsageError, add_output_arguments, command_parser, progress
from analysis.data import add_data_arguments, iter_uint8_images, load_npy
from analysis.divergence_entropy import (
    DCCP_FORMS,
    DIVERGENCE_NAMES,
    DIVERGENCES,
    PAPER_EXAMPLE_P,
    ExactSolver,
    Solution,
    check_distribution,
    d_at_zero,
    divergence_unit,
    solve_dccp,
)

AUTO_DCCP_MAX_SYMBOLS = 64  # --solver auto runs DCCP too up to this many symbols in the support of p
_D0_WORDS = {
    "kl": "d(0) = inf: KL(p||q) is infinite at every point mass unless p is one",
    "reverse-kl": "d(0) = -log2 max p = {d0:.6g} bits (KL(delta||p) at argmax p)",
    "js": "d(0) = JS(p, delta at argmax p) = {d0:.6g} bits",
    "tv": "d(0) = 1 - max p = {d0:.6g}",
}


def _source_p(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    sources = (("--p", args.p), ("--p-file", args.p_file), ("--data", args.data))
    given = [name for name, value in sources if value is not None]
    if len(given) > 1:
        raise UsageError(f"give at most one source of p, got {' and '.join(given)}")
    if args.p is not None:
        return _checked(np.asarray(args.p, dtype=np.float64), "--p"), f"--p ({len(args.p)} symbols)"
    if args.p_file is not None:
        path = args.p_file
        arr = load_npy(path, "--p-file", "probabilities")
        return _checked(arr.reshape(-1), f"--p-file {path}"), f"{path} ({arr.size} symbols)"
    if args.data is not None:
        return _histogram(args)
    return PAPER_EXAMPLE_P.copy(), "paper-like 7-class example (default)"


def _checked(p: np.ndarray, what: str) -> np.ndarray:
    try:
        return check_distribution(p)
    except ValueError as err:
        raise UsageError(f"{what}: {err}") from None


def _histogram(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    if args.symbols == "pixels":
        counts = np.zeros(256, dtype=np.int64)
        images = 0
        images_in = iter_uint8_images(args.data, args.split, args.limit, args.data_args)
        for _, image in progress(images_in, desc="pixel histogram"):
            counts += np.bincount(image.reshape(-1), minlength=256)
            images += 1
        p = counts / counts.sum()
        return p, f"pixel values of {images} images from {args.data} (256 symbols, {int((counts > 0).sum())} seen)"
    seen: dict[bytes, int] = {}
    images = 0
    images_in = iter_uint8_images(args.data, args.split, args.limit, args.data_args)
    for _, image in progress(images_in, desc="image histogram"):
        key = repr(image.shape).encode() + image.tobytes()
        seen[key] = seen.get(key, 0) + 1
        images += 1
    counts = np.array(sorted(seen.values(), reverse=True), dtype=np.float64)
    return counts / counts.sum(), f"{images} images from {args.data} ({len(counts)} distinct: one symbol each)"


def _eps_grid(args: argparse.Namespace) -> np.ndarray:
    for name in ("eps_min", "eps_max"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0 (bits), got {value}")
    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}")
    if args.eps_max < args.eps_min:
        raise UsageError(f"--eps-max ({args.eps_max}) must not be below --eps-min ({args.eps_min})")
    if args.num == 1:
        return np.array([args.eps_min])
    return np.linspace(args.eps_min, args.eps_max, args.num)


def _figure(
    p: np.ndarray,
    eps: np.ndarray,
    exact: Optional[list[Solution]],
    dccp: Optional[list[Solution]],
    divergence: str,
    h_p: float,
):
    def build():
        import matplotlib.pyplot as plt

        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3.8))
        if len(p) <= 64:
            ax_a.bar(np.arange(len(p)), p, color="tab:blue")
            ax_a.set_xlabel("symbol")
        else:
            ax_a.bar(np.arange(len(p)), np.sort(p)[::-1], width=1.0, color="tab:blue")
            ax_a.set_xlabel("symbol, by decreasing probability")
        ax_a.set_ylabel("probability")
        ax_a.set_title(f"(a) Source distribution, H = {h_p:.3f} bits")
        unit = "" if divergence == "tv" else " (bits)"
        if exact is not None:
            ax_b.plot(eps, [s.d for s in exact], ".-", color="tab:blue", ms=3, label="exact (Lagrange conditions)")
        if dccp is not None:
            pts = [(e, s.d) for e, s in zip(eps, dccp) if s.converged]
            if pts:
                ax_b.plot(*zip(*pts), "o", mfc="none", color="tab:orange", ms=5, label="DCCP")
        ax_b.axvline(h_p, color="grey", ls=":", label=f"H(p) = {h_p:.3f} bits")
        ax_b.set_xlabel(r"$\epsilon$ (bits)")
        ax_b.set_ylabel(f"d($\\epsilon$) = min {DIVERGENCE_NAMES[divergence]}{unit}")
        ax_b.set_title(r"(b) $d(\epsilon)$ curve")
        ax_b.grid(alpha=0.3)
        ax_b.legend()
        fig.tight_layout()
        return fig

    return build


def run(args: argparse.Namespace) -> Report:
    eps = _eps_grid(args)
    p, source = _source_p(args)
    divergence = args.divergence
    exact_solver = ExactSolver(p, divergence)
    n_support = len(exact_solver.ps)
    h_p = exact_solver.h_p
    solver = args.solver
    if solver == "auto":
        solver = "both" if n_support <= AUTO_DCCP_MAX_SYMBOLS else "exact"
    run_exact = solver in ("both", "exact")
    run_dccp = solver in ("both", "dccp")

    exact: list[Optional[Solution]] = []
    dccp: list[Optional[Solution]] = []
    for e in progress(eps, desc=f"d(eps) {divergence}"):
        exact.append(exact_solver.solve(e) if run_exact else None)
        dccp.append(solve_dccp(p, e, divergence, seed=args.seed) if run_dccp else None)

    rows = []
    for e, x, y in zip(eps, exact, dccp):
        row = {"eps": float(e)}
        if run_exact:
            row["d_exact"] = x.d
            row["q_top"] = float(x.q.max())
        if run_dccp:
            row["d_dccp"] = y.d if y.converged else None
            row["dccp_status"] = "ok" if y.converged else "failed"
        if run_exact and run_dccp:
            row["dccp_minus_exact"] = (y.d - x.d) if y.converged else None
        rows.append(row)
    columns = ["eps"]
    columns += ["d_exact", "q_top"] if run_exact else []
    columns += ["d_dccp", "dccp_status"] if run_dccp else []
    columns += ["dccp_minus_exact"] if run_exact and run_dccp else []

    unit = divergence_unit(divergence)
    d0 = d_at_zero(exact_solver.ps, divergence)
    notes = [
        f"source: {source}; {n_support} symbols with p > 0, H(p) = {h_p:.5f} bits, max p = {p.max():.6g}",
        f"d = min {DIVERGENCE_NAMES[divergence]} s.t. H(q) <= eps (Noise-dim Eq. 11); eps in bits; "
        + ("d in bits (log base 2)" if unit == "bits" else "d is a plain number in [0, 1] (TV has no unit)"),
        _D0_WORDS[divergence].format(d0=d0) + "; d(0) is finite for reverse-kl, js and tv, infinite for kl",
    ]
    if args.p is None and args.p_file is None and args.data is None:
        notes.insert(1, f"default p = {PAPER_EXAMPLE_P.tolist()} (ours: the paper's Fig. 1(a) has 7 classes and"
                     " H(X) = 1.857 without printing them; the paper does not name the unit, read here as bits)")
    if run_exact:
        ds = np.array([x.d for x in exact])
        mono = bool(np.all(np.diff(ds) <= 1e-12 * np.maximum(1.0, np.abs(ds[:-1])))) if len(ds) > 1 else True
        zero_ok = all(x.d == 0.0 for x in exact if x.eps >= h_p)
        notes.append(
            "exact: Lagrange-condition curve + root-finder (analysis/divergence_entropy.py);"
            f" median {1e3 * float(np.median([x.seconds for x in exact])):.2f} ms per eps;"
            f" d non-increasing in eps: {'yes' if mono else 'NO'}; d = 0 for eps >= H(p): {'yes' if zero_ok else 'NO'}"
        )
        notes.append("q_top: the largest mass of the exact minimiser q")
    if run_dccp:
        ok = [y for y in dccp if y.converged]
        failed = [y for y in dccp if not y.converged]
        line = (
            f"DCCP: objective {DCCP_FORMS[divergence]}, constraints q >= 0, sum(q) = 1, sum(entr(q)) <= eps ln 2"
            f" as in the paper; dccp method='dccp', Clarabel, random start (seed {args.seed});"
            f" converged at {len(ok)}/{len(dccp)} points,"
            f" median {float(np.median([y.seconds for y in dccp])):.2f} s per eps"
        )
        notes.append(line)
        excess = max((y.entropy - y.eps for y in ok), default=0.0)
        if excess > 0:
            notes.append(
                f"DCCP's q exceeds the budget by up to {excess:.2g} bits (dccp's slack), so d_dccp can dip"
                " slightly below d_exact"
            )
        if failed:
            statuses = sorted({y.status for y in failed})
            notes.append(f"DCCP failed at eps = {', '.join(f'{y.eps:.3g}' for y in failed)} ({'; '.join(statuses)})")
    largest = None
    if run_exact and run_dccp:
        diffs = [abs(r["dccp_minus_exact"]) for r in rows if r.get("dccp_minus_exact") is not None]
        if diffs:
            largest = max(diffs)
            notes.append(
                f"largest |d_dccp - d_exact| over the converged points: {largest:.3g}"
                + (" bits" if unit == "bits" else "")
            )
        else:
            notes.append("largest |d_dccp - d_exact|: none (DCCP converged nowhere)")
    if args.solver == "auto" and not run_dccp:
        notes.append(
            f"--solver auto: {n_support} symbols > {AUTO_DCCP_MAX_SYMBOLS}, so exact only"
            " (DCCP takes about 0.5 s per eps at 256 symbols, 2 s at 1024); --solver both forces it"
        )
    name = DIVERGENCE_NAMES[divergence]
    title = f"Divergence-entropy function d(eps) = min {name} s.t. H(q) <= eps (Noise-dim Sec. 4.4, Eq. 11)"
    extra = {
        "divergence": divergence,
        "divergence_unit": unit,
        "entropy_unit": "bits",
        "p": p,
        "H_p_bits": h_p,
        "d_at_zero": d0,
        "largest_abs_difference": largest,
        "dccp_objective": DCCP_FORMS[divergence] if run_dccp else None,
    }
    if run_exact and len(p) <= 1024:
        extra["q_exact"] = [x.q for x in exact]
    return Report(
        title=title,
        columns=columns,
        rows=rows,
        notes=notes,
        figure=_figure(p, eps, exact if run_exact else None, dccp if run_dccp else None, divergence, h_p),
        extra=extra,
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "divergence-entropy",
        help="d(eps) = min D(p, q) s.t. H(q) <= eps, by DCCP and exactly (Noise-dim Eq. 11, Fig. 1)",
        description=__doc__,
    )
    source = parser.add_argument_group("source distribution p (at most one; default: the 7-class example)")
    source.add_argument("--p", nargs="+", type=float, metavar="P", help="probabilities, e.g. --p 0.5 0.3 0.2 (sum 1)")
    source.add_argument("--p-file", metavar="FILE.npy", help="a .npy array of probabilities (flattened)")
    add_data_arguments(source, required=False)
    source.add_argument(
        "--symbols",
        choices=("pixels", "images"),
        default="pixels",
        help="with --data: histogram of 8-bit pixel values (256 symbols) or of distinct images",
    )
    parser.add_argument(
        "--divergence", choices=DIVERGENCES, default="kl", help="D(p, q) (default kl: KL(p||q), the paper's)"
    )
    parser.add_argument(
        "--eps-min", type=float, default=0.05, metavar="BITS", help="first eps (default 0.05, as the paper)"
    )
    parser.add_argument(
        "--eps-max", type=float, default=2.0, metavar="BITS", help="last eps (default 2.00, as the paper)"
    )
    parser.add_argument(
        "--num", type=int, default=40, help="number of eps values, evenly spaced (default 40: steps of 0.05)"
    )
    parser.add_argument(
        "--solver",
        choices=("auto", "both", "dccp", "exact"),
        default="auto",
        help=f"auto (default): both for up to {AUTO_DCCP_MAX_SYMBOLS} symbols, exact only above",
    )
    parser.add_argument("--seed", type=int, default=0, help="DCCP seed")
    add_output_arguments(parser, plot=True)
    parser.set_defaults(handler=run)
