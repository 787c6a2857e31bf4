"""Time a DDP GAN iteration: per-network gradient averaging against DDP's find_unused_parameters.

    python benchmarks/ddp.py [--devices 2] [--iterations 60] [--warmup 10] [--repeats 2]
                             [--accelerator cpu|gpu] [--width 32]

Each run is ``train.py fit`` of the digits demo (NoiseDimGAN, DCGAN, batch 64 per process)
under DDP on ``--devices`` processes, validation off; a callback on rank 0 times the
iterations after ``--warmup``.  Two structures, alternated ``--repeats`` times:

* ``find_unused`` (baseline): DDP's reducer syncs every backward pass, with
  ``--trainer.strategy ddp_find_unused_parameters_true`` (what the GAN recipe did before:
  each backward reaches only G or only D, which plain DDP rejects);
* ``ours``: plain ``ddp``; each update averages the gradients of the network it steps with
  one all-reduce (``lightning_modules/distributed.py``), DDP's reducer stays idle.

Prints seconds per iteration (median over repeats) and ``speed-up`` = baseline / ours (above
1: ours is faster).  On CPU (gloo, ``OMP_NUM_THREADS=1`` per process) compute dominates both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODES = ("find_unused", "ours")


def _child(args: argparse.Namespace) -> None:
    """One timed fit; Lightning's launcher re-runs this same command line for the other ranks."""
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    from lightning.pytorch import Callback

    import lightning_modules.adversarial as adversarial
    import train

    if args.mode == "find_unused":  # leave the synchronisation to DDP's reducer

        def reducer_syncs(module):
            module._averages_gradients = False
            return False

        adversarial.take_over_gradient_sync = reducer_syncs

    class Clock(Callback):
        def __init__(self) -> None:
            self.start = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.fit_loop.total_batch_idx == args.warmup:
                trainer.strategy.barrier()
                self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            trainer.strategy.barrier()
            if trainer.is_global_zero:
                seconds = (time.perf_counter() - self.start) / (args.iterations - args.warmup)
                with open(args.out, "w") as f:
                    json.dump({"seconds_per_iteration": seconds}, f)

    train.TRAINER_DEFAULTS["callbacks"] = [Clock()]
    with tempfile.TemporaryDirectory() as tmp:
        train.main([
            "fit", "-c", "configs/noise_dim/digits_demo.yaml",
            f"--trainer.logger.init_args.save_dir={tmp}", f"--trainer.default_root_dir={tmp}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"--trainer.accelerator={args.accelerator}", f"--trainer.devices={args.devices}",
            "--trainer.strategy=" + ("ddp" if args.mode == "ours" else "ddp_find_unused_parameters_true"),
            f"--trainer.max_steps={2 * args.iterations}", "--trainer.limit_val_batches=0",
            "--trainer.callbacks=[]", "--checkpoint.save_last=false", "--checkpoint.save_top_k=0",
            f"--model.init_args.g_width={args.width}", f"--model.init_args.d_width={args.width}",
        ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--width", type=int, default=32, help="g_width = d_width of the demo's DCGAN")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode is not None:
        return _child(args)

    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for repeat in range(args.repeats):
        for mode in MODES:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode, "--out", out.name,
                       *(f"--{k}={v}" for k, v in vars(args).items() if k not in ("mode", "out"))]  # fmt: skip
                subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                times[mode].append(json.load(open(out.name))["seconds_per_iteration"])
            print(f"repeat {repeat + 1}: {mode:12s} {times[mode][-1] * 1e3:8.1f} ms / iteration", flush=True)

    base, ours = (statistics.median(times[m]) for m in MODES)
    print(f"\n{args.devices} processes ({args.accelerator}), demo DCGAN width {args.width}, batch 64 per process")
    print(f"  find_unused_parameters (baseline): {base * 1e3:8.1f} ms / iteration")
    print(f"  per-network averaging (ours):      {ours * 1e3:8.1f} ms / iteration")
    print(f"  speed-up: {base / ours:.2f}x")


if __name__ == "__main__":
    main()
