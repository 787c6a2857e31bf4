"""Train one RNIStyleGAN2 config with each noise injection and compare them as the RNI paper does.

For every ``--injections`` value (default: none, eni, rni) this runs

    python train.py fit  -c CONFIG --model.init_args.noise_injection X   (<save-dir>/<name>/X/fit)
    python train.py test -c CONFIG -c <eval callbacks> --ckpt_path .../last.ckpt   (<save-dir>/<name>/X/test)
    python -m tools invert --ckpt .../last.ckpt --images <test images>             (<save-dir>/<name>/X/inversion)

The test stage measures the paper's Table 1-2 columns on the EMA generator: FID and KID (in
the feature space of the project's classifier, ``--classifier-ckpt``: Inception weights are
not on this machine), PPL in W (or Z for DCGAN), and MC/TTMC (``callbacks.ConditionNumber``).
The inversion stage reconstructs ``--inversion-images`` held-out images (the datamodule's
test split) in w+ (Image2StyleGAN) and reports PSNR/SSIM.  Everything is merged into
``<save-dir>/<name>/comparison.{csv,md}`` and ``comparison.png`` (one panel per metric); the
PPL column carries its distance (``metrics/ppl[classifier-l2]``) and ``inversion distance``
names the inversion's perceptual term.  ``python -m tools rni-tables`` reads the runs the same
way (:func:`read_test_metrics`) to write the paper's Tables 1-2.

A finished stage is not repeated (``--force`` redoes everything); ``--dry-run`` prints the
commands.  Arguments after ``--`` go to every ``train.py`` call.

    python -m tools rni-compare -c configs/rni/digits_stylegan2.yaml \\
        --classifier-ckpt 'runs/classifier/digits/version_*/checkpoints/best-epoch=*.ckpt'

(Formerly ``python scripts/rni_compare.py``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import subprocess
import sys

import yaml

from callbacks.generative_metrics import split_distance_tag
from core.errors import UserError
from tools.sweep import (
    ROOT,
    check_config,
    command_parser,
    markdown_table,
    sweep_name,
    tensorboard_scalars,
    write_rows,
)

#: The tags collected from a run; PPL is logged as ``metrics/ppl[<distance>]`` and kept with its distance.
METRICS = ("metrics/fid", "metrics/kid_mean", "metrics/ppl", "metrics/mc", "metrics/ttmc")


def eval_callbacks(path: str, classifier: str, space: str, samples: int, cond_samples: int) -> None:
    """The test-time callbacks as a config file: GenerativeMetrics (+ PPL) and ConditionNumber."""
    callbacks = [
        {
            "class_path": "callbacks.GenerativeMetrics",
            "init_args": {
                "num_samples": samples,
                "feature_extractor": "classifier",
                "feature_path": classifier,
                "real_split": "train",
                "precision_recall": False,
                "kid_subset_size": min(1000, samples),
                "ppl_samples": samples,
                "ppl_space": space,
                "ppl_sampling": "end",
            },
        },
        {"class_path": "callbacks.ConditionNumber", "init_args": {"num_samples": cond_samples, "space": space}},
    ]
    with open(path, "w") as handle:
        yaml.safe_dump({"trainer": {"callbacks": callbacks}}, handle)


def test_images(config: str, folder: str, count: int) -> None:
    """Write ``count`` images of the config's test split (or validation split) as PNGs."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule
    from torchvision.utils import save_image

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    with open(config) as handle:
        data_cfg = yaml.safe_load(handle)["data"]
    dm = parser.instantiate_classes(parser.parse_object({"data": data_cfg})).data
    dm.prepare_data()
    dm.setup("test")
    os.makedirs(folder, exist_ok=True)
    dataset = dm.test_dataloader().dataset
    for i in range(min(count, len(dataset))):
        image = dataset[i][0]
        save_image(image, os.path.join(folder, f"{i:04d}.png"), normalize=True, value_range=(-1, 1))


def read_test_metrics(path: str) -> dict[str, float]:
    """The :data:`METRICS` of one run: the last value of each in a run folder's TensorBoard events,
    or the values of a JSON file of ``{tag: value}``.  PPL keeps its labelled tag
    (``metrics/ppl[lpips-vgg]``); an unlabelled ``metrics/ppl`` (older runs) becomes ``metrics/ppl[unknown]``."""
    if os.path.isfile(path):
        try:
            with open(path) as handle:
                values = json.load(handle)
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: not a JSON file of metrics ({err})") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a JSON object {{tag: value}}")
        values = {tag: float(v) for tag, v in values.items() if isinstance(v, (int, float))}
    elif os.path.isdir(path):
        values = {tag: points[-1][1] for tag, points in tensorboard_scalars(path).items()}
    else:
        raise UserError(f"{path}: no such run folder or metrics file")
    out = {}
    for tag, value in values.items():
        base, label = split_distance_tag(tag)
        if base in METRICS:
            out[f"{base}[unknown]" if base == "metrics/ppl" and label is None else tag] = value
    return out


def run(cmd: list[str], dry_run: bool) -> None:
    print(shlex.join(cmd), flush=True)
    if not dry_run:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
        subprocess.run(cmd, check=True, env=env)


def write_outputs(rows: list[dict], folder: str, title: str) -> None:
    """comparison.csv / .md and comparison.png (a bar panel per metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(dict.fromkeys(k for row in rows for k in row))
    write_rows(rows, folder, "comparison", columns)
    print(markdown_table(rows, columns))
    metrics = [c for c in columns if c != "injection" and any(isinstance(row.get(c), (int, float)) for row in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 2.8))
    for ax, metric in zip(list(axes) if len(metrics) > 1 else [axes], metrics):
        values = [row.get(metric, float("nan")) for row in rows]
        ax.bar([row["injection"] for row in rows], values, color=["#999999", "#4477aa", "#cc6677"][: len(rows)])
        ax.set_title(metric.replace("metrics/", ""), fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "comparison.png"), dpi=120)
    plt.close(fig)


def add_command(subparsers, name: str, help: str) -> None:
    p = command_parser(subparsers, name, help, __doc__, "an RNIStyleGAN2 config")
    p.add_argument("--injections", nargs="+", default=["none", "eni", "rni"], choices=["none", "eni", "rni"])
    p.add_argument("--classifier-ckpt", required=True, help="Classifier checkpoint (a glob: the newest match)")
    p.add_argument("--samples", type=int, default=2000, help="samples for FID/KID and pairs for PPL")
    p.add_argument("--cond-samples", type=int, default=10000, help="pairs for MC/TTMC")
    p.add_argument("--inversion-images", type=int, default=16)
    p.add_argument("--inversion-steps", type=int, default=300)
    p.add_argument("--name", help="folder under --save-dir (default: rni_compare/<config stem>)")
    p.add_argument("--save-dir", default="runs")
    p.add_argument("--force", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(run=compare)


def compare(args: argparse.Namespace) -> int:
    extra = args.train_args
    check_config(args.config)
    matches = sorted(glob.glob(args.classifier_ckpt), key=os.path.getmtime)
    if not matches:
        raise UserError(
            f"--classifier-ckpt {args.classifier_ckpt}: no such checkpoint (train one with "
            "`python train.py fit -c configs/classifier/digits.yaml`)"
        )
    classifier = matches[-1]
    with open(args.config) as handle:
        model_args = yaml.safe_load(handle)["model"]["init_args"]
    space = "w" if model_args.get("backbone", "stylegan2") == "stylegan2" else "z"
    name = sweep_name(args, "rni_compare")
    folder = os.path.join(args.save_dir, name)
    os.makedirs(folder, exist_ok=True)
    callbacks_cfg = os.path.join(folder, "eval_callbacks.yaml")
    eval_callbacks(callbacks_cfg, classifier, space, args.samples, args.cond_samples)
    images = os.path.join(folder, "test_images")
    if not args.dry_run and not os.path.isdir(images):
        test_images(args.config, images, args.inversion_images)
    train = [sys.executable, os.path.join(ROOT, "train.py")]
    rows = []
    for injection in args.injections:
        logger = ["--trainer.logger.init_args.save_dir", args.save_dir, "--trainer.logger.init_args.name",
                  os.path.join(name, injection)]  # fmt: skip
        common = ["-c", args.config, "--model.init_args.noise_injection", injection, *logger]
        base = os.path.join(folder, injection)
        ckpt = os.path.join(base, "fit", "checkpoints", "last.ckpt")
        if args.force or not os.path.isfile(os.path.join(base, "fit", "FINISHED")):
            run(train + ["fit", *common, "--trainer.logger.init_args.version", "fit", *extra], args.dry_run)
            if not args.dry_run:
                open(os.path.join(base, "fit", "FINISHED"), "w").close()
        test_dir = os.path.join(base, "test")
        if args.force or not os.path.isdir(test_dir):
            run(train + ["test", *common, "-c", callbacks_cfg, "--trainer.logger.init_args.version", "test",
                         "--ckpt_path", ckpt, *extra], args.dry_run)  # fmt: skip
        inv_dir = os.path.join(base, "inversion")
        if args.force or not os.path.isfile(os.path.join(inv_dir, "summary.json")):
            run([sys.executable, "-m", "tools", "invert", "--ckpt", ckpt, "--images", images, "--out", inv_dir,
                 "--steps", str(args.inversion_steps), "--classifier-ckpt", classifier,
                 "--space", "w_plus" if space == "w" else "z"], args.dry_run)  # fmt: skip
        if args.dry_run:
            continue
        row = {"injection": injection, **read_test_metrics(test_dir)}
        with open(os.path.join(inv_dir, "summary.json")) as handle:
            summary = json.load(handle)
        row["inversion PSNR"], row["inversion SSIM"] = summary["psnr_mean_db"], summary["ssim_mean"]
        row["inversion distance"] = summary["perceptual"]  # the perceptual term the inversion used
        rows.append(row)
    if rows:
        write_outputs(rows, folder, f"{os.path.basename(args.config)}: noise injection compared")
        print("wrote", *(os.path.join(folder, f"comparison.{ext}") for ext in ("csv", "md", "png")), sep="\n  ")
    return 0
