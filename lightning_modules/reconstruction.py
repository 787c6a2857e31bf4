r"""Reconstruction quality, PSNR and SSIM, for images in [-1, 1].

Used by the reconstruction tasks of the seed papers: GAN-based lossy compression (GANZ,
"GANs for lossy image compression": reconstruction G(z*) of an image x), GAN inversion
(the Riemannian-noise-injection paper) and image-to-image translation under Gaussian
noise injection (NoisyI2I).

* PSNR = 10 log10(L^2 / MSE), with L the width of the value range: **L = 2 for images in
  [-1, 1]**, so PSNR = 10 log10(4 / MSE) -- the same number as for the images mapped to
  [0, 1] with L = 1 or to [0, 255] with L = 255 (PSNR is invariant to shifting and scaling
  both the images and L).  Per image (MSE over C, H, W), then averaged over images, as
  compression papers report it.
* SSIM (Wang et al. 2004, Eq. 13, "Image quality assessment: from error visibility to
  structural similarity"): local means, variances and covariance under an 11x11 Gaussian
  window (sigma 1.5), constants C1 = (0.01 L)^2, C2 = (0.03 L)^2.  Its luminance term
  (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) is *not* shift invariant: it assumes
  non-negative intensities.  So the images are mapped from [-1, 1] to [0, 1] and SSIM is
  computed there with L = 1, which gives the literature's SSIM of the 8-bit images
  ([0, 255], L = 255).  (SSIM straight on [-1, 1] with L = 2 is a different number.)
  Channels are averaged (as torchmetrics does).

Thin wrappers over ``torchmetrics.functional`` that fix the value range and the
per-image reduction; :class:`ReconstructionMetrics` is the torchmetrics ``MetricCollection``
to accumulate over a dataset in ``validation_step``/``test_step`` (DDP-synchronised).
The modules log these metrics themselves (NoisyI2I's validation, GANZ's rate-distortion and
sensing), so they live here, below ``evaluation``, which re-exports them.
"""

from __future__ import annotations

from typing import Literal, Optional

from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

__all__ = ["VALUE_RANGE", "ReconstructionMetrics", "psnr", "reconstruction_metrics", "ssim", "to_unit_range"]

#: The value range of the project's images.
VALUE_RANGE = (-1.0, 1.0)

Reduction = Literal["none", "mean"]


def _check(preds: Tensor, target: Tensor) -> None:
    if preds.shape != target.shape or preds.ndim != 4:
        raise ValueError(
            f"expected two image batches [N, C, H, W] of one shape, got {list(preds.shape)} and {list(target.shape)}"
        )


def _reduce(values: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")


def to_unit_range(images: Tensor, value_range: tuple[float, float] = VALUE_RANGE) -> Tensor:
    """Map images from ``value_range`` to [0, 1] (affinely; values outside are not clipped)."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return (images - lo) / (hi - lo)


def psnr(
    preds: Tensor, target: Tensor, reduction: Reduction = "none", value_range: tuple[float, float] = VALUE_RANGE
) -> Tensor:
    """PSNR in dB of each image of ``preds`` against ``target`` ([N, C, H, W] in ``value_range``).

    L = high - low (2 for [-1, 1]).  ``reduction="none"`` gives [N]; ``"mean"`` their mean
    (the mean of per-image PSNRs, not the PSNR of the pooled MSE).  Identical images give +inf.
    """
    _check(preds, target)
    lo, hi = value_range
    values = peak_signal_noise_ratio(preds, target, data_range=float(hi - lo), reduction="none", dim=(1, 2, 3))
    return _reduce(values, reduction)


def ssim(
    preds: Tensor,
    target: Tensor,
    reduction: Reduction = "none",
    value_range: tuple[float, float] = VALUE_RANGE,
    kernel_size: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """SSIM of each image of ``preds`` against ``target`` ([N, C, H, W] in ``value_range``); 1 when identical.

    Computed on the images mapped to [0, 1] with L = 1 (see the module docstring).
    ``reduction="none"`` gives [N]; ``"mean"`` their mean.  Images need a side of at least
    ``kernel_size // 2 + 1`` pixels (reflection padding); the defaults are Wang et al.'s.
    """
    _check(preds, target)
    values = structural_similarity_index_measure(
        to_unit_range(preds, value_range),
        to_unit_range(target, value_range),
        data_range=1.0,
        reduction="none",
        kernel_size=kernel_size,
        sigma=sigma,
    )
    return _reduce(values, reduction)


def reconstruction_metrics(preds: Tensor, target: Tensor, reduction: Reduction = "mean") -> dict[str, Tensor]:
    """``{"psnr": ..., "ssim": ...}`` of a batch, per image or averaged."""
    return {"psnr": psnr(preds, target, reduction), "ssim": ssim(preds, target, reduction)}


class _UnitRangeSSIM(StructuralSimilarityIndexMeasure):
    """torchmetrics' SSIM on images mapped from ``value_range`` to [0, 1] (L = 1)."""

    def __init__(self, value_range: tuple[float, float] = VALUE_RANGE, **kwargs) -> None:
        super().__init__(data_range=1.0, **kwargs)
        self.value_range = tuple(value_range)

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(to_unit_range(preds, self.value_range), to_unit_range(target, self.value_range))


class ReconstructionMetrics(MetricCollection):
    """PSNR and SSIM accumulated over batches of [-1, 1] images: ``update(preds, target)``, ``compute()``.

    ``compute()`` returns ``{prefix + "psnr": mean per-image PSNR, prefix + "ssim": mean SSIM}``,
    the same numbers as :func:`psnr` / :func:`ssim` with ``reduction="mean"`` over all images.
    Log it with ``self.log_dict(metrics)`` after ``metrics.update(...)`` in a LightningModule.

    Args:
        prefix: prepended to the keys, e.g. ``"val/"``.
        value_range: the images' value range ([-1, 1]).
    """

    def __init__(self, prefix: Optional[str] = None, value_range: tuple[float, float] = VALUE_RANGE) -> None:
        lo, hi = value_range
        super().__init__(
            {
                # dim=(1, 2, 3): one PSNR per image, averaged (without it torchmetrics pools the MSE).
                "psnr": PeakSignalNoiseRatio(data_range=float(hi - lo), dim=(1, 2, 3)),
                "ssim": _UnitRangeSSIM(value_range),
            },
            prefix=prefix,
        )

