"""A small VGG-style convolutional classifier, for any resolution >= 8 and 1 or 3 channels.

The project trains its own classifiers because the metrics of the seed papers need one
and no pretrained weights can be downloaded here: classifier accuracy of conditional
samples (seed paper "GANs with decoder-encoder output noise", DE-GAN), and a feature
extractor for FID/KID (Heusel et al. 2017) and the feature-space path length of PPL
(Karras et al. 2019) on small grey datasets where Inception features mean little.

Architecture (plain ``torch.nn``; the training recipe lives in
``lightning_modules.classifier``), in the spirit of VGG (Simonyan & Zisserman 2015):

    stem:    conv3x3 -> BN -> ReLU                                  (width channels)
    stage i: [conv3x3 -> BN -> ReLU] x 2 -> max-pool 2x2            (width * 2^min(i, 2) channels)
             repeated until the feature map is at most 4x4 (32 -> 16 -> 8 -> 4; 28 -> 14 -> 7 -> 3)
    global average pool -> linear -> BN -> ReLU                     (``num_features``: ``features(x)``)
    dropout -> linear                                               (``num_classes`` logits: ``forward(x)``)

Global average pooling makes the head independent of the resolution.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["ConvClassifier", "num_stages"]


def num_stages(resolution: int) -> int:
    """Number of 2x2 max-pools that bring ``resolution`` down to at most 4 (at least one)."""
    if resolution < 8:
        raise ValueError(f"the classifier needs images of side >= 8, got {resolution}")
    stages, side = 0, resolution
    while side > 4:
        side //= 2
        stages += 1
    return stages


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ConvClassifier(nn.Module):
    """Images [N, channels, R, R] in [-1, 1] -> logits [N, num_classes]; ``features`` gives [N, num_features].

    Args:
        channels: image channels (1 grey, 3 RGB).
        resolution: image side R (>= 8; need not be a power of two).
        num_classes: number of classes.
        width: channels of the stem and the first stage; later stages double it, up to 4x.
        num_features: size of the penultimate (feature) layer; ``None`` for ``4 * width``.
        dropout: dropout before the linear head (training only).
    """

    def __init__(
        self,
        channels: int,
        resolution: int,
        num_classes: int,
        width: int = 32,
        num_features: Optional[int] = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if channels < 1 or num_classes < 2 or width < 1:
            raise ValueError(
                f"need channels >= 1, num_classes >= 2 and width >= 1; got {channels}, {num_classes}, {width}"
            )
        self.channels, self.resolution, self.num_classes = channels, resolution, num_classes
        self.num_features = int(num_features) if num_features is not None else 4 * width
        layers: list[nn.Module] = _conv_bn_relu(channels, width)
        c_in = width
        for i in range(num_stages(resolution)):
            c_out = width * 2 ** min(i, 2)
            layers += _conv_bn_relu(c_in, c_out) + _conv_bn_relu(c_out, c_out) + [nn.MaxPool2d(2)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Sequential(
            nn.Linear(c_in, self.num_features, bias=False), nn.BatchNorm1d(self.num_features), nn.ReLU(inplace=True)
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"the classifier expects images [N, {self.channels}, H, W], got {list(x.shape)}"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, num_features] (after ReLU) of images [N, C, H, W]."""
        self._check(x)
        return self.embed(self.trunk(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.head(self.features(x))
