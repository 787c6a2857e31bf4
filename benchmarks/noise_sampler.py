"""The cost of ``sampler: exact`` against torch's sampler, and against a digits training step.

    python benchmarks/noise_sampler.py [--dims 32 128] [--batch-size 64] [--formats float32 bfloat16]
                                       [--device cpu] [--rounds 7]

For each noise size of the digits configs (batch 64 x dim 32 / 128) and format it times
``NoiseSpec.sample`` with ``sampler: torch`` (float32 ``randn``, cast) and ``sampler: exact``
(float64 ``randn``, rounded once), and one DCGAN digits training step at the demo's widths
(``configs/noise_dim/digits_demo.yaml``: 32x32x1, g_width = d_width = 32, batch 64): a D step
(D(real), D(G(z).detach()), softplus losses, backward, Adam) and a G step (G(z), D, the
non-saturating loss, backward, Adam), each drawing its own noise with the torch sampler.
All in the same run, interleaved over ``--rounds`` rounds; the table gives medians, the
ratio exact / torch, and the extra cost of the exact sampler (two draws per step) as a
share of the step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from analysis.cli import format_table  # noqa: E402
from core.noise import NoiseSpec  # noqa: E402
from lightning_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402


def _per_call(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls (synchronising a GPU)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def _training_step(dim: int, batch: int, device: torch.device) -> Callable[[], None]:
    """One D step and one G step of the digits demo's DCGAN (non-saturating loss, Adam 2e-4, betas (0.5, 0.999))."""
    torch.manual_seed(0)
    g = DCGANGenerator(dim, 32, 1, 32).to(device)
    d = DCGANDiscriminator(32, 1, 32).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 32, 32, device=device) * 2 - 1
    noise = NoiseSpec(dim=dim)

    def step() -> None:
        fake = g(noise.sample(batch, device=device))
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-d(g(noise.sample(batch, device=device)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--formats", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; medians are reported")
    parser.add_argument("--calls", type=int, default=300, help="sample() calls per round and sampler")
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batch = args.batch_size
    rows = []
    for dim in args.dims:
        step = _training_step(dim, batch, device)
        step_times = []
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            step_times.append(_per_call(step, args.steps, device))
            for fmt in args.formats:
                for sampler in ("torch", "exact"):
                    spec = NoiseSpec(dim=dim, format=fmt, sampler=sampler)
                    t = _per_call(lambda: spec.sample(batch, device=device), args.calls, device)
                    samples.setdefault((fmt, sampler), []).append(t)
        step_s = statistics.median(step_times)
        for fmt in args.formats:
            torch_s = statistics.median(samples[(fmt, "torch")])
            exact_s = statistics.median(samples[(fmt, "exact")])
            rows.append(
                {
                    "noise": f"{batch} x {dim}",
                    "format": fmt,
                    "torch_us": round(torch_s * 1e6, 1),
                    "exact_us": round(exact_s * 1e6, 1),
                    "exact/torch": round(exact_s / torch_s, 2),
                    "step_ms": round(step_s * 1e3, 2),
                    "extra_%_of_step": round(100 * 2 * (exact_s - torch_s) / step_s, 3),
                }
            )
    print(format_table(list(rows[0]), rows))
    threads = torch.get_num_threads()
    print(
        f"device {device}, torch {torch.__version__}, {threads} thread(s); medians of {args.rounds} interleaved rounds "
        f"({args.calls} draws, {args.steps} steps each); a step draws the noise twice (D step, G step)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
