"""What several reproduce pipelines share: the MNIST judge, the data arguments, tables.

* :func:`mnist_overrides` -- the ``train.py`` arguments that point a fit at the real MNIST
  digits under ``<data-root>/mnist`` at a resolution (28: the digits as they are; 32: padded
  by 2 on each side, as the 32-px configs expect).
* :func:`classifier_stage` -- trains ``configs/classifier/mnist.yaml`` on the real training
  digits (the feature network of FID/KID and the judge of label accuracy), measures its
  accuracy on the real test digits, and stops the pipeline below ``min_classifier_accuracy``
  (the issue asks for >= 99%, as the DE-GAN paper's < 0.5% error).  Every number that
  depends on it is reported with this accuracy.
* :func:`build_datamodule` -- the DataModule a fit trained on, from its saved ``config.yaml``.
* :func:`fmt`, :func:`markdown`, :func:`write_csv`, :func:`figure_axes` -- tables and figures.

A pipeline's ``pipeline.settings`` must hold ``resolution``, ``num_workers``,
``classifier_epochs``, ``classifier_batch_size``, ``classifier_val_fraction`` and
``min_classifier_accuracy`` for :func:`classifier_stage`.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any, Sequence

from core.errors import UserError
from tools.reproduce.pipeline import Pipeline, StageFailed

__all__ = ["build_datamodule", "classifier_fit", "classifier_stage", "classifier_test_accuracy", "fmt", "markdown", "mnist_overrides", "write_csv"]


def mnist_overrides(pipeline: Pipeline, batch_size: int, resolution: int | None = None) -> list[str]:
    """The data and trainer arguments of a fit on ``<data-root>/mnist`` (no progress bar: logs stay readable)."""
    s = pipeline.settings
    resolution = resolution or s["resolution"]
    return [
        "--data.init_args.root", os.path.join(pipeline.data_root, "mnist"),
        "--data.init_args.resolution", str(resolution),
        "--data.init_args.pad", str((resolution - 28) // 2),
        "--data.init_args.num_workers", str(s["num_workers"]),
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", str(batch_size),
    ]  # fmt: skip


def classifier_test_accuracy(checkpoint: str, root: str, resolution: int) -> tuple[float, int]:
    """(accuracy, number of images) of the Classifier ``checkpoint`` on MNIST's test split under ``root``."""
    import torch

    from datamodules import MNISTDataModule
    from lightning_modules.classifier import Classifier

    model = Classifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = MNISTDataModule(root=root, resolution=resolution, pad=(resolution - 28) // 2, channels=1, batch_size=500)
    data.setup("test")
    correct = total = 0
    with torch.no_grad():
        for images, labels in data.test_dataloader():
            correct += int((model.predict_proba(images).argmax(1) == labels).sum())
            total += int(labels.numel())
    if total == 0:
        raise UserError(f"{root}: the MNIST test split is empty")
    return correct / total, total


def classifier_fit(pipeline: Pipeline, tag: str = "classifier") -> tuple[str, str, list[str]]:
    """The judge's fit ``(tag, config, overrides)``: what :func:`classifier_stage` trains.

    A pipeline may put it in a :meth:`~tools.reproduce.pipeline.Pipeline.fit_many` pool with
    its GANs; :func:`classifier_stage` then finds it finished and only measures it.
    """
    s = pipeline.settings
    overrides = mnist_overrides(pipeline, s["classifier_batch_size"]) + [
        "--model.init_args.resolution", str(s["resolution"]),
        "--data.init_args.val_fraction", str(s["classifier_val_fraction"]),
        "--trainer.max_epochs", str(s["classifier_epochs"]),
    ]  # fmt: skip
    return tag, "configs/classifier/mnist.yaml", overrides


def classifier_stage(pipeline: Pipeline, tag: str = "classifier") -> dict[str, Any]:
    """Train the MNIST judge, record its test accuracy; :class:`StageFailed` below the settings' minimum.

    Run it as the body of a :class:`~tools.reproduce.pipeline.Stage` named ``tag``; its
    checkpoint is ``pipeline.checkpoint(tag)``.
    """
    s = pipeline.settings
    checkpoint = pipeline.fit(*classifier_fit(pipeline, tag))
    if pipeline.dry_run:
        return {}
    accuracy, count = classifier_test_accuracy(checkpoint, os.path.join(pipeline.data_root, "mnist"), s["resolution"])
    with open(pipeline.log_path(tag), "a") as log:
        log.write(f"\ntest accuracy of {checkpoint} on {count} test digits: {accuracy:.4f}\n")
    if accuracy < s["min_classifier_accuracy"]:
        raise StageFailed(
            f"stage {tag!r} failed: the judge reaches {accuracy:.4f} test accuracy, below the "
            f"{s['min_classifier_accuracy']} it must reach; train it longer (--force {tag} after raising "
            f"classifier_epochs); its log: {pipeline.log_path(tag)}"
        )
    return {"test_accuracy": accuracy, "test_images": count, "checkpoint": os.path.relpath(checkpoint, pipeline.out)}


def _instantiate(spec: Any) -> Any:
    """A ``{class_path, init_args}`` dict of a saved LightningCLI config as an object (nested ones too)."""
    import importlib

    if isinstance(spec, dict) and "class_path" in spec:
        module, _, name = spec["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: _instantiate(v) for k, v in (spec.get("init_args") or {}).items()})
    return spec


def build_datamodule(fit_dir: str):
    """The DataModule a fit was trained with, from the ``config.yaml`` LightningCLI saved in ``fit_dir``."""
    import yaml

    path = os.path.join(fit_dir, "config.yaml")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no saved config; was the fit made by train.py?")
    with open(path) as handle:
        return _instantiate(yaml.safe_load(handle)["data"])


def fmt(stat: dict[str, float], digits: int = 3) -> str:
    """``mean ± std`` of a ``{"mean", "std"}`` dict (the mean alone when the std is undefined: one seed)."""
    mean, std = stat["mean"], stat["std"]
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
