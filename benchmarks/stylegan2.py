"""Time a StyleGAN2 training step (G step + D step) at 32, 64 and 128 px, batch 32, against baselines.

    python benchmarks/stylegan2.py [--configs a b c] [--repeats 3] [--threads 2] [--small]
                                   [--device cpu|cuda] [--compile] [--injection eni|rni|none]

One "main" step is the step of ../shared/ANCHORS.md: a generator step (sample z, G(z), D(fake),
non-saturating loss, backward, Adam) and a discriminator step (D(real), D(fake.detach()), softplus
losses, backward, Adam); no augmentation, EMA, style mixing or regularisers; noise_mode random,
Adam(lr 0.0025, betas (0, 0.99), eps 1e-8).  The R1 step (gamma 10) and the path-length step
(batch / 2) are timed on their own.

Configurations (channel base 16384, max 512: the parameter counts of NVlabs/stylegan2-ada-pytorch):
  a: 32 px, batch 32, mapping 2, mbstd group 32, original D
  b: 64 px, batch 32, mapping 8, mbstd 8, residual D
  c: 128 px, batch 8, mapping 8, mbstd 4, residual D (config-e width)

Two ratios are printed for the main step:
  * ``vs NVlabs``: the reference implementation's median seconds on this kind of machine (ANCHORS.md)
    divided by ours -- above 1 means faster;
  * ``vs fused``: the same step with the modulated convolutions in their grouped ("fused") form,
    measured in this run, divided by ours (the default, non-fused form in training).
``--small`` shrinks the widths (channel base 1024, max 64) for a quick check; the NVlabs ratio is
then not printed.  ``--device cuda --compile`` adds a torch.compile'd step.
Full-width configs take several minutes on 2 CPU cores (about 1 min per main step for b).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from analysis.cli import format_table  # noqa: E402
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator  # noqa: E402
from lightning_modules.regularizers import PathLengthPenalty, r1_penalty  # noqa: E402

# name: (resolution, batch, mapping layers, mbstd group, D architecture, NVlabs main step s, R1 s, PL s)
CONFIGS = {
    "a": (32, 32, 2, 32, "orig", 28.4, 11.9, 16.4),
    "b": (64, 32, 8, 8, "resnet", 59.2, 29.4, 25.5),
    "c": (128, 8, 8, 4, "resnet", 19.1, None, None),
}


def build(name: str, small: bool, injection: str, device: str):
    res, batch, mapping, mbstd, d_arch, *_ = CONFIGS[name]
    base, cmax = (1024, 64) if small else (16384, 512)
    G = StyleGAN2Generator(512, 512, res, 3, base, cmax, mapping_layers=mapping, noise_injection=injection)
    D = StyleGAN2Discriminator(res, 3, base, cmax, d_arch, min(mbstd, batch))
    G, D = G.to(device).train(), D.to(device).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    return G, D, opt_g, opt_d, batch, res


def main_step(G, D, opt_g, opt_d, real, fused: bool) -> None:
    n = real.shape[0]
    # G step
    G.requires_grad_(True)
    D.requires_grad_(False)
    z = torch.randn(n, 512, device=real.device)
    fake = G.synthesis(G.mapping(z), fused=fused)
    loss = F.softplus(-D(fake)).mean()
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    # D step
    G.requires_grad_(False)
    D.requires_grad_(True)
    with torch.no_grad():
        fake = G.synthesis(G.mapping(torch.randn(n, 512, device=real.device)), fused=fused)
    loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()


def r1_step(D, opt_d, real) -> None:
    x = real.detach().requires_grad_(True)
    logits = D(x)
    loss = r1_penalty(x, logits) * 5.0  # gamma / 2
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()


def pl_step(G, opt_g, pl, batch, device) -> None:
    G.requires_grad_(True)
    ws = G.mapping(torch.randn(batch // 2, 512, device=device))
    loss = pl(G.synthesis(ws), ws) * 2.0
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up (allocator, kernels, compile)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, args) -> dict:
    G, D, opt_g, opt_d, batch, res = build(name, args.small, args.injection, args.device)
    real = torch.randn(batch, 3, res, res, device=args.device).clamp(-1, 1)
    row = {"cfg": name, "res": res, "batch": batch}
    row["G params"] = sum(p.numel() for p in G.parameters())
    row["D params"] = sum(p.numel() for p in D.parameters())
    ours = timed(lambda: main_step(G, D, opt_g, opt_d, real, fused=False), args.repeats, args.device)
    row["main s"] = ours
    row["img/s"] = batch / ours
    if not args.no_fused:
        fused = timed(lambda: main_step(G, D, opt_g, opt_d, real, fused=True), args.repeats, args.device)
        row["vs fused"] = fused / ours
    anchor_main, anchor_r1, anchor_pl = CONFIGS[name][5:]
    if not args.small and args.device == "cpu":
        row["vs NVlabs"] = anchor_main / ours
    if args.compile:
        step = torch.compile(lambda: main_step(G, D, opt_g, opt_d, real, fused=False))
        row["compiled s"] = timed(step, args.repeats, args.device)
        row["compile speed-up"] = ours / row["compiled s"]
    if not args.no_reg and anchor_r1 is not None:
        row["R1 s"] = timed(lambda: r1_step(D, opt_d, real), args.repeats, args.device)
        pl = PathLengthPenalty().to(args.device)
        row["PL s"] = timed(lambda: pl_step(G, opt_g, pl, batch, args.device), args.repeats, args.device)
        if not args.small and args.device == "cpu":
            row["R1 vs NVlabs"] = anchor_r1 / row["R1 s"]
            row["PL vs NVlabs"] = anchor_pl / row["PL s"]
    if args.device == "cuda":
        row["peak GPU GB"] = torch.cuda.max_memory_allocated() / 2**30
    # ru_maxrss is the process-wide peak: run one config per call to read it per config.
    row["peak RSS so far GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return row


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["a", "b", "c"], choices=sorted(CONFIGS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the anchors used 2)")
    p.add_argument("--small", action="store_true", help="channel base 1024, max 64: a quick check")
    p.add_argument("--injection", default="eni", choices=["none", "eni", "rni"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="also time a torch.compile'd main step")
    p.add_argument("--no-reg", action="store_true", help="skip the R1 and path-length steps")
    p.add_argument(
        "--no-fused", action="store_true", help="skip the fused baseline (its per-sample weights dominate peak memory)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [bench(name, args) for name in args.configs]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(format_table(columns, rows))
    return rows


if __name__ == "__main__":
    main()
