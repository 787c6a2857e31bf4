"""``python -m analysis i2i-noise``: the optimal training-noise level of seed "I2I Gaussian noise injection".

For a Gaussian source X ~ N(mu_s, Sigma_s), training input X + sigma_t N and inference
input X + sigma_e N with 0 <= sigma_e^2 <= lambda_max, rho(sigma_t^2, sigma_e^2 I) is the
KL divergence between the inference and the training input distributions (closed form).
The command finds, numerically, the minimax optimum sigma_t,o^2 (poster: it equalises
rho(., 0) and rho(., lambda_max I)) and the average optimum over sigma_e^2 ~ U(0, lambda_max)
(poster: lambda_max / 2), each two ways, and prints them beside the stated values.
--plot draws rho against sigma_e^2 for several sigma_t^2.

Source spectrum: --eigenvalues, or --dim with --source-variance (isotropic), or --data
(the pixel covariance of a dataset, top --max-dim eigenvalues, or all).  --truncations
(default with --data: 8 16 32 64 128 all) reports how the minimax optimum moves with the
number of eigenvalues kept.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

import numpy as np

from analysis.cli import Report, UsageError, add_output_arguments, command_parser
from analysis.data import add_data_arguments, iter_uint8_images
from analysis.i2i_noise import (
    DIRECTIONS,
    average_optimal_sigma_t2,
    average_optimal_sigma_t2_grid,
    average_rho,
    TRUNCATIONS,
    isotropic_minimax_sigma_t2,
    minimax_by_truncation,
    minimax_sigma_t2,
    minimax_sigma_t2_grid,
    parse_truncation,
    rho,
    spectrum_from_data,
    theorem2_checks,
    truncation_label,
    worst_case_rho,
)

_OTHER = {"inference": "training", "training": "inference"}
_KL_TEXT = {
    "inference": "KL(P_hat inference || P_bar training)",
    "training": "KL(P_bar training || P_hat inference)",
}


def _positive(values: list[float], flag: str) -> None:
    for v in values:
        if not np.isfinite(v) or v <= 0:
            raise UsageError(f"{flag}: every value must be a positive number, got {v}")


def _truncation(value: str) -> Optional[int]:
    """argparse type of --max-dim and --truncations: a count >= 1 or ``all``."""
    try:
        return parse_truncation(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or 'all', got {value!r}") from None


def _spectrum(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(eigenvalues of Sigma_s after --max-dim, every positive eigenvalue, a description, notes)."""
    isotropic = [("--dim", args.dim), ("--source-variance", args.source_variance)]
    given = [flag for flag, value in [("--eigenvalues", args.eigenvalues), ("--data", args.data)] if value is not None]
    if len(given) > 1 or (given and any(value is not None for _, value in isotropic)):
        named = given + [flag for flag, value in isotropic if value is not None]
        raise UsageError(f"give one source, --eigenvalues, --data or --dim/--source-variance; got {' and '.join(named)}")
    if args.eigenvalues is not None:
        _positive(args.eigenvalues, "--eigenvalues (the source covariance must be positive definite)")
        lam = np.sort(np.asarray(args.eigenvalues, dtype=np.float64))[::-1]
        return lam, lam, f"Sigma_s with eigenvalues {', '.join(f'{v:g}' for v in lam[:6])}{' ...' if len(lam) > 6 else ''} (d = {len(lam)})", []
    if args.data is not None:
        vectors = [image.reshape(-1) for _, image in iter_uint8_images(args.data, args.split, args.limit, args.data_args)]
        if len({v.size for v in vectors}) > 1:
            raise UsageError(f"--data {args.data}: the images differ in size; all must match")
        x = np.stack(vectors).astype(np.float64) / 255.0
        try:
            full, share_all, _ = spectrum_from_data(x, None)
        except ValueError as err:
            raise UsageError(f"--data {args.data}: {err}") from None
        lam = full if args.max_dim is None else full[: args.max_dim]
        share, dropped = share_all * lam.sum() / full.sum(), full.size - lam.size
        notes = [
            f"Sigma_s: pixel covariance (pixels in [0, 1]) of {len(x):,} images of {x.shape[1]} pixels; kept"
            f" {'' if args.max_dim is None else 'the '}{truncation_label(args.max_dim)} (--max-dim {'all' if args.max_dim is None else args.max_dim}: {len(lam)},"
            f" {lam[-1]:.3g} .. {lam[0]:.3g}, {100 * share:.1f} % of the variance),"
            f" dropped {dropped} smaller positive ones and every zero one (rho(s, 0) is infinite on a zero eigenvalue;"
            f" 'all' is at most N - 1 = {len(x) - 1})",
            "the minimax optimum depends strongly on the smallest kept eigenvalue (--max-dim, see --truncations); the average optimum does not",
        ]
        return lam, full, f"the pixel covariance of {args.data} ({truncation_label(args.max_dim)}, d = {len(lam)})", notes
    dim = 64 if args.dim is None else args.dim
    if dim < 1:
        raise UsageError(f"--dim must be >= 1, got {dim}")
    variance = args.source_variance if args.source_variance is not None else (args.lambda_max if args.lambda_max is not None else 1.0)
    _positive([variance], "--source-variance")
    return np.full(dim, variance), np.full(dim, variance), f"isotropic Sigma_s = {variance:g} I (d = {dim})", []


def _figure(lam: np.ndarray, lambda_max: float, sigma_t2: list[float], direction: str, minimax: float, source: str):
    def build():
        import matplotlib.pyplot as plt

        e = np.linspace(0.0, lambda_max, 401)
        fig, ax = plt.subplots(figsize=(5.8, 4.0))
        for s in sigma_t2:
            tag = ""
            if abs(s - minimax) <= 1e-9 * lambda_max:
                tag = " (minimax)"
            elif abs(s - lambda_max / 2) <= 1e-12 * lambda_max:
                tag = r" ($\lambda_{max}/2$)"
            ax.plot(e, rho(s, e, lam, direction), label=rf"$\sigma_t^2$ = {s:.4g}{tag}")
        ax.axhline(rho(minimax, 0.0, lam, direction), color="grey", lw=0.8, ls=":")
        ax.set_xlabel(r"inference noise variance $\sigma_e^2$")
        ax.set_ylabel(r"$\rho(\sigma_t^2, \sigma_e^2 I)$ (nats)")
        ax.set_title(f"{_KL_TEXT[direction]}\n{source}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    return build


def run(args: argparse.Namespace) -> Report:
    if args.lambda_max is not None and not (np.isfinite(args.lambda_max) and args.lambda_max > 0):
        raise UsageError(f"--lambda-max must be a positive number, got {args.lambda_max}")
    lam, full, source, notes = _spectrum(args)
    lambda_max = float(args.lambda_max) if args.lambda_max is not None else float(lam.max())
    curves: Optional[list[float]] = None
    if args.sigma_t2 is not None:
        curves = list(args.sigma_t2)
    elif args.sigma_t is not None:
        curves = [s * s for s in args.sigma_t]
    if curves is not None:
        for v in curves:
            if not np.isfinite(v) or v < 0:
                raise UsageError(f"--sigma-t/--sigma-t2: training noise must be finite and >= 0, got {v}")

    direction = args.direction
    other = _OTHER[direction]
    stated = lambda_max / 2

    def row(criterion: str, method: str, s: float, kl_direction: str, claimed: Optional[float]) -> dict[str, Any]:
        return {
            "criterion": criterion,
            "method": method,
            "sigma_t2": s,
            "stated": claimed,
            "numeric_minus_stated": None if claimed is None else s - claimed,
            "worst_KL": worst_case_rho(s, lam, lambda_max, kl_direction),
            "mean_KL": average_rho(s, lam, lambda_max, kl_direction),
        }

    minimax = minimax_sigma_t2(lam, lambda_max, direction)
    minimax_grid, minimax_step = minimax_sigma_t2_grid(lam, lambda_max, direction)
    average = average_optimal_sigma_t2(lam, lambda_max, direction)
    average_grid, average_step = average_optimal_sigma_t2_grid(lam, lambda_max, direction)
    average_other = average_optimal_sigma_t2(lam, lambda_max, other)
    rows = [
        row("minimax", "brentq: rho(s, 0) = rho(s, lambda_max I)", minimax, direction, None),
        row("minimax", f"grid: argmin_s max_e rho (step {minimax_step:.2g})", minimax_grid, direction, None),
    ]
    isotropic = bool(np.all(lam == lam[0]))
    if isotropic and direction == "inference":
        rows.append(row("minimax", "closed form, isotropic (ours)", isotropic_minimax_sigma_t2(lam[0], lambda_max), direction, None))
    rows += [
        row("average", "quad + bounded Brent", average, direction, stated),
        row("average", f"grid: trapezoid over e (step {average_step:.2g})", average_grid, direction, stated),
        row(f"average, {other} first", "quad + bounded Brent (other KL order)", average_other, other, stated),
        row("no training noise", "sigma_t^2 = 0", 0.0, direction, None),
    ]
    gap_at_root = rho(minimax, 0.0, lam, direction) - rho(minimax, lambda_max, lam, direction)
    checks = theorem2_checks(lam, lambda_max, direction)
    notes = [
        f"source: {source}; inference noise sigma_e^2 in [0, lambda_max = {lambda_max:.6g}]"
        + (" (default: the largest source eigenvalue)" if args.lambda_max is None else ""),
        *notes,
        f"rho = {_KL_TEXT[direction]}, closed form 1/2 sum_i (r_i - 1 - ln r_i), r_i = (lambda_i + sigma_e^2)/(lambda_i + sigma_t^2);"
        " P_bar = N(mu_s, Sigma_s + sigma_t^2 I), P_hat = N(mu_s, Sigma_s + sigma_e^2 I), noise added to the unwhitened source",
        "reading: the I2I poster does not print Eq. 6-7; the KL order follows Theorem 3 (inference first),"
        " the order under which the stated lambda_max/2 holds; the other order is the row marked 'first'"
        " (the KL of joints (x, G(x)) equals that of inputs)",
        "worst_KL: max of rho over sigma_e^2 in [0, lambda_max] (401-point grid); mean_KL: its mean over sigma_e^2 ~ U(0, lambda_max) (quad)",
        f"minimax: the poster states only rho(s, 0) = rho(s, lambda_max I), no value; at the brentq root the two differ by {gap_at_root:.2g};"
        f" the grid minimax is {minimax_grid - minimax:+.2g} from it",
        f"average: stated lambda_max/2 = {stated:.6g}; numeric {average:.10g} ({direction} first),"
        f" {average_other:.6g} ({other} first): {'agrees' if abs(average - stated) < 1e-6 * lambda_max else 'DIFFERS'}"
        f" / {'agrees' if abs(average_other - stated) < 1e-6 * lambda_max else 'differs'}",
        f"minimax {minimax:.6g} vs lambda_max/2 = {stated:.6g}: the two optima differ ({100 * (minimax / stated - 1):+.1f} %)"
        + (
            "; the forward minimax equation is the reverse-order average's stationarity equation, hence equal rows"
            if direction == "inference"
            else ""
        ),
        f"Theorem 2 on a 201 x 201 grid: min second difference of rho in sigma_e^2 = {checks.min_second_difference:.3g}"
        f" ({'convex' if checks.min_second_difference >= -1e-12 else 'NOT convex'});"
        f" max rho(s, e) - rho(0, e) over e >= s/2 = {checks.max_property2_gap:.3g}"
        f" ({'property 2 holds' if checks.max_property2_gap < 0 else 'property 2 FAILS'})",
    ]
    truncations = args.truncations if args.truncations is not None else (list(TRUNCATIONS) if args.data is not None else None)
    by_truncation = None
    if truncations is not None:
        by_truncation = minimax_by_truncation(full, lambda_max, truncations, direction)
        notes.append(
            f"minimax sigma_t^2 by truncation of the spectrum (lambda_max = {lambda_max:.6g} fixed; top k of {full.size} positive eigenvalues): "
            + "; ".join(
                f"k = {'all' if t['k'] is None else t['k']}"
                + (f" ({t['kept']} kept)" if t["k"] is None or t["kept"] < t["k"] else "")
                + f": {t['minimax_sigma_t2']:.4g} ({100 * t['variance_share']:.1f} % of the variance)"
                for t in by_truncation
            )
        )
    plot_curves = curves if curves is not None else [0.0, lambda_max / 4, minimax, stated, lambda_max]
    return Report(
        title="Optimal training-noise variance sigma_t^2 for Gaussian noise injection (I2I poster, Theorem 2 and corollary)",
        columns=["criterion", "method", "sigma_t2", "stated", "numeric_minus_stated", "worst_KL", "mean_KL"],
        rows=rows,
        notes=notes,
        figure=_figure(lam, lambda_max, plot_curves, direction, minimax, source),
        extra={
            "eigenvalues": lam,
            "lambda_max": lambda_max,
            "direction": direction,
            "minimax_sigma_t2": minimax,
            "average_sigma_t2": average,
            "stated_average_sigma_t2": stated,
            "max_dim": args.max_dim if args.data is not None else None,
            "minimax_by_truncation": by_truncation,
            "theorem2": {"min_second_difference": checks.min_second_difference, "max_property2_gap": checks.max_property2_gap},
        },
    )


def add_command(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "i2i-noise",
        help="optimal training-noise variance for Gaussian noise injection (I2I poster, KL of Gaussians)",
        description=__doc__,
    )
    source = parser.add_argument_group("source covariance Sigma_s (one of)")
    source.add_argument("--eigenvalues", type=float, nargs="+", metavar="L", help="the eigenvalues of Sigma_s (all > 0)")
    source.add_argument("--dim", type=int, metavar="D", help="isotropic source: dimension (default 64)")
    source.add_argument(
        "--source-variance", type=float, metavar="V", help="isotropic source: Sigma_s = V I (default: lambda_max, else 1)"
    )
    add_data_arguments(parser, required=False)
    parser.add_argument(
        "--max-dim",
        type=_truncation,
        default=64,
        metavar="D",
        help="--data: keep the top D eigenvalues, or 'all' (default 64; the minimax optimum depends on it)",
    )
    parser.add_argument(
        "--truncations",
        type=_truncation,
        nargs="+",
        metavar="K",
        help="also report the minimax optimum on the top K eigenvalues for each K (a count or 'all');"
        " default with --data: 8 16 32 64 128 all",
    )
    parser.add_argument(
        "--lambda-max",
        type=float,
        metavar="M",
        help="top of the inference-noise range 0 <= sigma_e^2 <= M (default: the largest eigenvalue of Sigma_s)",
    )
    curves = parser.add_mutually_exclusive_group()
    curves.add_argument("--sigma-t2", type=float, nargs="+", metavar="V", help="training-noise variances to plot")
    curves.add_argument("--sigma-t", type=float, nargs="+", metavar="S", help="training-noise standard deviations to plot")
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="inference",
        help="KL order: inference distribution first (default, as Theorem 3) or training first",
    )
    add_output_arguments(parser)
    parser.set_defaults(handler=run)
