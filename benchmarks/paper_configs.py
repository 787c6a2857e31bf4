"""Every config that names a real dataset: a short ``fit`` and a ``test`` on synthetic data of its real format.

    python benchmarks/paper_configs.py [--device cuda|cpu] [--steps 20] [--configs rni/ffhq128_rni.yaml ...]
                                       [--precisions P ...] [--budget-s SECONDS] [--json OUT.json]
                                       [--markdown OUT.md] [--small]

For each ``configs/<method>/*.yaml`` whose ``data`` is a real dataset (CIFAR-10, MNIST, CelebA,
LSUN, FFHQ, pix2pix pairs, or CelebA pairs for image-to-image; the built-in digits and the
known source need no files and are skipped), this writes a small synthetic copy of that dataset
in its real on-disk format (``datamodules/synthetic``, what ``python -m tools synthetic-data``
writes), then runs ``train.py fit`` with the config as it is (networks, batch size, optimiser,
precision) except: ``max_steps`` = ``--steps``, no validation, a step timer as the only callback,
logs and checkpoints under a temporary folder, held-out fractions (where the dataset has no
official test split) of 0.25 so the few synthetic images give a test batch, DE-GAN's VAE
checkpoint an untrained VAE of the
config's shape.  Then ``train.py test`` on the last checkpoint with the config's own callbacks,
their sample counts cut to ``--eval-samples`` and every feature network (Inception for FID/KID,
DE-GAN's classifier) replaced by one untrained ``Classifier`` checkpoint: the device cannot
download the Inception weights, so the test proves the evaluation code path runs, and its
numbers are no FIDs of any meaning.

Each config runs in each precision it lists: its ``trainer.precision`` (32-true when it names
none) and the precisions named in that line's comment (``# 16-mixed / bf16-mixed on GPUs``);
``--precisions`` replaces that list.  Recorded per run: iterations/s and optimiser steps/s over
the steps after ``--warmup``, peak GPU memory (``torch.cuda.max_memory_allocated``), the test's
logged metrics, and the projected wall time of the paper-scale run (its ``max_steps``, or
``max_epochs`` x the real training-set size / batch) on one GPU and on 8 (ideal linear scaling:
8 times the images per second; a bound, not a measurement).

Configs run one of each family (model class, backbone, resolution, data) first, then the rest;
``--budget-s`` starts no config after that many seconds and lists the rest as skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import torch  # noqa: E402
import yaml  # noqa: E402
from lightning.pytorch import Callback  # noqa: E402

CONFIGS = ROOT / "configs"
PRECISION_NAMES = ("32-true", "bf16-mixed", "16-mixed", "64-true", "bf16-true", "16-true")

#: Real training-set sizes (images) for the projections: the official train splits.
DATASET_SIZES = {
    "datamodules.CIFAR10DataModule": 50_000,
    "datamodules.MNISTDataModule": 60_000,
    "datamodules.CelebADataModule": 162_770,
    "datamodules.LSUNDataModule": 126_227,  # church_outdoor train
    "datamodules.FFHQDataModule": 70_000,
    "datamodules.AlignedPairsDataModule": 400,  # facades train
}

#: Tiny networks for a CPU check (--small), by model class (and backbone): as the methods' own tests.
SMALL = {
    ("RNIStyleGAN2", "stylegan2"): {"channel_base": 128, "channel_max": 16, "w_dim": 16, "noise.dim": 16,
                                    "mapping_layers": 1, "mbstd_group_size": 2},
    ("RNIStyleGAN2", "dcgan"): {"dcgan_width": 4, "noise.dim": 16},
    ("NoiseDimGAN", "biggan"): {"ch": 2, "shared_dim": 8},
    ("NoiseDimGAN", "stylegan2_ada"): {"ch": 2, "w_dim": 8, "noise.dim": 8, "mbstd_group_size": 2},
    ("NoiseDimGAN", "dcgan"): {"g_width": 8, "d_width": 8},
    ("DEGAN", None): {"g_width": 4, "d_width": 4, "noise.dim": 16},
    ("VAE", None): {"width": 4, "latent_dim": 16},
    ("GANZ", None): {"n_filters": 4},
    ("NoisyI2I", None): {"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8},
    ("Classifier", None): {"width": 4, "num_features": 8},
}  # fmt: skip


# ------------------------------------------------------------------------------------ the data
def _writers() -> dict[str, Callable[[str, int, dict], str]]:
    """data class -> write(folder, count, init_args) returning the value of its ``root``."""
    from datamodules import synthetic as s

    def ffhq(folder: str, count: int, init: dict) -> str:
        path = os.path.join(folder, "ffhq.zip")
        s.write_image_zip(path, count, size=int(init.get("resolution", 128)), labels=True)
        return path

    return {
        "datamodules.CIFAR10DataModule": lambda f, n, i: (s.write_cifar10(f, per_batch=max(1, n // 5)), f)[1],
        "datamodules.MNISTDataModule": lambda f, n, i: (s.write_mnist(f, n, max(1, n // 5)), f)[1],
        "datamodules.CelebADataModule": lambda f, n, i: (s.write_celeba(f, n), f)[1],
        "datamodules.LSUNDataModule": lambda f, n, i: (s.write_lsun(f, i.get("category", "church_outdoor"), n), f)[1],
        "datamodules.FFHQDataModule": ffhq,
        "datamodules.AlignedPairsDataModule": lambda f, n, i: (
            s.write_pix2pix(f, n, size=int(i.get("resolution", 256))), f)[1],
    }  # fmt: skip


def real_data(config: dict) -> Optional[tuple[str, dict]]:
    """(the dataset's data class, the init_args holding its ``root``), or None for built-in data."""
    data = config.get("data") or {}
    init = data.get("init_args", {})
    if data.get("class_path") == "datamodules.PairedI2IDataModule":
        data, init = init["source"], init["source"].setdefault("init_args", {})
    return (data.get("class_path"), init) if data.get("class_path") in DATASET_SIZES else None


def listed_precisions(path: Path, config: dict) -> list[str]:
    """The config's ``trainer.precision`` (32-true by default) and those its comment names."""
    found = [str(config.get("trainer", {}).get("precision") or "32-true")]
    for line in path.read_text().splitlines():
        if re.match(r"\s*precision:", line) and "#" in line:
            comment = line.split("#", 1)[1]  # in their order there; "16-mixed" is not read inside "bf16-mixed"
            found += re.findall(r"(?<![\w-])(?:" + "|".join(map(re.escape, PRECISION_NAMES)) + r")(?![\w-])", comment)
    return list(dict.fromkeys(found))


def discover(names: Optional[list[str]] = None) -> list[tuple[str, Optional[str]]]:
    """(config name, None) for every config with real data; (name, reason) for the skipped ones."""
    if names:
        paths = [CONFIGS / n for n in names]
    else:
        paths = sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "data")
    return [(str(p.relative_to(CONFIGS)), None if real_data(yaml.safe_load(p.read_text())) else "built-in data")
            for p in paths]  # fmt: skip


def family(config: dict) -> tuple:
    model = config["model"]["init_args"]
    return (config["model"]["class_path"], model.get("backbone"), model.get("resolution"), real_data(config)[0])


# ------------------------------------------------------------------------------------ one run
class StepRate(Callback):
    """Seconds of each training batch (synchronised on CUDA) and the optimiser steps they made."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.steps: list[int] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)
        self.steps.append(trainer.global_step)


def _set(init_args: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        init_args = init_args.setdefault(key, {})
    init_args[keys[-1]] = value


def _tiny_classifier(folder: str, channels: int, resolution: int) -> str:
    """An untrained classifier checkpoint of the generator's image shape (DE-GAN's evaluation needs that shape)."""
    import lightning

    from lightning_modules.classifier import Classifier

    path = os.path.join(folder, "classifier.ckpt")
    if not os.path.exists(path):
        torch.manual_seed(0)
        model = Classifier(channels=channels, resolution=resolution, num_classes=10, width=8, num_features=16)
        torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                    "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    return path


def _shrink_callbacks(callbacks: list, eval_samples: int, classifier: str) -> list:
    """The config's callbacks with sample counts cut and feature networks replaced (see the module docstring)."""
    out = []
    for callback in callbacks or []:
        callback = json.loads(json.dumps(callback))
        init = callback.setdefault("init_args", {})
        for key in ("num_samples", "ppl_samples", "pca_samples", "max_real", "pr_max_samples"):
            if init.get(key):
                init[key] = min(int(init[key]), eval_samples)
        if "batch_size" in init:
            init["batch_size"] = min(int(init["batch_size"]), eval_samples)
        if callback["class_path"].endswith("GenerativeMetrics"):  # Inception is its default extractor
            init["kid_subset_size"] = min(int(init.get("kid_subset_size", 1000)), eval_samples // 2)
            init["kid_subsets"] = min(int(init.get("kid_subsets", 100)), 10)
            init["feature_extractor"], init["feature_path"] = "classifier", classifier
        if init.get("fid") in ("inception", "classifier"):  # NoiseRobustness
            init["fid"], init["fid_path"] = "classifier", classifier
        if "classifier_ckpt" in init:
            init["classifier_ckpt"] = classifier
        if "ppl_lpips_path" in init:
            init["ppl_lpips_path"] = None
        out.append(callback)
    return out


def prepare(name: str, precision: str, args, folder: str, data_folder: str, data_roots: dict) -> tuple[dict, dict]:
    """The (fit, test) configs of one run, with its synthetic data written (cached per dataset)."""
    from benchmarks.methods import _vae_checkpoint

    config = yaml.safe_load((CONFIGS / name).read_text())
    data_class, data_init = real_data(config)
    key = (data_class, data_init.get("category"), data_init.get("resolution"))
    if key not in data_roots:
        target = os.path.join(data_folder, f"data{len(data_roots)}")
        os.makedirs(target, exist_ok=True)
        data_roots[key] = _writers()[data_class](target, args.count, data_init)
    data_init["root"] = data_roots[key]
    data_init["num_workers"] = args.num_workers
    # Held-out splits of --count images that hold a batch or more (LSUN and FFHQ hold out 1% by default).
    one_percent = data_class.endswith(("LSUNDataModule", "FFHQDataModule"))
    defaults = {"val_fraction": 0.01, "test_fraction": 0.01} if one_percent else {}
    for split in ("val_fraction", "test_fraction"):
        if float(data_init.get(split, defaults.get(split, 0)) or 0) > 0:
            data_init[split] = 0.25
    model = config["model"]
    model_class = model["class_path"].rsplit(".", 1)[-1]
    init = model.setdefault("init_args", {})
    if args.small:
        for dotted, value in SMALL.get((model_class, init.get("backbone")), SMALL.get((model_class, None), {})).items():
            _set(init, dotted, value)
        data_init["batch_size"] = min(int(data_init.get("batch_size", 4)), 4)
    if "vae_ckpt" in init and init.get("preconditioner", "vae") == "vae":
        shape = {"resolution": init.get("resolution", 32), "channels": init.get("channels", 1)}
        init["vae_ckpt"] = _vae_checkpoint(shape, init["noise"]["dim"], args.small, folder)
    run = os.path.join(folder, "fit_logs")  # not "runs": the tests' guard of ./runs sees rmtree's relative opens
    trainer = config.setdefault("trainer", {})
    callbacks = trainer.get("callbacks") or []
    trainer.update(accelerator=args.device, devices=1, precision=precision, max_steps=args.steps, max_epochs=-1,
                   limit_val_batches=0, num_sanity_val_steps=0, val_check_interval=None, check_val_every_n_epoch=None,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=run)  # fmt: skip
    trainer["logger"] = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                         "init_args": {"save_dir": run, "name": name.replace("/", "_"), "default_hp_metric": False}}
    trainer["callbacks"] = [{"class_path": "benchmarks.paper_configs.StepRate"}]
    config["checkpoint"] = {"save_last": True}
    fit = json.loads(json.dumps(config))
    test = json.loads(json.dumps(config))
    classifier = _tiny_classifier(folder, int(init.get("channels", 3)), int(init.get("resolution", 32)))
    test["trainer"]["callbacks"] = _shrink_callbacks(callbacks, args.eval_samples, classifier)
    test["trainer"]["limit_test_batches"] = 2
    return fit, test


def run_config(name: str, precision: str, args, folder: str, data_folder: str, data_roots: dict) -> dict:
    from train import main

    config = yaml.safe_load((CONFIGS / name).read_text())
    row: dict[str, Any] = {"config": name, "precision": precision, "data": real_data(config)[0]}
    fit_cfg, test_cfg = prepare(name, precision, args, folder, data_folder, data_roots)
    row["batch"] = int(real_data(fit_cfg)[1].get("batch_size", 0))
    paths = {}
    for stage, cfg in (("fit", fit_cfg), ("test", test_cfg)):
        paths[stage] = os.path.join(folder, f"{stage}.yaml")
        Path(paths[stage]).write_text(yaml.safe_dump(cfg))
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    cli = main(["fit", "-c", paths["fit"]])
    timer = next(c for c in cli.trainer.callbacks if type(c).__name__ == "StepRate")  # __main__ or imported
    row["fit_s"] = time.perf_counter() - start
    warmup = args.warmup if len(timer.seconds) > args.warmup else 0  # too short a fit: time all of it
    timed = timer.seconds[warmup:]
    steps_made = timer.steps[-1] - (timer.steps[warmup - 1] if warmup else 0)
    row["iterations"] = len(timer.seconds)
    row["it_s"] = len(timed) / sum(timed)
    row["opt_steps_s"] = steps_made / sum(timed)
    row["img_s"] = row["it_s"] * row["batch"]
    row["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
    row.update(projection(config, row))
    ckpt = cli.trainer.checkpoint_callback.last_model_path
    del cli
    gc.collect()
    start = time.perf_counter()
    cli = main(["test", "-c", paths["test"], "--ckpt_path", ckpt])
    row["test_s"] = time.perf_counter() - start
    row["test_metrics"] = {k: float(v) for k, v in cli.trainer.callback_metrics.items()
                           if torch.is_tensor(v) and v.numel() == 1}  # fmt: skip
    del cli
    return row


def projection(config: dict, row: dict) -> dict:
    """Projected hours of the paper-scale run at the measured rate: on one GPU, and on 8 (ideal scaling)."""
    trainer = config.get("trainer", {})
    data_class, data_init = real_data(config)
    batch = int(data_init.get("batch_size", 1))
    if (trainer.get("max_steps") or -1) > 0:
        seconds = trainer["max_steps"] / row["opt_steps_s"] if row["opt_steps_s"] else math.inf
        basis = f"max_steps {trainer['max_steps']}"
    elif trainer.get("max_epochs"):
        held_out = float(data_init.get("val_fraction") or 0) + float(data_init.get("test_fraction") or 0)
        per_epoch = DATASET_SIZES[data_class] * (1 - held_out) // batch
        seconds = trainer["max_epochs"] * per_epoch / row["it_s"]
        basis = f"max_epochs {trainer['max_epochs']} x {int(per_epoch)} iterations"
    else:
        return {"projection_basis": "no max_steps / max_epochs"}
    return {"projection_basis": basis, "projected_h_1gpu": seconds / 3600, "projected_h_8gpu": seconds / 3600 / 8}


# ------------------------------------------------------------------------------------ driver
def order(configs: list[str]) -> list[str]:
    """One config of each family first, then the rest (each group in name order)."""
    seen, first, rest = set(), [], []
    for name in configs:
        fam = family(yaml.safe_load((CONFIGS / name).read_text()))
        (rest if fam in seen else first).append(name)
        seen.add(fam)
    return first + rest


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"Device: {env.get('gpu', 'CPU')}, torch {env['torch']}; {result['settings']['steps']} steps per fit; "
             f"command: `{result['command']}`", "",
             "| config | precision | batch | it/s | img/s | peak MiB | test | projected h, 1 GPU | 8 GPUs (ideal) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def f(v, d=2):
        return "-" if v is None else f"{v:.{d}f}"

    for r in result["rows"]:
        if "error" in r or "skipped" in r:
            what = r.get("skipped") or "failed: " + r["error"][:100]
            lines.append(f"| {r['config']} | {r.get('precision', '-')} | | {what} | | | | | |")
            continue
        test = f"{len(r['test_metrics'])} metrics" if r.get("test_metrics") is not None else "-"
        lines.append(f"| {r['config']} | {r['precision']} | {r['batch']} | {f(r['it_s'])} | {f(r['img_s'], 1)} | "
                     f"{f(r['peak_mem_mib'], 0)} | {test} | {f(r.get('projected_h_1gpu'), 1)} | "
                     f"{f(r.get('projected_h_8gpu'), 1)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--configs", nargs="+", default=None, help="names under configs/ (default: all)")
    p.add_argument("--precisions", nargs="+", default=None, help="replace each config's listed precisions")
    p.add_argument("--steps", type=int, default=20, help="max_steps (optimiser steps) of each fit")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations at the start of each fit")
    p.add_argument("--count", type=int, default=128, help="images in each synthetic dataset")
    p.add_argument("--eval-samples", type=int, default=64, help="the test callbacks' sample counts, at most")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--small", action="store_true", help="tiny networks and batches (a CPU check)")
    p.add_argument("--budget-s", type=float, default=None, help="start no run after this many seconds")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.monotonic()
    deadline = start + args.budget_s if args.budget_s else math.inf
    found = discover(args.configs)
    rows: list[dict] = [{"config": n, "skipped": reason} for n, reason in found if reason]
    with tempfile.TemporaryDirectory() as folder:
        data_roots: dict = {}
        for name in order([n for n, reason in found if not reason]):
            config = yaml.safe_load((CONFIGS / name).read_text())
            for precision in args.precisions or listed_precisions(CONFIGS / name, config):
                if time.monotonic() > deadline:
                    rows.append({"config": name, "precision": precision, "skipped": "time budget"})
                    continue
                print(f"# {name} {precision}", file=sys.stderr, flush=True)
                with tempfile.TemporaryDirectory(dir=folder) as run_folder:
                    try:
                        rows.append(run_config(name, precision, args, run_folder, folder, data_roots))
                    except BaseException as error:  # noqa: BLE001  (SystemExit from the CLI too) a failure is a result
                        if isinstance(error, KeyboardInterrupt):
                            raise
                        rows.append({"config": name, "precision": precision,
                                     "error": f"{type(error).__name__}: {error}"[:600]})  # fmt: skip
                        print(f"# failed: {rows[-1]['error']}", file=sys.stderr, flush=True)
                gc.collect()
                if args.device == "cuda":
                    torch.cuda.empty_cache()
                if args.json:  # the results so far, in case the run is killed
                    Path(args.json).write_text(json.dumps({"rows": rows, "partial": True}, indent=1))
    env = {"device": args.device, "torch": torch.__version__}
    if args.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    result = {"environment": env, "settings": vars(args), "rows": rows, "wall_s": time.monotonic() - start,
              "command": "python benchmarks/paper_configs.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    table = markdown(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table)
    return result


if __name__ == "__main__":
    main()
