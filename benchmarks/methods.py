"""Every method's training step: images/s and peak memory per precision, torch.compile and memory format.

    python benchmarks/methods.py [--device cpu|cuda] [--methods NAME ...] [--precisions P ...]
                                 [--compile off on] [--channels-last off on] [--steps 20] [--warmup 3]
                                 [--small] [--budget-s SECONDS] [--json OUT.json] [--markdown OUT.md]

What is timed is what ``train.py fit`` runs: the method's LightningModule, built from its config in
``configs/`` (the config's ``model`` section, parsed by jsonargparse as LightningCLI parses it, with
the overrides listed in :data:`METHODS`), trained by a Lightning ``Trainer`` for ``--warmup + --steps``
batches.  Each batch is one training iteration of the module's ``training_step`` (a GAN: its D step
and G step of ``lightning_modules/adversarial.py:AdversarialLoop``, lazy R1 / path length, EMA;
pix2pix: ``lightning_modules/noisy_i2i.py:NoisyI2I``'s step).  The data are random tensors of the
config's image shape, held in memory (:class:`RandomImages`): data loading is not timed.  The
project's ``callbacks.StepSeed`` re-seeds every batch, so every variant of a method sees the same
batches, the same noise and the same initial weights.

For each method the matrix is precision ({32-true, bf16-mixed, 16-mixed}) x torch.compile (the
generator and the discriminator compiled in place, ``nn.Module.compile()``) x channels_last (the
module and the batches in ``torch.channels_last``).  The first variant is always the plain eager
float32 step; every other variant is reported as ratios against it, measured in the same run:

* ``img_s``: batch size x timed batches / their total seconds (``cuda.synchronize`` around each);
  ``img_s_median`` from the median batch.  ``speedup`` = img_s / baseline img_s;
* ``peak_mem_mib``: ``torch.cuda.max_memory_allocated`` over the fit (CUDA), or the process's largest
  resident set size sampled at the end of each batch (CPU; it includes the Python process, so only
  the differences between variants mean anything); ``mem_ratio`` = peak / baseline peak;
* numerics: ``finite`` (every logged loss of every batch and every parameter after the fit are
  finite) and ``first_loss_rel_diff``, the largest relative difference between the variant's
  first-batch losses and the baseline's (same weights, same batch, same seed).  Under torch.compile
  the noise inside the compiled networks comes from Inductor's random generator, so that difference
  also holds different noise draws.  ``safe`` = finite and ``first_loss_rel_diff <= --tolerance``.
* ``recommended`` (per method, printed at the end): the fastest safe variant.

Variants run in tiers across all methods (:func:`tier`): every method's eager variants first
(the baseline leading), then compiled bf16, channels_last, compiled float32, the rest; ``--budget-s``
starts no variant after that many seconds (the rest are listed as skipped), so the device script
ends inside its time limit with the cheap, broad results in hand.  ``--small`` shrinks every network
(as the methods' own tests do) and the batches for a quick CPU check.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import lightning_modules  # noqa: E402, F401  (registers the project's classes for short class_path names)
from callbacks import StepSeed  # noqa: E402
from lightning_modules.noisy_i2i import NoisyI2I  # noqa: E402

CONFIGS = ROOT / "configs"
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
BASELINE = ("32-true", False, False)  # (precision, compile, channels_last)

#: method -> (config under configs/, model overrides, batch size (None: the config's),
#:            model overrides for --small, batch size for --small).
#: StyleGAN2 a/b/c are the shapes of ../shared/ANCHORS.md (channel base 16384, max 512) on the
#: project's StyleGAN2 + ENI config (with its style mixing, lazy R1 and path length, EMA).
STYLEGAN2_SMALL = {"channel_base": 128, "channel_max": 16, "w_dim": 16, "noise.dim": 16, "mapping_layers": 1}
METHODS: dict[str, tuple[str, dict[str, Any], Optional[int], dict[str, Any], int]] = {
    "stylegan2-a": ("rni/ffhq128_stylegan2.yaml",
                    {"resolution": 32, "mapping_layers": 2, "d_architecture": "orig", "mbstd_group_size": 32}, 32,
                    {**STYLEGAN2_SMALL, "mbstd_group_size": 4}, 4),
    "stylegan2-b": ("rni/ffhq128_stylegan2.yaml",
                    {"resolution": 64, "mapping_layers": 8, "d_architecture": "resnet", "mbstd_group_size": 8}, 32,
                    {**STYLEGAN2_SMALL, "mbstd_group_size": 4}, 4),
    "stylegan2-c": ("rni/ffhq128_stylegan2.yaml", {}, 8, {**STYLEGAN2_SMALL, "mbstd_group_size": 4}, 4),
    "biggan": ("noise_dim/cifar10_biggan.yaml", {}, None, {"ch": 2, "shared_dim": 8}, 4),
    "dcgan": ("rni/cifar10_dcgan_none.yaml", {}, None, {"dcgan_width": 4, "noise.dim": 16}, 4),
    "de_gan": ("de_gan/cifar10.yaml", {}, None, {"g_width": 4, "d_width": 4, "noise.dim": 16}, 4),
    "began": ("ganz/celeba128_dt64.yaml", {}, None, {"n_filters": 4}, 4),
    "pix2pix": ("i2i/facades.yaml", {}, None, {"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8}, 2),
}  # fmt: skip


# ------------------------------------------------------------------------------------ building
def _set(init_args: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        init_args = init_args.setdefault(key, {})
    init_args[keys[-1]] = value


def _vae_checkpoint(config: dict, latent_dim: int, small: bool, folder: str) -> str:
    """An untrained VAE checkpoint in DE-GAN's cifar10 shape (its preconditioner; only its cost matters here)."""
    import lightning

    from lightning_modules.vae import VAE

    vae_args = yaml.safe_load((CONFIGS / "de_gan" / "cifar10_vae.yaml").read_text())["model"]["init_args"]
    vae_args.update(latent_dim=latent_dim, resolution=config["resolution"], channels=config["channels"])
    if small:
        vae_args["width"] = 4
    vae_args["betas"] = tuple(vae_args["betas"])
    torch.manual_seed(0)
    vae = VAE(**vae_args)
    path = os.path.join(folder, "vae.ckpt")
    torch.save({"state_dict": vae.state_dict(), "hyper_parameters": dict(vae.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    return path


def build_model(method: str, small: bool, folder: str) -> tuple[LightningModule, int, dict]:
    """The method's LightningModule from its config (as LightningCLI builds it), its batch size, the config."""
    from jsonargparse import ArgumentParser

    config_name, overrides, batch, small_overrides, small_batch = METHODS[method]
    config = yaml.safe_load((CONFIGS / config_name).read_text())
    model = config["model"]
    for key, value in {**overrides, **(small_overrides if small else {})}.items():
        _set(model["init_args"], key, value)
    if "vae_ckpt" in model["init_args"]:
        init = model["init_args"]
        init["vae_ckpt"] = _vae_checkpoint(init, init["noise"]["dim"], small, folder)
    batch = small_batch if small else (batch or config["data"]["init_args"]["batch_size"])
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model")
    parsed = parser.parse_object({"model": model})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # jsonargparse >= 4.49 / older
    return instantiate(parsed).model, batch, config


class RandomImages(LightningDataModule):
    """``batches`` fixed random batches of the model's shape, in memory: ``(images, labels)`` or ``(input, target)``."""

    def __init__(self, model: LightningModule, batch_size: int, batches: int, channels_last: bool, pin: bool) -> None:
        super().__init__()
        self.image_shape = tuple(model.image_shape) if hasattr(model, "image_shape") else None
        generator = torch.Generator().manual_seed(1234)
        n = batch_size * batches
        if isinstance(model, NoisyI2I):
            c, r = model.hparams.channels, model.hparams.resolution
            out = model.hparams.out_channels
            first = torch.rand(n, c, r, r, generator=generator) * 2 - 1
            second = torch.rand(n, out, r, r, generator=generator) * 2 - 1
        else:
            first = torch.rand(n, *self.image_shape, generator=generator) * 2 - 1
            classes = int(model.hparams.get("num_classes") or 10)
            second = torch.randint(0, classes, (n,), generator=generator)
        if channels_last:
            first = first.contiguous(memory_format=torch.channels_last)
            if second.dim() == 4:
                second = second.contiguous(memory_format=torch.channels_last)
        self.dataset = TensorDataset(first, second)
        self.batch_size, self.pin = batch_size, pin

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, drop_last=True, pin_memory=self.pin)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class StepTimer(Callback):
    """Seconds of each training batch (synchronised on CUDA), the logged losses, and CPU memory samples."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: list[float] = []
        self.losses: list[dict[str, float]] = []
        self.rss_mib = 0.0
        self._start = 0.0

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        self.seconds.append(time.perf_counter() - self._start)
        logged = {k[len("train/"):]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        self.losses.append({k: v for k, v in logged.items() if k.startswith("loss")})
        self.rss_mib = max(self.rss_mib, _rss_mib())


# ------------------------------------------------------------------------------------ one variant
def _precision_args(precision: str, device: str) -> dict:
    if precision == "16-mixed" and device == "cpu":
        # Lightning maps 16-mixed on CPU to bf16; this plugin forces float16 autocast + GradScaler.
        from lightning.pytorch.plugins.precision import MixedPrecision

        return {"plugins": [MixedPrecision(precision="16-mixed", device="cpu")]}
    return {"precision": precision}


def run_variant(method: str, precision: str, compiled: bool, channels_last: bool, args) -> dict:
    """Fit the method for ``warmup + steps`` batches in one variant; its timings, memory and losses."""
    row: dict[str, Any] = {"method": method, "precision": precision, "compile": compiled,
                           "channels_last": channels_last}  # fmt: skip
    warmup = max(args.warmup, args.compile_warmup) if compiled else args.warmup
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        model, batch, config = build_model(method, args.small, folder)
        row["config"] = METHODS[method][0]
        row["batch"] = batch
        row["image_shape"] = list(getattr(model, "image_shape", ()) or ())
        row["params"] = sum(p.numel() for p in model.parameters())
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compiled:
            for name in ("generator", "discriminator"):
                net = getattr(model, name, None)
                if net is not None:
                    net.compile()
        data = RandomImages(model, batch, warmup + args.steps, channels_last, pin=args.device == "cuda")
        timer = StepTimer(args.device)
        trainer = Trainer(
            accelerator=args.device, devices=1, max_epochs=1, limit_train_batches=warmup + args.steps,
            limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
            callbacks=[StepSeed(seed=0), timer], default_root_dir=folder, **_precision_args(precision, args.device),
        )  # fmt: skip
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        row["wall_s"] = time.perf_counter() - start
        timed = timer.seconds[warmup:]
        if len(timed) < 1:
            raise RuntimeError(f"{len(timer.seconds)} batches ran, fewer than warmup {warmup} + 1")
        row["warmup"], row["steps"] = warmup, len(timed)
        row["first_batch_s"] = timer.seconds[0]
        row["img_s"] = batch * len(timed) / sum(timed)
        row["img_s_median"] = batch / statistics.median(timed)
        if args.device == "cuda":
            row["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
        else:
            row["peak_mem_mib"] = timer.rss_mib
        row["first_losses"] = timer.losses[0] if timer.losses else {}
        losses_finite = all(math.isfinite(v) for step in timer.losses for v in step.values())
        params_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())
        row["finite"] = losses_finite and params_finite
    del trainer, model, data
    gc.collect()
    if compiled:
        torch._dynamo.reset()
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return row


def compare(row: dict, base: dict, tolerance: float) -> None:
    """Ratios against the same run's eager float32 baseline, and the numerical check (in place)."""
    row["speedup"] = row["img_s"] / base["img_s"]
    row["mem_ratio"] = row["peak_mem_mib"] / base["peak_mem_mib"] if base["peak_mem_mib"] else None
    shared = sorted(set(row["first_losses"]) & set(base["first_losses"]))
    diffs = [abs(row["first_losses"][k] - base["first_losses"][k]) / max(abs(base["first_losses"][k]), 1e-6)
             for k in shared]  # fmt: skip
    row["first_loss_rel_diff"] = max(diffs) if diffs else None
    close = row["first_loss_rel_diff"] is None or row["first_loss_rel_diff"] <= tolerance
    row["safe"] = bool(row["finite"] and close)


def tier(variant: tuple[str, bool, bool]) -> int:
    """Run order: eager (every precision), compiled bf16, channels_last, compiled float32, then the rest."""
    precision, compiled, channels_last = variant
    if not compiled and not channels_last:
        return 0
    if compiled and not channels_last and precision == "bf16-mixed":
        return 1
    if not compiled:
        return 2
    if not channels_last and precision == "32-true":
        return 3
    return 4


def variants(args) -> list[tuple[str, bool, bool]]:
    """The matrix: the eager float32 baseline first, then by :func:`tier` and precision."""
    combos = {(p, c, cl) for c in args.compile for p in args.precisions for cl in args.channels_last}
    combos.discard(BASELINE)
    return [BASELINE] + sorted(combos, key=lambda v: (tier(v), PRECISIONS.index(v[0]), v[2]))


def bench(args, deadline: float, progress=None) -> list[dict]:
    """Every method's variants, tier by tier across the methods (so a time budget cuts the costly ones).

    ``progress(rows)`` is called after each variant (the results so far are saved if the run is killed).
    """
    rows: list[dict] = []
    bases: dict[str, Optional[dict]] = {}
    for level in sorted({tier(v) for v in variants(args)}):
        for method in args.methods:
            for precision, compiled, channels_last in [v for v in variants(args) if tier(v) == level]:
                on_off = ("off", "on")
                label = f"{method} {precision} compile={on_off[compiled]} cl={on_off[channels_last]}"
                head = {"method": method, "precision": precision, "compile": compiled, "channels_last": channels_last}
                if (precision, compiled, channels_last) != BASELINE and bases.get(method) is None:
                    rows.append({**head, "skipped": "no baseline"})
                    continue
                if time.monotonic() > deadline:
                    rows.append({**head, "skipped": "time budget"})
                    print(f"# skip {label} (time budget)", file=sys.stderr, flush=True)
                    continue
                print(f"# run  {label}", file=sys.stderr, flush=True)
                try:
                    row = run_variant(method, precision, compiled, channels_last, args)
                except Exception as error:  # a variant that does not run (e.g. a compile failure) is a result too
                    rows.append({**head, "error": f"{type(error).__name__}: {error}"[:500]})
                    print(f"# fail {label}: {rows[-1]['error']}", file=sys.stderr, flush=True)
                    gc.collect()
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                    continue
                if (precision, compiled, channels_last) == BASELINE:
                    bases[method] = row
                compare(row, bases[method], args.tolerance)
                rows.append(row)
                if progress is not None:
                    progress(rows)
    order = {m: i for i, m in enumerate(args.methods)}
    return sorted(rows, key=lambda r: order[r["method"]])  # stable: each method's rows in run order


def recommend(rows: list[dict]) -> Optional[dict]:
    """The fastest variant that ran and is numerically safe."""
    ok = [r for r in rows if r.get("safe")]
    return max(ok, key=lambda r: r["img_s"]) if ok else None


# ------------------------------------------------------------------------------------ reporting
def environment(device: str) -> dict:
    import lightning

    env = {"device": device, "torch": torch.__version__, "lightning": lightning.__version__,
           "python": platform.python_version(), "host": platform.node(), "cpus": os.cpu_count()}  # fmt: skip
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        # torch's defaults, left as users get them: cuDNN convolutions may use TF32 under 32-true.
        env["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    return env


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"
    return str(value)


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"Device: {env.get('gpu', 'CPU')} ({env['device']}), torch {env['torch']}, Lightning {env['lightning']}, "
        f"Python {env['python']}; command: `{result['command']}`",
        "",
        "| method | batch | precision | compile | channels_last | img/s | × eager fp32 | peak MiB | × mem "
        "| finite | 1st-loss rel. diff | safe |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        head = f"| {r['method']} | {r.get('batch', '-')} | {r['precision']} | {_fmt(r['compile'])} | " \
               f"{_fmt(r['channels_last'])} |"  # fmt: skip
        if "skipped" in r or "error" in r:
            lines.append(f"{head} {r.get('skipped') or 'failed: ' + r['error'].splitlines()[0][:80]} | | | | | | |")
            continue
        lines.append(
            f"{head} {_fmt(r['img_s'], 1)} | {_fmt(r['speedup'])} | {_fmt(r['peak_mem_mib'], 0)} | "
            f"{_fmt(r['mem_ratio'])} | {_fmt(r['finite'])} | {_fmt(r['first_loss_rel_diff'], 3)} | {_fmt(r['safe'])} |"
        )
    lines += ["", "Fastest numerically safe variant per method:", ""]
    for method, best in result["recommended"].items():
        text = "none ran safely" if best is None else (
            f"{best['precision']}, compile {_fmt(best['compile'])}, channels_last {_fmt(best['channels_last'])}: "
            f"{_fmt(best['img_s'], 1)} img/s, {_fmt(best['speedup'])}× eager fp32")  # fmt: skip
        lines.append(f"* {method}: {text}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--steps", type=int, default=20, help="timed batches per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches before them (eager variants)")
    p.add_argument("--compile-warmup", type=int, default=17,
                   help="untimed batches of a compiled variant: compiling, and one lazy R1 (16) / PL (4) cycle")
    p.add_argument("--small", action="store_true", help="tiny networks and batches (a quick CPU check)")
    p.add_argument("--tolerance", type=float, default=0.1, help="largest safe first-batch loss relative difference")
    p.add_argument("--budget-s", type=float, default=None, help="start no variant after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", default=None, help="write the results here (JSON)")
    p.add_argument("--markdown", default=None, help="write the table here (Markdown)")
    args = p.parse_args(argv)
    args.compile = [v == "on" for v in args.compile]
    args.channels_last = [v == "on" for v in args.channels_last]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible to torch")
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    # Lightning's per-fit banners and the methods' known warnings (e.g. bf16 rounding the noise) would
    # bury the table; the rows record what matters.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    deadline = start + args.budget_s if args.budget_s else math.inf
    def result_of(rows: list[dict], partial: bool) -> dict:
        return {
            "environment": environment(args.device),
            "command": "python benchmarks/methods.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "settings": {"steps": args.steps, "warmup": args.warmup, "compile_warmup": args.compile_warmup,
                         "small": args.small, "tolerance": args.tolerance, "budget_s": args.budget_s},  # fmt: skip
            "rows": rows,
            "recommended": {m: recommend([r for r in rows if r["method"] == m]) for m in args.methods},
            "wall_s": time.monotonic() - start,
            "partial": partial,
        }

    def save(rows: list[dict]) -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(result_of(rows, partial=True), indent=1))

    result = result_of(bench(args, deadline, save), partial=False)
    table = markdown(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table)
    return result


if __name__ == "__main__":
    main()
