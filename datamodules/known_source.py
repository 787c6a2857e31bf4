"""A source of known entropy: images drawn from K fixed prototypes with a known distribution p.

The divergence-entropy trade-off of the seed paper "Noise dimension of GAN"
(Noise-dim Sec. 4.4, Eq. 11) can be computed only where the source distribution p is
known.  Real image datasets do not give it; this DataModule does.  Every image is one of
K fixed prototypes -- scikit-learn's handwritten digits, picked deterministically:
prototype k is the (k // 10)-th image of digit k mod 10 in scikit-learn's order (so
K <= 10 gives the first 0, 1, 2, ...) -- and prototype k has probability p_k.  So X is a
discrete source with exactly H(X) = H(p) bits, and a generator's output distribution q
over the prototypes (:mod:`evaluation.known_source`) can be set against d(eps).

p is either given (``probs``) or a law over k = 0..K-1 (``law``, ``law_param``):

* ``geometric``: p_k proportional to r^k (r = ``law_param`` in (0, 1]);
* ``zipf``: p_k proportional to (k + 1)^-s (s = ``law_param`` >= 0);
* ``uniform``: p_k = 1 / K.

Each split holds a fixed number of images whose counts are N p_k rounded by largest
remainder (so the counts sum to N and every |count_k - N p_k| < 1): the empirical
distribution of the data *is* p up to 1/N, with no sampling noise.  The images are
shuffled once (``seed``), the training loader reshuffles every epoch.  Labels are the
prototype indices.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import TensorDataset

from analysis.divergence_entropy import check_distribution, entropy_bits
from datamodules.base import TensorSplitLoaders
from datamodules.digits import load_digits_tensors

__all__ = ["KnownSourceDataModule", "law_probabilities", "largest_remainder_counts", "prototype_images"]

Law = Literal["geometric", "zipf", "uniform"]


def law_probabilities(num: int, law: str, param: float) -> np.ndarray:
    """p over k = 0..num-1 for a ``geometric`` (r^k), ``zipf`` ((k+1)^-s) or ``uniform`` law."""
    k = np.arange(num, dtype=np.float64)
    if law == "geometric":
        if not 0 < param <= 1:
            raise ValueError(f"data.init_args.law_param of a geometric law is the ratio r in (0, 1], got {param}")
        w = param**k
    elif law == "zipf":
        if param < 0:
            raise ValueError(f"data.init_args.law_param of a Zipf law is the exponent s >= 0, got {param}")
        w = (k + 1.0) ** -param
    elif law == "uniform":
        w = np.ones(num)
    else:
        raise ValueError(f"unknown data.init_args.law {law!r}; expected geometric, zipf or uniform")
    return w / w.sum()


def largest_remainder_counts(p: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total``, each within 1 of ``total * p`` (Hamilton's method; ties to lower k)."""
    exact = np.asarray(p, dtype=np.float64) * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    order = sorted(range(len(p)), key=lambda i: (-(exact[i] - counts[i]), i))
    counts[order[:short]] += 1
    return counts


def prototype_images(num: int, resolution: int) -> torch.Tensor:
    """The K prototypes [K, 1, R, R] in [-1, 1]: prototype k is the (k // 10)-th digit k mod 10."""
    images, labels = load_digits_tensors(resolution)
    picked = []
    for k in range(num):
        matches = torch.nonzero(labels == k % 10).flatten()
        if k // 10 >= len(matches):
            raise ValueError(f"data.init_args.num_prototypes={num} is more than the digits offer")
        picked.append(images[matches[k // 10]])
    return torch.stack(picked)


class KnownSourceDataModule(TensorSplitLoaders, LightningDataModule):
    """Images from K prototypes with probabilities p, so H(X) = H(p) is known; batches ``(images, labels)``.

    Args:
        num_prototypes: K, the number of distinct images (up to 1,797).
        probs: p_0..p_{K-1} (sums to 1); null: from ``law``.
        law: ``geometric``, ``zipf`` or ``uniform`` (used when ``probs`` is null).
        law_param: the geometric ratio r, or the Zipf exponent s.
        resolution: image side (the 8x8 digits, bilinearly upsampled).
        num_images: images in the training split (counts N p_k by largest remainder).
        num_val_images: images in the validation and in the test split.
        batch_size: the global batch of every loader, split evenly over the DDP processes.
        seed: fixes the order of the images.
    """

    def __init__(
        self,
        num_prototypes: int = 8,
        probs: Optional[list[float]] = None,
        law: Law = "geometric",
        law_param: float = 0.6,
        resolution: int = 16,
        num_images: int = 4096,
        num_val_images: int = 512,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_prototypes < 1:
            raise ValueError(f"data.init_args.num_prototypes must be >= 1, got {num_prototypes}")
        if probs is not None:
            if len(probs) != num_prototypes:
                raise ValueError(
                    f"data.init_args.probs has {len(probs)} entries but num_prototypes is {num_prototypes}"
                )
            try:
                p = check_distribution(probs)
            except ValueError as err:
                raise ValueError(f"data.init_args.probs: {err}") from None
        else:
            p = law_probabilities(num_prototypes, law, law_param)
        for key, value in (("num_images", num_images), ("num_val_images", num_val_images)):
            counts = largest_remainder_counts(p, value)
            if np.any((counts == 0) & (p > 0)):
                raise ValueError(
                    f"data.init_args.{key}={value} is too few to hold every prototype of positive probability "
                    f"(the least p_k is {p[p > 0].min():.3g}); raise it"
                )
        if resolution < 1:
            raise ValueError(f"data.init_args.resolution must be positive, got {resolution}")
        self.save_hyperparameters()
        self.p = p
        self.resolution, self.batch_size, self.seed = resolution, batch_size, seed
        self.num_images, self.num_val_images = num_images, num_val_images
        self.train_set = self.val_set = self.test_set = None
        self._prototypes: Optional[torch.Tensor] = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.resolution, self.resolution)

    @property
    def probabilities(self) -> np.ndarray:
        """p, float64, summing to 1."""
        return self.p.copy()

    @property
    def entropy_bits(self) -> float:
        """H(X) = H(p) in bits."""
        return entropy_bits(self.p)

    @property
    def prototypes(self) -> torch.Tensor:
        """The K prototype images [K, 1, R, R] in [-1, 1]."""
        if self._prototypes is None:
            self._prototypes = prototype_images(len(self.p), self.resolution)
        return self._prototypes

    def _split(self, total: int, seed: int) -> TensorDataset:
        counts = torch.from_numpy(largest_remainder_counts(self.p, total))
        labels = torch.repeat_interleave(torch.arange(len(self.p)), counts)
        labels = labels[torch.randperm(total, generator=torch.Generator().manual_seed(seed))]
        return TensorDataset(self.prototypes[labels], labels)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self._split(self.num_images, self.seed)
        self.val_set = self._split(self.num_val_images, self.seed + 1)
        self.test_set = self._split(self.num_val_images, self.seed + 2)

    def describe(self) -> str:
        """One line: K, p's law and H(X)."""
        head = ", ".join(f"{v:.3f}" for v in self.p[:4]) + (", ..." if len(self.p) > 4 else "")
        return f"{len(self.p)} prototypes, p = ({head}), H(X) = {self.entropy_bits:.4f} bits (log2 K = {math.log2(len(self.p)):.3f})"
