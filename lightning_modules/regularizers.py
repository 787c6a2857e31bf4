r"""GAN regularisers: the R1 gradient penalty and StyleGAN2's path-length regulariser.

* **R1** (Mescheder et al. 2018, Eq. 9, "Which training methods for GANs do actually
  converge?"): gamma / 2 * E_x[ |grad_x D(x)|^2 ] on real images.  :func:`r1_penalty` returns the
  expectation; the caller multiplies by gamma / 2 (and by the lazy interval, StyleGAN2 Sec. 3.1).
* **Path length** (StyleGAN2, Sec. 3.2, Eq. 4): E_{w, y}[ (|J_w^T y|_2 - a)^2 ] with
  y ~ N(0, I) / sqrt(H W) image-space noise, J_w the Jacobian of the synthesis network at w,
  and a the running mean of the lengths (decay 0.01).  :class:`PathLengthPenalty` keeps a in
  a buffer (saved in checkpoints) and returns the expectation; the caller applies the weight
  (2 in StyleGAN2) and the lazy interval.

Both are computed in float32 (float64 under ``64-true``) whatever the autocast precision:
squared gradient norms of bf16/fp16 activations lose most of their digits.  Under autocast
the networks' forward passes (and so the gradients through their activations) stay in
bf16/fp16; the logits, the image-space noise y, the gradients, their squares and sums and
the running target ``pl_mean`` are float32.  Reference for the conventions:
NVlabs/stylegan2-ada-pytorch, ``training/loss.py`` (``loss_Dr1``, ``loss_Gpl``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_modules.losses import at_least_float32

__all__ = ["PathLengthPenalty", "r1_penalty"]


def r1_penalty(real: Tensor, real_logits: Tensor, grad_scale: float = 1.0) -> Tensor:
    """E_x |grad_x D(x)|^2 over the batch (Mescheder et al. 2018, Eq. 9, without gamma / 2).

    ``real`` must have ``requires_grad`` and ``real_logits`` must be D(real) built from it.
    The graph is kept (``create_graph``), so the penalty trains D.  ``grad_scale``: the
    ``16-mixed`` loss scale; the inner gradient is taken of the scaled logits and divided back
    in float32, so float16 backward passes do not underflow (PyTorch's AMP recipe for
    gradient penalties).
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty needs real images with requires_grad=True, fed to D to get real_logits")
    # Scaled like a batch mean under the GradScaler (scale / N per sample), so the seed gradient
    # itself fits in float16 (65504) at the scaler's initial 2^16.
    scale = grad_scale / real.shape[0]
    (grad,) = torch.autograd.grad(at_least_float32(real_logits).sum() * scale, real, create_graph=True)
    return (at_least_float32(grad) / scale).square().flatten(1).sum(dim=1).mean()


class PathLengthPenalty(nn.Module):
    """StyleGAN2's path-length regulariser (Sec. 3.2, Eq. 4), with the running target ``pl_mean``.

    Args:
        decay: update rate of the running mean a of the path lengths (0.01).
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        if not 0 < decay <= 1:
            raise ValueError(f"path-length decay must be in (0, 1], got {decay}")
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros([]))

    def lengths(self, images: Tensor, ws: Tensor, grad_scale: float = 1.0) -> Tensor:
        """|J_w^T y|_2 per sample, y ~ N(0, I) / sqrt(H W); averaged over the ws rows as in StyleGAN2.

        y is drawn in float32 (float64 under ``64-true``), never in the bf16/fp16 of autocast
        images, so a seed gives the same y under ``32-true`` and ``bf16-mixed``.  ``grad_scale``:
        the ``16-mixed`` loss scale, as in :func:`r1_penalty`.
        """
        images = at_least_float32(images)
        y = torch.randn(images.shape, dtype=images.dtype, device=images.device)
        y = y / math.sqrt(images.shape[2] * images.shape[3])
        scale = grad_scale / images.shape[0]  # like a batch mean under the GradScaler (see r1_penalty)
        (grad,) = torch.autograd.grad((images * y).sum() * scale, ws, create_graph=True)
        grad = at_least_float32(grad) / scale
        if grad.ndim == 3:  # [N, num_ws, w_dim]: sum over w_dim, mean over the style inputs
            return grad.square().sum(dim=2).mean(dim=1).sqrt()
        return grad.square().flatten(1).sum(dim=1).sqrt()

    def forward(self, images: Tensor, ws: Tensor, grad_scale: float = 1.0) -> Tensor:
        """(|J_w^T y| - a)^2 averaged over the batch; updates a (no gradient through it)."""
        lengths = self.lengths(images, ws, grad_scale)
        with torch.no_grad():
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().to(self.pl_mean.dtype), self.decay))
        return (lengths - self.pl_mean.to(lengths.dtype)).square().mean()
