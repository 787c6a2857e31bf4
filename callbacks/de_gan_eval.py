"""The DE-GAN paper's evaluation of a generator, after every epoch and at test.

Seed paper "GANs with decoder-encoder output noise", Sec. IV; the pure functions are in
:mod:`evaluation.de_gan_metrics`.  From ``num_samples`` images generated from fixed-seed
noise (so every evaluation sees the same z_n):

* ``de_gan/label_accuracy`` -- the paper's test accuracy (Table V, Fig. 6), for a conditional
  generator (``num_classes`` > 0): sample i is generated for label y_i = i mod K and counts
  when the project's :class:`~lightning_modules.classifier.Classifier` assigns it to y_i
  (argmax); ``de_gan/label_accuracy/<c>`` per class (Table VII);
* ``de_gan/confident_share`` -- the project's own measure, which needs no labels (the only
  one for an unconditional generator): the share of samples whose top class probability
  is strictly greater than ``threshold``; ``de_gan/confidence_mean`` is the mean top
  probability;
* convergence (Fig. 6): the label accuracy (the confident share for an unconditional
  generator) after every epoch, drawn to
  ``<run>/de_gan/convergence.png`` and TensorBoard's ``de_gan/convergence`` figure, with
  the numbers in ``<run>/de_gan/metrics.csv``;
* ``de_gan/rdd/<c>`` and ``de_gan/rdd_mean`` -- diversity (Definition 3, Table VI):
  rdd_c = D(X_gen,c) / D(X_real,c), generated images assigned to classes by the label
  they were generated for (conditional) or by the classifier's predicted label
  (unconditional), only those whose top probability exceeds ``rdd_min_confidence``; real
  images by their labels in ``real_split``; a class never generated has rdd 0;
* ``de_gan/noise_pca`` -- Fig. 11: 2-D PCA of z_n and of the preconditioned z' (once: the
  frozen VAE makes z' a fixed function of z_n), with the variance share of the two
  components as ``de_gan/pca_explained_zn`` / ``de_gan/pca_explained_zprime``.

Without ``classifier_ckpt`` only the PCA is computed (e.g. CelebA, which has no classes).
Works with any LightningModule that has ``noise`` and ``generate(z, ema=..., labels=...)`` (images
in [-1, 1]; a positive ``num_classes`` attribute makes it conditional); the PCA uses ``precondition(z)`` where the module has one (DE-GAN), else z' = z_n.
The same numbers are logged by ``train.py test`` (the callback's ``on_test_epoch_end``).
Global rank zero computes them and shares the values with the other processes
(:func:`callbacks.rank_zero.compute_on_rank_zero`), so every rank logs the same numbers;
files and figures are written by rank zero only.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Literal, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from callbacks.paths import run_dir
from callbacks.rank_zero import compute_on_rank_zero
from core.io import resolve_checkpoint
from evaluation.de_gan_metrics import (
    class_diversity,
    confident_accuracy,
    convergence_figure,
    label_accuracy,
    label_accuracy_per_class,
    pca_2d,
    pca_figure,
    relative_diversity,
)
from evaluation.features import CLASSIFIER_HOWTO
from lightning_modules.classifier import Classifier

__all__ = ["DEGANEvaluation"]


LABEL_ACCURACY = "de_gan/label_accuracy"
CONFIDENT_SHARE = "de_gan/confident_share"


def _num_classes(pl_module: LightningModule) -> int:
    """K of a conditional generator (its ``num_classes``), 0 for an unconditional one."""
    return int(getattr(pl_module, "num_classes", 0) or 0)


class DEGANEvaluation(Callback):
    """Classifier accuracy of samples per epoch (Fig. 6, Table V), rdd (Table VI), noise PCA (Fig. 11).

    Args:
        classifier_ckpt: checkpoint of the project's Classifier trained on the same data
            (``python train.py fit -c configs/classifier/digits.yaml`` writes
            ``runs/classifier/digits/version_N/checkpoints/best-epoch=*.ckpt``); a glob
            picks the newest match; ``null`` skips accuracy and rdd.
        num_samples: generated images per evaluation (the paper: 6400 on MNIST).
        threshold: tau of ``de_gan/confident_share`` (the project's own measure): a sample
            counts when its top class probability is strictly greater than tau; 0.9 by default.
        every_n_epochs: evaluate after every n-th training epoch.
        real_split: the datamodule split holding the real images of D(X_real,c).
        max_real: at most this many real images (a fixed-seed random subset); ``null``: all.
        rdd_min_confidence: only generated images whose top probability exceeds this enter
            rdd (0: every image, by its predicted label).
        pca_samples: noise vectors in the PCA figure (0: no PCA).
        seed: seed of the fixed noise.
        ema: use the generator's EMA weights (where the method has them).
        batch_size: images per generator / classifier call.
    """

    def __init__(
        self,
        classifier_ckpt: Optional[str] = None,
        num_samples: int = 6400,
        threshold: float = 0.9,
        every_n_epochs: int = 1,
        real_split: Literal["train", "val", "test"] = "train",
        max_real: Optional[int] = None,
        rdd_min_confidence: float = 0.0,
        pca_samples: int = 1000,
        seed: int = 0,
        ema: bool = True,
        batch_size: int = 500,
    ) -> None:
        if num_samples < 2 or every_n_epochs < 1 or batch_size < 1 or pca_samples < 0:
            raise ValueError(
                "DEGANEvaluation: num_samples must be >= 2, every_n_epochs and batch_size >= 1, pca_samples >= 0"
            )
        if not 0.0 <= threshold < 1.0 or not 0.0 <= rdd_min_confidence < 1.0:
            raise ValueError("DEGANEvaluation: threshold and rdd_min_confidence must be in [0, 1)")
        if real_split not in ("train", "val", "test"):
            raise ValueError(f"DEGANEvaluation.real_split must be train, val or test, got {real_split!r}")
        self.classifier_ckpt, self.num_samples, self.threshold = classifier_ckpt, num_samples, threshold
        self.every_n_epochs, self.real_split, self.max_real = every_n_epochs, real_split, max_real
        self.rdd_min_confidence, self.pca_samples, self.seed = rdd_min_confidence, pca_samples, seed
        self.ema, self.batch_size = ema, batch_size
        self.classifier: Optional[LightningModule] = None
        self.real_diversity: Optional[torch.Tensor] = None
        #: (epoch counted from 1, label accuracy or confident share, mean rdd) after each evaluation during fit.
        self.history: list[tuple[int, float, float]] = []
        self.conditional = False  # set in setup from the module's num_classes
        self.last_metrics: dict[str, float] = {}
        self._pca_logged = False

    # ------------------------------------------------------------------ set-up
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.conditional = _num_classes(pl_module) > 0
        if self.classifier_ckpt is None or self.classifier is not None:
            return
        path = resolve_checkpoint(self.classifier_ckpt, "DEGANEvaluation.classifier_ckpt", CLASSIFIER_HOWTO)
        classifier = Classifier.load_from_checkpoint(path, map_location="cpu")
        classifier.requires_grad_(False).eval()
        shape = getattr(pl_module, "image_shape", None)
        if shape is not None and tuple(classifier.image_shape) != tuple(shape):
            raise ValueError(
                f"the classifier {path} takes images of shape {tuple(classifier.image_shape)} but the generator makes "
                f"{tuple(shape)}: train a classifier on the same data (DEGANEvaluation.classifier_ckpt)"
            )
        classes = _num_classes(pl_module)
        if classes and classifier.hparams.get("num_classes") != classes:
            raise ValueError(
                f"the classifier {path} has {classifier.hparams.get('num_classes')} classes but the generator is "
                f"conditional on {classes}: train a classifier on the same data (DEGANEvaluation.classifier_ckpt)"
            )
        self.classifier = classifier
        rank_zero_info(f"DEGANEvaluation: classifier {path}")

    def _real_diversity(self, trainer: Trainer, num_classes: int) -> Optional[torch.Tensor]:
        """D(X_real,c) per class from the datamodule's ``real_split`` (once); None without labels."""
        if self.real_diversity is not None:
            return self.real_diversity
        datamodule = trainer.datamodule
        if datamodule is None:
            return None
        dataset = getattr(datamodule, f"{self.real_split}_set", None)
        if dataset is None:
            datamodule.setup(stage={"train": "fit", "val": "fit", "test": "test"}[self.real_split])
            dataset = getattr(datamodule, f"{self.real_split}_set", None)
        if dataset is None:
            dataset = getattr(datamodule, f"{self.real_split}_dataloader")().dataset
        if self.max_real is not None and len(dataset) > self.max_real:
            generator = torch.Generator().manual_seed(self.seed)
            indices = torch.randperm(len(dataset), generator=generator)[: self.max_real].tolist()
            dataset = torch.utils.data.Subset(dataset, indices)
        images, labels = [], []
        for batch in DataLoader(dataset, batch_size=self.batch_size, shuffle=False):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2 or not torch.is_tensor(batch[1]):
                rank_zero_info(f"DEGANEvaluation: the {self.real_split} split has no labels; rdd is skipped")
                return None
            images.append(batch[0].float())
            labels.append(batch[1].long())
        if not images:
            return None
        self.real_diversity = class_diversity(torch.cat(images), torch.cat(labels), num_classes)
        return self.real_diversity

    def hparams_metrics(self) -> list[str]:
        """The tags of the metrics it logs, which a run's TensorBoard hparams session lists as its metrics."""
        if self.classifier_ckpt is None:
            return []
        return [LABEL_ACCURACY] * self.conditional + [CONFIDENT_SHARE, "de_gan/rdd_mean"]

    @property
    def headline(self) -> str:
        """The metric of Fig. 6: the label accuracy (conditional) or the confident share (unconditional)."""
        return LABEL_ACCURACY if self.conditional else CONFIDENT_SHARE

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs != 0:
            return
        metrics = self.evaluate(trainer, pl_module)
        if self.headline in metrics:
            self.history.append((epoch, metrics[self.headline], metrics.get("de_gan/rdd_mean", float("nan"))))
            self._write_history(trainer, pl_module, metrics)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [tuple(row) for row in state_dict.get("history", [])]

    # ------------------------------------------------------------------ the evaluation
    @torch.no_grad()
    def generate(self, pl_module: LightningModule) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """``num_samples`` images (CPU, float32), their raw noise z_n (fixed seed) and labels.

        A conditional generator draws sample i for label i mod K (each class equally often);
        the labels are None for an unconditional one.
        """
        generator = torch.Generator().manual_seed(self.seed)
        classes = _num_classes(pl_module)
        labels = torch.arange(self.num_samples) % classes if classes else None
        was_training = pl_module.training
        pl_module.eval()
        images, noise = [], []
        try:
            for start in range(0, self.num_samples, self.batch_size):
                count = min(self.batch_size, self.num_samples - start)
                z = pl_module.noise.sample(count, generator=generator)
                y = None if labels is None else labels[start : start + count].to(pl_module.device)
                images.append(pl_module.generate(z, labels=y, ema=self.ema).float().cpu())
                noise.append(z.float())
        finally:
            pl_module.train(was_training)
        return torch.cat(images), torch.cat(noise), labels

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Compute (on global rank 0, shared with the other ranks), log (``pl_module.log``) and return the metrics."""
        metrics = compute_on_rank_zero(trainer, lambda: self.compute(trainer, pl_module), "DEGANEvaluation")
        for name, value in metrics.items():
            pl_module.log(name, value, sync_dist=False, prog_bar=name == self.headline)
        self.last_metrics = metrics
        return metrics

    def compute(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """The metrics by name for the current weights (no logging, no collectives)."""
        images, noise, labels = self.generate(pl_module)
        metrics: dict[str, float] = {}
        if self.classifier is not None:
            metrics.update(self.classifier_metrics(trainer, images, labels))
        if self.pca_samples and (not self._pca_logged or trainer.testing):
            metrics.update(self._log_pca(trainer, pl_module, noise[: self.pca_samples]))
        return metrics

    @torch.no_grad()
    def classifier_metrics(
        self, trainer: Optional[Trainer], images: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> dict[str, float]:
        """Label accuracy (with the ``labels`` the images were generated for), confident share, mean
        confidence and rdd of ``images`` (rdd needs a trainer with labelled data)."""
        classifier = self.classifier
        if trainer is not None:
            classifier.to(trainer.strategy.root_device)
        probs = torch.cat([classifier.predict_proba(chunk).float().cpu() for chunk in images.split(self.batch_size)])
        metrics = {
            CONFIDENT_SHARE: confident_accuracy(probs, self.threshold),
            "de_gan/confidence_mean": probs.max(1).values.mean().item(),
        }
        if labels is not None:
            metrics[LABEL_ACCURACY] = label_accuracy(probs, labels)
            for c, value in enumerate(label_accuracy_per_class(probs, labels).tolist()):
                metrics[f"{LABEL_ACCURACY}/{c}"] = value
        num_classes = probs.shape[1]
        real = self._real_diversity(trainer, num_classes) if trainer is not None else None
        if real is not None:
            confidence, predicted = probs.max(1)
            classes = predicted if labels is None else labels
            keep = confidence > self.rdd_min_confidence
            rdd = relative_diversity(images[keep], classes[keep], real)
            for c in range(num_classes):
                metrics[f"de_gan/rdd/{c}"] = rdd[c].item()
            metrics["de_gan/rdd_mean"] = rdd.nanmean().item()
        return metrics

    def _log_pca(self, trainer: Trainer, pl_module: LightningModule, z: torch.Tensor) -> dict[str, float]:
        if z.shape[0] < 2:
            return {}
        precondition = getattr(pl_module, "precondition", None)
        with torch.no_grad():
            z_prime = precondition(z.to(pl_module.device)).float().cpu() if precondition else z
        zn_2d, zn_share = pca_2d(z)
        zp_2d, zp_share = pca_2d(z_prime)
        self._pca_logged = True
        if trainer.is_global_zero:
            loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
            if loggers:
                import matplotlib.pyplot as plt

                fig = pca_figure(zn_2d, zp_2d, (zn_share, zp_share))
                for logger in loggers:
                    logger.experiment.add_figure(
                        "de_gan/noise_pca", fig, global_step=trainer.current_epoch, close=False
                    )
                plt.close(fig)
        return {"de_gan/pca_explained_zn": zn_share.sum().item(), "de_gan/pca_explained_zprime": zp_share.sum().item()}

    def _write_history(self, trainer: Trainer, pl_module: LightningModule, metrics: dict[str, float]) -> None:
        if not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        name = type(pl_module).__name__
        if getattr(pl_module, "vae", "absent") is None:
            name = f"{name} (preconditioner: none)"
        curve = {name: [(e, a) for e, a, _ in self.history]}
        if self.conditional:
            fig = convergence_figure(curve, ylabel="share classified as their label")
        else:
            fig = convergence_figure(curve, self.threshold, ylabel="share of confident samples")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("de_gan/convergence", fig, global_step=trainer.current_epoch, close=False)
        log_dir = run_dir(trainer)
        if log_dir is not None:
            folder = os.path.join(log_dir, "de_gan")
            os.makedirs(folder, exist_ok=True)
            fig.savefig(os.path.join(folder, "convergence.png"), dpi=120)
            path = os.path.join(folder, "metrics.csv")
            fields = ["epoch", "global_step", *sorted(k for k in metrics if not k.startswith("de_gan/pca"))]
            new = not os.path.exists(path)
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow({"epoch": self.history[-1][0], "global_step": trainer.global_step, **metrics})
        plt.close(fig)
