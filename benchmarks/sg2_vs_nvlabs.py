"""Our StyleGAN2 training step beside NVlabs' stylegan2-ada-pytorch, on the same device, in one run.

    SG2ADA_DIR=/path/to/stylegan2-ada-pytorch \\
    python benchmarks/sg2_vs_nvlabs.py [--configs c] [--device cuda|cpu] [--modes fp32 mixed]
                                       [--rounds 2] [--warmup 5] [--iters 30] [--small] [--json OUT]

The reference source is never part of this repository: ``SG2ADA_DIR`` names a checkout of
NVlabs/stylegan2-ada-pytorch (commit d72cc7d041b42ec8e806021a205ed9349f87c6a4), made with
``git archive`` from a git copy outside the repository (docs/benchmarks.md says how).  Without it
only our step is timed and the ratio is not printed.

The step is the "main" step of ``benchmarks/stylegan2.py`` and of ../shared/ANCHORS.md, at the
parameter counts of its configs a/b/c (channel base 16384, max 512; ``--small``: 1024 / 64): a
generator step (z, G(z), D(fake), non-saturating loss, backward, Adam) and a discriminator step
(D(real), D(fake.detach()), softplus losses, backward, Adam); Adam(lr 0.0025, betas (0, 0.99),
eps 1e-8); noise mode random, networks in train() mode; no augmentation, EMA or regularisers.
Ours: the networks of ``benchmarks/stylegan2.py:build`` (ENI noise, the layout NVlabs' networks have);
theirs: ``training.networks.Generator`` / ``Discriminator`` through their public API; both stepped by
the same sequence of calls (the D step reuses the G step's fakes, as in ANCHORS.md; the default
``benchmarks/stylegan2.py`` step draws new fakes for D, one G forward more).

Two modes, each a pair measured in the same run:
  * ``fp32``: ours in float32; theirs with ``num_fp16_res=0, conv_clamp=None``;
  * ``mixed``: ours under bf16 autocast; theirs as they train on GPUs, float16 in the 4 highest
    resolutions with ``conv_clamp=256`` (their own mixed precision; not the same arithmetic).
Both sides run with the settings of NVlabs' training loop (``cudnn.benchmark = True``, TF32 off).

Their custom CUDA ops (bias_act, upfirdn2d) are built with ninja/nvcc first, in a process of
their own under ``--build-timeout`` (cached in ``TORCH_EXTENSIONS_DIR`` for the timed processes).
If either does not build in time, every NVlabs run uses their reference implementation and the
rows say ``reference ops`` (``plugin_build`` in the JSON says why).  On CPU their
ops always run the reference implementation.

Every measurement runs in its own process (peak memory per process: ``torch.cuda.max_memory_allocated``
on CUDA, ``ru_maxrss`` on CPU), alternating ours and theirs (``--rounds`` times).  ``ours/theirs``
is their median seconds per step divided by ours (above 1: ours faster); ``mem ours/theirs`` the
ratio of peak memory.  Target (issue 23): >= 1.2 at 128 px with equal or lower memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
REF_COMMIT = "d72cc7d041b42ec8e806021a205ed9349f87c6a4"

# name: (resolution, batch, mapping layers, mbstd group, D architecture): benchmarks/stylegan2.py's CONFIGS
CONFIGS = {"a": (32, 32, 2, 32, "orig"), "b": (64, 32, 8, 8, "resnet"), "c": (128, 8, 8, 4, "resnet")}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _time_steps(step, warmup: int, iters: int, device: str) -> list[float]:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _adam(params):
    import torch

    return torch.optim.Adam(params, lr=0.0025, betas=(0.0, 0.99), eps=1e-8)


def worker_ours(cfg: str, mode: str, args) -> dict:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT))
    from benchmarks.stylegan2 import build

    G, D, opt_g, opt_d, batch, res = build(cfg, args.small, "eni", args.device)
    real = torch.rand(batch, 3, res, res, device=args.device) * 2 - 1

    def main_step():  # the same sequence of calls as worker_theirs's step
        opt_g.zero_grad(set_to_none=True)
        G.requires_grad_(True)
        D.requires_grad_(False)
        fake = G.synthesis(G.mapping(torch.randn(batch, 512, device=args.device)))
        F.softplus(-D(fake)).mean().backward()
        G.requires_grad_(False)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        D.requires_grad_(True)
        (F.softplus(-D(real)) + F.softplus(D(fake.detach()))).mean().backward()
        D.requires_grad_(False)
        opt_d.step()

    def step():
        if mode == "mixed":
            with torch.autocast(args.device, dtype=torch.bfloat16):
                main_step()
        else:
            main_step()

    times = _time_steps(step, args.warmup, args.iters, args.device)
    return {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters()),
            "batch": batch, "res": res, "times": times, "ops": "ours"}  # fmt: skip


def _register_loaded_extensions() -> None:
    """Make ``torch.utils.cpp_extension.load`` also register the module it loads under its name.

    Their ``torch_utils/custom_ops.py`` calls ``load(...)``, drops the module it returns and then
    ``importlib.import_module(name)``; recent torch loads the built library from its file without
    putting it in ``sys.modules``, so that import fails although the build succeeded (seen here on
    torch 2.14.1 with CUDA 13.0: both plugins compiled and linked, then ``No module named
    'bias_act_plugin'``).  Registering the loaded module restores what their code expects; their
    files stay unchanged.
    """
    import torch.utils.cpp_extension as cpp

    if getattr(cpp.load, "_registers_module", False):
        return
    load = cpp.load

    def registering_load(name, *args, **kwargs):
        module = load(name, *args, **kwargs)
        if isinstance(module, types.ModuleType):
            sys.modules.setdefault(name, module)
        return module

    registering_load._registers_module = True
    cpp.load = registering_load


def _their_ops(device: str) -> str:
    """Build their CUDA plugins (or not); an op that fails falls back to their reference code, for good."""
    from torch_utils.ops import bias_act, upfirdn2d

    if device != "cuda":
        return "reference ops (CPU)"
    _register_loaded_extensions()
    status = {}
    for name, op in (("bias_act", bias_act), ("upfirdn2d", upfirdn2d)):
        built = bool(op._init())
        status[name] = built
        if not built:  # their upfirdn2d retries the build at every call otherwise
            op._init = lambda: False
    if all(status.values()):
        return "CUDA plugins"
    failed = ", ".join(k for k, v in status.items() if not v)
    return f"reference ops ({failed} plugin failed to build)"


def worker_theirs(cfg: str, mode: str, args) -> dict:
    import torch

    sys.path.insert(0, args.sg2ada_dir)
    if importlib.util.find_spec("requests") is None:
        # Their dnnlib/util.py imports requests at the top and uses it only to download files,
        # which this step never does; the device image has requests, this project's venv may not.
        sys.modules["requests"] = types.ModuleType("requests")
    from training import networks  # their code, unchanged

    ops = _their_ops(args.device) if not args.their_ref else "reference ops (--their-ref)"
    if args.their_ref:
        from torch_utils.ops import bias_act, upfirdn2d

        bias_act._init = upfirdn2d._init = lambda: False
    res, batch, mapping, mbstd, d_arch = CONFIGS[cfg]
    base, cmax = (1024, 64) if args.small else (16384, 512)
    fp16 = dict(num_fp16_res=4, conv_clamp=256) if mode == "mixed" else dict(num_fp16_res=0, conv_clamp=None)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                           mapping_kwargs=dict(num_layers=mapping),
                           synthesis_kwargs=dict(channel_base=base, channel_max=cmax, **fp16))  # fmt: skip
    D = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=3, architecture=d_arch,
                               channel_base=base, channel_max=cmax, **fp16,
                               epilogue_kwargs=dict(mbstd_group_size=min(mbstd, batch)))  # fmt: skip
    G, D = G.train().requires_grad_(False).to(args.device), D.train().requires_grad_(False).to(args.device)
    opt_g, opt_d = _adam(G.parameters()), _adam(D.parameters())
    real = torch.rand(batch, 3, res, res, device=args.device) * 2 - 1
    c = torch.zeros(batch, 0, device=args.device)
    softplus = torch.nn.functional.softplus

    def step():
        opt_g.zero_grad(set_to_none=True)
        G.requires_grad_(True)
        fake = G(torch.randn(batch, 512, device=args.device), c, noise_mode="random")
        softplus(-D(fake, c)).mean().backward()
        G.requires_grad_(False)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        D.requires_grad_(True)
        (softplus(-D(real, c)) + softplus(D(fake.detach(), c))).mean().backward()
        D.requires_grad_(False)
        opt_d.step()

    times = _time_steps(step, args.warmup, args.iters, args.device)
    return {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters()),
            "batch": batch, "res": res, "times": times, "ops": ops}  # fmt: skip


def worker(args) -> None:
    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":  # NVlabs' training loop's settings, for both sides
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.cuda.reset_peak_memory_stats()
    side, cfg, mode = args.worker
    if side == "build":  # only build their plugins (into TORCH_EXTENSIONS_DIR) and say which ones built
        sys.path.insert(0, args.sg2ada_dir)
        if importlib.util.find_spec("requests") is None:
            sys.modules["requests"] = types.ModuleType("requests")
        print("RESULT " + json.dumps({"ops": _their_ops(args.device)}), flush=True)
        return
    result = (worker_ours if side == "ours" else worker_theirs)(cfg, mode, args)
    if args.device == "cuda":
        result["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mem_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.update(side=side, cfg=cfg, mode=mode, median_s=statistics.median(result["times"]), torch=torch.__version__)
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(side: str, cfg: str, mode: str, args, timeout: Optional[float] = None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, cfg, mode, "--device", args.device,
           "--warmup", str(args.warmup), "--iters", str(args.iters)]  # fmt: skip
    cmd += ["--small"] if args.small else []
    cmd += ["--their-ref"] if args.their_ref else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    env = dict(os.environ, SG2ADA_DIR=args.sg2ada_dir or "")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              timeout=timeout or args.worker_timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"side": side, "cfg": cfg, "mode": mode, "error": f"timed out after {timeout or args.worker_timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"side": side, "cfg": cfg, "mode": mode, "error": f"rc {proc.returncode}: " + " | ".join(tail)[:400]}
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_s"] = time.perf_counter() - start
    return result


def summarise(results: list[dict]) -> list[dict]:
    """One row per (config, mode): medians over rounds, ours/theirs speed and memory ratios."""
    rows = []
    for cfg in dict.fromkeys(r["cfg"] for r in results):
        for mode in dict.fromkeys(r["mode"] for r in results if r["cfg"] == cfg):
            ok = {s: [r for r in results if (r["cfg"], r["mode"], r["side"]) == (cfg, mode, s) and "error" not in r]
                  for s in ("ours", "theirs")}  # fmt: skip
            row: dict = {"cfg": cfg, "mode": mode}
            for side, runs in ok.items():
                if runs:
                    row[f"{side}_s"] = statistics.median(r["median_s"] for r in runs)
                    row[f"{side}_img_s"] = runs[0]["batch"] / row[f"{side}_s"]
                    row[f"{side}_mem_mib"] = max(r["peak_mem_mib"] for r in runs)
                    row[f"{side}_params"] = (runs[0]["G"], runs[0]["D"])
                    row["batch"], row["res"] = runs[0]["batch"], runs[0]["res"]
                    if side == "theirs":
                        row["their_ops"] = runs[0]["ops"]
            errors = [r["error"] for r in results if (r["cfg"], r["mode"]) == (cfg, mode) and "error" in r]
            if errors:
                row["errors"] = errors
            if "ours_s" in row and "theirs_s" in row:
                row["ours_over_theirs_speed"] = row["theirs_s"] / row["ours_s"]
                row["ours_over_theirs_mem"] = row["ours_mem_mib"] / row["theirs_mem_mib"]
                row["same_params"] = row["ours_params"] == row["theirs_params"]
            rows.append(row)
    return rows


def markdown(rows: list[dict], env: dict) -> str:
    lines = [f"Device: {env['device_name']}, torch {env['torch']}; NVlabs stylegan2-ada-pytorch @ {REF_COMMIT[:12]}",
             "", "| cfg | res / batch | mode | ours img/s | NVlabs img/s | ours/NVlabs speed | ours MiB | NVlabs MiB "
             "| mem ours/NVlabs | same params | NVlabs ops |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def f(value, digits=2):
        return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    for r in rows:
        lines.append(
            f"| {r['cfg']} | {r.get('res', '-')} / {r.get('batch', '-')} | {r['mode']} | {f(r.get('ours_img_s'), 1)} | "
            f"{f(r.get('theirs_img_s'), 1)} | {f(r.get('ours_over_theirs_speed'))} | {f(r.get('ours_mem_mib'), 0)} | "
            f"{f(r.get('theirs_mem_mib'), 0)} | {f(r.get('ours_over_theirs_mem'))} | {f(r.get('same_params'))} | "
            f"{r.get('their_ops', '-')} |"
        )
        for error in r.get("errors", []):
            lines.append(f"|  |  | {r['mode']} | failed: {error[:160]} | | | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["c"], choices=sorted(CONFIGS))
    p.add_argument("--modes", nargs="+", default=["fp32", "mixed"], choices=["fp32", "mixed"])
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--rounds", type=int, default=2, help="ours, theirs, ours, theirs, ...")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--small", action="store_true", help="channel base 1024, max 64: a quick check")
    p.add_argument("--their-ref", action="store_true", help="force NVlabs' reference ops (no plugin build)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--worker-timeout", type=float, default=120, help="seconds per timed process")
    p.add_argument("--build-timeout", type=float, default=100, help="seconds for building their CUDA plugins")
    p.add_argument("--sg2ada-dir", default=os.environ.get("SG2ADA_DIR") or None)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return []
    have_ref = bool(args.sg2ada_dir) and (Path(args.sg2ada_dir) / "training" / "networks.py").is_file()
    if not have_ref:
        print(f"# SG2ADA_DIR={args.sg2ada_dir!r} holds no NVlabs checkout: timing ours only", file=sys.stderr)
    build = None
    if have_ref and args.device == "cuda" and not args.their_ref:
        # Their plugins build once, under their own time limit; if they do not build, every
        # NVlabs run uses their reference ops (labelled), instead of timing out one by one.
        print("# building NVlabs' CUDA plugins", file=sys.stderr, flush=True)
        started = time.perf_counter()
        build = run_worker("build", args.configs[0], "fp32", args, timeout=args.build_timeout)
        build["seconds"] = time.perf_counter() - started
        if build.get("ops") != "CUDA plugins":
            args.their_ref = True
            print(f"# their plugins did not build ({build.get('ops') or build.get('error')}): reference ops",
                  file=sys.stderr, flush=True)  # fmt: skip
    results = []
    for _ in range(args.rounds):
        for cfg in args.configs:
            for mode in args.modes:
                for side in ("ours", "theirs") if have_ref else ("ours",):
                    print(f"# {side} cfg {cfg} {mode}", file=sys.stderr, flush=True)
                    results.append(run_worker(side, cfg, mode, args))
    import torch

    env = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
           "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "CPU",
           "nvlabs_commit": REF_COMMIT if have_ref else None}  # fmt: skip
    rows = summarise(results)
    if build is not None and build.get("ops") != "CUDA plugins":
        why = build.get("ops") or build.get("error", "")
        for row in rows:
            if "their_ops" in row:
                row["their_ops"] = f"reference ops (the plugin build gave: {why[:120]})"
    table = markdown(rows, env)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "plugin_build": build, "rows": rows,
                                               "runs": results}, indent=1))  # fmt: skip
    if args.markdown:
        Path(args.markdown).write_text(table)
    return rows


if __name__ == "__main__":
    main()
