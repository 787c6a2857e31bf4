"""Classifier: a small CNN trained on the project's datasets, for the metrics that need one.

Two metrics of the seed papers read a classifier:

* classifier accuracy of unconditional samples (seed paper "GANs with decoder-encoder
  output noise", DE-GAN, Sec. IV-A, Fig. 6, Table V): the share of samples the classifier
  recognises, i.e. assigns some class with high confidence
  (:meth:`Classifier.predict_proba`; :mod:`evaluation.de_gan_metrics`);
* feature-space statistics: FID/KID (Heusel et al. 2017, Eq. 6; Binkowski et al. 2018) and
  the feature distance of the perceptual path length (Karras et al. 2019, Sec. 3.2) on
  datasets where ImageNet features mean little or cannot be downloaded
  (:meth:`Classifier.features`, the penultimate layer).

Recipe: cross-entropy with optional label smoothing (Szegedy et al. 2016, Sec. 7), AdamW
(Loshchilov & Hutter 2019) with a one-cycle learning-rate schedule (Smith & Topin 2019)
over ``trainer.estimated_stepping_batches``, and random translations of a few pixels
(replicate padding, then a random crop back to size) during training only.

The inference API (``features``, ``predict_labels``, ``accuracy_of``, ``predict_step``)
always runs the network in evaluation mode (batch-norm running statistics, no dropout,
no augmentation), whatever mode the module is in, so a freshly loaded checkpoint gives
deterministic features without a call to ``eval()``; gradients still flow through
``features`` (e.g. for feature-matching losses).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.nets.classifier import ConvClassifier

__all__ = ["Classifier", "random_translate"]


def random_translate(x: torch.Tensor, max_shift: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Shift each image by its own random integer offset in [-max_shift, max_shift]^2.

    The image is padded by replicating its border and cropped back to its size, so no
    pixel wraps around (the border of MNIST-like data is background, -1).
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    shifts = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator, device="cpu").to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + shifts[0][:, None]  # [N, H]
    cols = torch.arange(w, device=x.device)[None, :] + shifts[1][:, None]  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices split by a slice: the indexed dimensions come first, [N, H, W, C].
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


class Classifier(LightningModule):
    """Image classifier (``ConvClassifier``) for classifier accuracy and feature-space metrics.

    Batches are ``(images in [-1, 1], int64 labels)`` as every datamodule here gives them.

    Args:
        channels: image channels; must match the data.
        resolution: image side in pixels (>= 8); must match the data.
        num_classes: number of classes; must match the data.
        width: channels of the first stage (later stages double it, up to 4x).
        num_features: size of the penultimate feature layer; ``null`` for ``4 * width``.
        dropout: dropout before the linear head.
        lr: peak AdamW learning rate of the one-cycle schedule.
        weight_decay: AdamW decoupled weight decay (not applied to biases and norm weights).
        betas: AdamW (beta1, beta2).
        label_smoothing: label smoothing of the cross-entropy (0 for none).
        warmup_fraction: share of the training steps spent warming the learning rate up.
        translate: training augmentation: random shifts of up to this many pixels (0 for none).
    """

    def __init__(
        self,
        channels: int = 1,
        resolution: int = 32,
        num_classes: int = 10,
        width: int = 32,
        num_features: Optional[int] = None,
        dropout: float = 0.2,
        lr: float = 3e-3,
        weight_decay: float = 5e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        label_smoothing: float = 0.0,
        warmup_fraction: float = 0.2,
        translate: int = 2,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"model.init_args.label_smoothing must be in [0, 1), got {label_smoothing}")
        if not 0.0 < warmup_fraction < 1.0:
            raise ValueError(f"model.init_args.warmup_fraction must be in (0, 1), got {warmup_fraction}")
        if translate < 0:
            raise ValueError(f"model.init_args.translate must be >= 0, got {translate}")
        self.save_hyperparameters()
        self.net = ConvClassifier(channels, resolution, num_classes, width, num_features, dropout)
        self.num_features: int = self.net.num_features
        self.image_shape = (channels, resolution, resolution)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    # ------------------------------------------------------------------ inference API
    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.net.training
        self.net.eval()
        try:
            yield
        finally:
            self.net.train(was_training)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"the classifier was trained on images of shape {self.image_shape} (channels, height, width), "
                f"got a batch of shape {list(images.shape)}"
            )
        param = next(self.net.parameters())
        return images.to(param.device, param.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, num_features] of images [N, C, H, W] in [-1, 1] (eval mode)."""
        x = self._prepare(x)
        with self._eval_mode():
            return self.net.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes] in the module's current mode (training uses this)."""
        return self.net(x)

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [N, num_classes] (eval mode)."""
        x = self._prepare(images)
        with self._eval_mode():
            return self.net(x).softmax(dim=1)

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor, batch_size: Optional[int] = None) -> torch.Tensor:
        """Predicted labels [N] (int64) of images in [-1, 1] (eval mode), in chunks of ``batch_size``."""
        chunks = images.split(batch_size) if batch_size else (images,)
        return torch.cat([self.predict_proba(chunk).argmax(dim=1) for chunk in chunks])

    @torch.no_grad()
    def accuracy_of(self, images: torch.Tensor, labels: torch.Tensor, batch_size: Optional[int] = None) -> float:
        """Share of ``images`` classified as ``labels``.

        For a conditional generator pass the samples and the labels they were generated
        for; for a test split, the images and their true labels.
        """
        if labels.shape != images.shape[:1]:
            raise ValueError(f"need one label per image, got {list(labels.shape)} for {images.shape[0]} images")
        predicted = self.predict_labels(images, batch_size)
        return (predicted == labels.to(predicted.device)).double().mean().item()

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        if self._trainer is None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes is not None and int(data_classes) != self.hparams.num_classes:
            raise ValueError(
                f"the data has {data_classes} classes but the classifier is built for {self.hparams.num_classes}: "
                "set model.init_args.num_classes to match the data"
            )
        data_shape = getattr(datamodule, "image_shape", None)
        if data_shape is not None and tuple(data_shape) != self.image_shape:
            raise ValueError(
                f"the data gives images of shape {tuple(data_shape)} (channels, height, width) but the classifier "
                f"is built for {self.image_shape}: set model.init_args.resolution / channels to match the data"
            )

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.net.named_parameters():
            (decay if param.ndim > 1 else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
            betas=tuple(self.hparams.betas),
        )
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError(
                "the one-cycle schedule needs a finite run: set trainer.max_epochs or trainer.max_steps"
            )
        total = max(int(steps), 2)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hparams.lr, total_steps=total, pct_start=self.hparams.warmup_fraction
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self.net(random_translate(images, self.hparams.translate))
        loss = self._loss(logits, labels)
        self.train_acc(logits.detach(), labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _evaluate(self, batch: Any, split: str) -> None:
        images, labels = batch
        logits = self.net(images)
        metric = self.val_acc if split == "val" else self.test_acc
        metric(logits, labels)
        self.log(f"{split}/loss", self._loss(logits, labels), sync_dist=True)
        self.log(f"{split}/acc", metric, prog_bar=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities [N, num_classes] of the batch's images."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(images)
