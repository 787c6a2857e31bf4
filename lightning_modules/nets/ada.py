"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with limited data").

Two pieces, usable with any GAN (plain ``torch``; :class:`lightning_modules.NoiseDimGAN`
wires them in with ``augment: ada``):

* :class:`AugmentPipe`, the paper's ``bgc`` pipeline (Appendix B, Fig. 9-10): a random,
  **differentiable** transform applied to every image D sees, real and generated alike
  (Sec. 2, "stochastic discriminator augmentation"), so the augmentations do not leak
  into G as long as p < ~0.8.  Each of the transforms below is applied to each image
  independently with probability p (rotations: see below):

  - geometric ("bg"), composed into one 2x3 affine matrix per image and applied by one
    ``F.affine_grid`` / ``F.grid_sample`` (bilinear, reflection padding):
    x-flip, rotation by a multiple of 90 deg, integer translation (up to 0.125 of the
    size), isotropic scaling (lognormal, std 0.2 in log2), arbitrary rotation (uniform,
    applied twice around the anisotropic scaling, each with p_rot = 1 - sqrt(1 - p) so
    that the chance of any rotation is p), anisotropic scaling (lognormal, std 0.2),
    fractional translation (normal, std 0.125 of the size);
  - colour ("c"), composed into one 4x4 matrix on homogeneous RGB per image:
    brightness (+N(0, 0.2)), contrast (x2^N(0, 0.5)), luma flip, hue rotation
    (uniform angle around the luma axis), saturation (x2^N(0, 1) off the luma axis).
    Grey images take the matrix's mean gain and offset (only brightness and contrast
    act on them).

  The draws are made for the *sampling* matrix (output pixel -> input pixel) directly;
  every distribution above is symmetric, so that is the same family of transforms.
  Simplification against the reference code (NVlabs/stylegan2-ada-pytorch,
  ``training/augment.py``): no anti-aliasing wavelet filter around the resampling, and
  reflection padding from ``grid_sample`` instead of padding by reflection beforehand.

  **p = 0 is exactly the identity** (the input tensor is returned), and any image none of
  whose transforms fired keeps its exact pixels (``torch.where``), for any p.

* :class:`AdaptiveAugment`, the controller of Sec. 3: accumulate the overfitting
  heuristic r_t = E[sign(D(x_real))] (ADA Eq. 1) over ``interval`` steps, then move
  p <- clamp(p + sign(r_t - target) * (batch * interval) / (ada_kimg * 1000), 0, 1), so p
  can go from 0 to 1 in ``ada_kimg`` thousand images; target 0.6.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AugmentPipe", "AdaptiveAugment", "GEOMETRIC", "COLOR"]

#: The geometric transforms of the ``bg`` pipeline, in the order they compose.
GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
#: The colour transforms of the ``c`` pipeline, in the order they compose.
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")

_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)  # the luma axis (homogeneous)


def _eye(n: int, batch: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device).expand(batch, n, n).clone()


def _affine2d(batch: int, like: torch.Tensor, **entries: torch.Tensor) -> torch.Tensor:
    """Batched 3x3 matrices from named entries ``m00 .. m12`` (the rest: identity)."""
    m = _eye(3, batch, like)
    for name, value in entries.items():
        m[:, int(name[1]), int(name[2])] = value
    return m


class AugmentPipe(nn.Module):
    """ADA's ``bgc`` augmentation pipeline (module docstring); ``p`` is a buffer, saved in checkpoints.

    Args:
        p: initial probability of each transform (the controller moves it).
        xint_max: largest integer translation, as a fraction of the image size.
        scale_std: std of the log2 isotropic scale.
        rotate_max: largest rotation angle, as a fraction of pi.
        aniso_std: std of the log2 anisotropic scale.
        xfrac_std: std of the fractional translation, as a fraction of the image size.
        brightness_std: std of the brightness offset (images in [-1, 1]).
        contrast_std: std of the log2 contrast gain.
        hue_max: largest hue rotation, as a fraction of pi.
        saturation_std: std of the log2 saturation gain.
        transforms: the transforms to use (names from :data:`GEOMETRIC` and :data:`COLOR`);
            ``None``: all of them (the paper's ``bgc``).
    """

    def __init__(
        self,
        p: float = 0.0,
        xint_max: float = 0.125,
        scale_std: float = 0.2,
        rotate_max: float = 1.0,
        aniso_std: float = 0.2,
        xfrac_std: float = 0.125,
        brightness_std: float = 0.2,
        contrast_std: float = 0.5,
        hue_max: float = 1.0,
        saturation_std: float = 1.0,
        transforms: Optional[tuple[str, ...]] = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
        known = GEOMETRIC + COLOR
        transforms = tuple(known if transforms is None else transforms)
        unknown = [t for t in transforms if t not in known]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; expected names from {', '.join(known)}")
        self.transforms = transforms
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float64))

    # ------------------------------------------------------------------ random draws
    def _gate(self, batch: int, prob: float, like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """1.0 where the transform fires (probability ``prob``), else 0.0."""
        u = torch.rand(batch, device=like.device, generator=generator)
        return (u < prob).to(like.dtype)

    def _rand(self, kind: str, batch: int, like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        make = torch.randn if kind == "normal" else torch.rand
        return make(batch, device=like.device, generator=generator).to(like.dtype)

    def geometric_matrix(
        self, batch: int, size: tuple[int, int], like: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sampling matrices [N, 3, 3] in normalised coordinates, mask of images some transform moved)."""
        p = float(self.p)
        h, w = size
        m = _eye(3, batch, like)
        moved = torch.zeros(batch, dtype=torch.bool, device=like.device)
        use = set(self.transforms)

        def apply(step: torch.Tensor, gate: torch.Tensor) -> None:
            nonlocal m, moved
            eye = _eye(3, batch, like)
            g = gate[:, None, None]
            m = m @ (g * step + (1 - g) * eye)
            moved = moved | (gate > 0)

        if "xflip" in use:
            flip = torch.floor(self._rand("uniform", batch, like, generator) * 2)  # 0 or 1
            apply(_affine2d(batch, like, m00=1 - 2 * flip), self._gate(batch, p, like, generator) * flip)
        if "rotate90" in use:
            k = torch.floor(self._rand("uniform", batch, like, generator) * 4)
            theta = k * (math.pi / 2)
            cos, sin = torch.round(torch.cos(theta)), torch.round(torch.sin(theta))
            apply(_affine2d(batch, like, m00=cos, m01=-sin, m10=sin, m11=cos), self._gate(batch, p, like, generator) * (k > 0))
        if "xint" in use:
            tx = torch.round((self._rand("uniform", batch, like, generator) * 2 - 1) * self.xint_max * w)
            ty = torch.round((self._rand("uniform", batch, like, generator) * 2 - 1) * self.xint_max * h)
            gate = self._gate(batch, p, like, generator) * ((tx != 0) | (ty != 0))
            apply(_affine2d(batch, like, m02=2 * tx / w, m12=2 * ty / h), gate)
        if "scale" in use:
            s = torch.exp2(self._rand("normal", batch, like, generator) * self.scale_std)
            apply(_affine2d(batch, like, m00=s, m11=s), self._gate(batch, p, like, generator))
        p_rot = 1 - math.sqrt(max(1 - p, 0.0))
        for position in ("pre", "post"):
            if "rotate" in use:
                theta = (self._rand("uniform", batch, like, generator) * 2 - 1) * math.pi * self.rotate_max
                cos, sin = torch.cos(theta), torch.sin(theta)
                apply(_affine2d(batch, like, m00=cos, m01=-sin, m10=sin, m11=cos), self._gate(batch, p_rot, like, generator))
            if position == "pre" and "aniso" in use:
                s = torch.exp2(self._rand("normal", batch, like, generator) * self.aniso_std)
                apply(_affine2d(batch, like, m00=s, m11=1 / s), self._gate(batch, p, like, generator))
        if "xfrac" in use:
            tx = self._rand("normal", batch, like, generator) * self.xfrac_std
            ty = self._rand("normal", batch, like, generator) * self.xfrac_std
            apply(_affine2d(batch, like, m02=2 * tx, m12=2 * ty), self._gate(batch, p, like, generator))
        return m, moved

    def color_matrix(
        self, batch: int, like: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(colour matrices [N, 4, 4] on homogeneous RGB, mask of images some transform changed)."""
        p = float(self.p)
        c = _eye(4, batch, like)
        changed = torch.zeros(batch, dtype=torch.bool, device=like.device)
        use = set(self.transforms)
        v = _LUMA.to(like.device, like.dtype)
        vvt = torch.outer(v, v)

        def apply(step: torch.Tensor, gate: torch.Tensor) -> None:
            nonlocal c, changed
            g = gate[:, None, None]
            c = (g * step + (1 - g) * _eye(4, batch, like)) @ c
            changed = changed | (gate > 0)

        if "brightness" in use:
            b = self._rand("normal", batch, like, generator) * self.brightness_std
            step = _eye(4, batch, like)
            step[:, :3, 3] = b[:, None]
            apply(step, self._gate(batch, p, like, generator))
        if "contrast" in use:
            s = torch.exp2(self._rand("normal", batch, like, generator) * self.contrast_std)
            step = _eye(4, batch, like)
            step[:, 0, 0] = step[:, 1, 1] = step[:, 2, 2] = s
            apply(step, self._gate(batch, p, like, generator))
        if "lumaflip" in use:
            flip = torch.floor(self._rand("uniform", batch, like, generator) * 2)
            step = _eye(4, batch, like) - 2 * vvt * flip[:, None, None]  # Householder reflection
            apply(step, self._gate(batch, p, like, generator) * flip)
        if "hue" in use:
            theta = (self._rand("uniform", batch, like, generator) * 2 - 1) * math.pi * self.hue_max
            apply(_rotation_about(v, theta), self._gate(batch, p, like, generator))
        if "saturation" in use:
            s = torch.exp2(self._rand("normal", batch, like, generator) * self.saturation_std)
            step = vvt + (torch.eye(4, dtype=like.dtype, device=like.device) - vvt) * s[:, None, None]
            step[:, 3, 3] = 1.0
            apply(step, self._gate(batch, p, like, generator))
        return c, changed

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Augmented images [N, C, H, W] (C = 1 or 3), differentiable in ``images``."""
        if float(self.p) == 0.0:
            return images
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"AugmentPipe expects images [N, 1 or 3, H, W], got {list(images.shape)}")
        n, channels, h, w = images.shape
        work = images.float() if images.dtype in (torch.float16, torch.bfloat16) else images
        if any(t in GEOMETRIC for t in self.transforms):
            m, moved = self.geometric_matrix(n, (h, w), work, generator)
            if bool(moved.any()):
                grid = F.affine_grid(m[:, :2, :], [n, channels, h, w], align_corners=False)
                warped = F.grid_sample(work, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
                work = torch.where(moved[:, None, None, None], warped, work)
        if any(t in COLOR for t in self.transforms):
            c, changed = self.color_matrix(n, work, generator)
            if bool(changed.any()):
                if channels == 3:
                    flat = work.reshape(n, 3, h * w)
                    recolored = (c[:, :3, :3] @ flat + c[:, :3, 3:]).reshape(n, 3, h, w)
                else:  # grey: mean gain and offset of the three channels
                    gain = c[:, :3, :3].mean(dim=(1, 2))[:, None, None, None]
                    offset = c[:, :3, 3].mean(dim=1)[:, None, None, None]
                    recolored = work * gain + offset
                work = torch.where(changed[:, None, None, None], recolored, work)
        return work.to(images.dtype)


def _rotation_about(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Homogeneous 4x4 rotations by ``theta`` [N] about the unit 3-vector ``axis[:3]`` (Rodrigues)."""
    a = axis[:3]
    k = torch.zeros(3, 3, dtype=theta.dtype, device=theta.device)
    k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -a[2], a[1], a[2], -a[0], -a[1], a[0]
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    r = eye + torch.sin(theta)[:, None, None] * k + (1 - torch.cos(theta))[:, None, None] * (k @ k)
    out = torch.eye(4, dtype=theta.dtype, device=theta.device).expand(theta.shape[0], 4, 4).clone()
    out[:, :3, :3] = r
    return out


class AdaptiveAugment:
    """ADA's controller of p (Karras et al. 2020, Sec. 3): overfitting heuristic r_t, ADA Eq. 1.

    Call :meth:`accumulate` with D's logits on each real batch and :meth:`step` once per
    training step; every ``interval`` steps it sets p from the accumulated r_t.

    Args:
        pipe: the augmentation pipeline whose ``p`` is adjusted.
        target: the r_t the controller aims for (0.6 in the paper).
        ada_kimg: thousands of images for p to move from 0 to 1 (500 in the paper).
        interval: training steps between adjustments (4 in the paper).
    """

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, ada_kimg: float = 500.0, interval: int = 4) -> None:
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"model.init_args.ada_target must be in [0, 1], got {target}")
        if ada_kimg <= 0:
            raise ValueError(f"model.init_args.ada_kimg must be > 0, got {ada_kimg}")
        if interval < 1:
            raise ValueError(f"model.init_args.ada_interval must be >= 1, got {interval}")
        self.pipe, self.target, self.ada_kimg, self.interval = pipe, target, ada_kimg, interval
        self.sign_sum, self.count, self.steps = 0.0, 0, 0
        #: r_t of the last adjustment (nan before the first).
        self.rt = float("nan")

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add sign(D(x)) of one real batch to the running r_t."""
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += int(real_logits.numel())

    def step(self, batch_size: int, reduce=None) -> bool:
        """One training step of ``batch_size`` images (all processes); adjusts p every ``interval`` steps.

        ``reduce``: sums a pair (sign sum, count) over processes under DDP; None on one process.
        Returns whether p was adjusted.
        """
        self.steps += 1
        if self.steps % self.interval != 0:
            return False
        sign_sum, count = self.sign_sum, self.count
        if reduce is not None:
            sign_sum, count = reduce(sign_sum, count)
        self.sign_sum, self.count = 0.0, 0
        if count == 0:
            return False
        self.rt = sign_sum / count
        adjust = math.copysign(1.0, self.rt - self.target) if self.rt != self.target else 0.0
        adjust *= batch_size * self.interval / (self.ada_kimg * 1000.0)
        self.pipe.p.copy_(torch.clamp(self.pipe.p + adjust, 0.0, 1.0))
        return True

    def state_dict(self) -> dict[str, float]:
        """The partial sums since the last adjustment (p itself is the pipe's buffer, in the weights)."""
        return {"sign_sum": self.sign_sum, "count": self.count, "steps": self.steps, "rt": self.rt}

    def load_state_dict(self, state: dict[str, float], keep_partial_sums: bool = True) -> None:
        """Restore :meth:`state_dict`.  ``keep_partial_sums=False`` (DDP ranks other than 0, whose sums
        the checkpoint does not hold) restarts the sums at 0 but keeps the adjustment schedule."""
        self.steps, self.rt = int(state["steps"]), float(state["rt"])
        self.sign_sum, self.count = (float(state["sign_sum"]), int(state["count"])) if keep_partial_sums else (0.0, 0)
