r"""Noise injection into a feature map: none, Euclidean (ENI) or Riemannian (RNI).

Seed paper "On noise injection in generative adversarial networks" (Feng, Zhao, Zha; ICML
2021), Sec. 4.  A generator layer with features mu = DCNN(x) becomes
g(x) = mu(x) + sigma(x) eps (RNI Eq. 5).

* **ENI** (RNI Eq. 18), StyleGAN's noise: o = mu + r eps, with r a learnable scalar per layer
  initialised to 0 and eps ~ N(0, 1) of shape [N, 1, H, W] (one map shared by the channels).
* **RNI** (RNI Eq. 13-17): sigma follows the local geometry of mu.

  - RNI Eq. 13: a channel reduction mu~ of mu, [N, 1, H, W] (the paper: the sum over channels);
  - RNI Eq. 14: s = (mu~ - mean(mu~)) / max|mu~ - mean(mu~)|, spatial mean and max per sample;
  - RNI Eq. 15: s_d = A * s + b, A and b learnable H x W maps (``*`` element-wise);
  - RNI Eq. 16: s' = alpha s_d + (1 - alpha) 1, alpha a learnable scalar (init 0.5), and
    sigma = s' normalised;
  - RNI Eq. 17: o = r sigma * mu + r sigma * eps, r a learnable scalar.

The authors' TensorFlow code (RuiLiFeng/noise, ``training/networks_stylegan2_resample.py``:
``layer``, ``spatial_att``, ``adjust_range``) differs from the printed equations; each
difference is an option here, with the paper's form the default because the project
reproduces the paper and the equations are what a reader checks:

=================  ==============================================  ==========================================
option             default (paper)                                  authors' code
=================  ==============================================  ==========================================
``reduction``      ``sum``: sum_c mu (RNI Eq. 13)                   ``relu_neg_sum`` sum_c relu(-mu) (FFHQ),
                                                                    ``abs_sum`` sum_c |mu| (cats),
                                                                    ``neg_max`` max_c (-mu) (churches)
``scaling``        ``maxabs``: s / max|s| in [-1, 1] (RNI Eq. 14)   ``unit``: (s / max(s) + 1) / 2, with
                                                                    max(s) + 1e-8, not max|s|
``norm``           ``rms``: sigma = s' / sqrt(mean(s'^2))           the same (``rms``); ``l2``: s' / |s'|_2
                                                                    as printed in RNI Eq. 16
``form``           ``paper``: o = r sigma (mu + eps),               ``authors``: o = sigma (mu + g eps), g
                   r init 1 (RNI Eq. 17)                            the noise strength init 0 (no r on mu)
``affine_init``    ``identity``: A = 1, b = 0                       ``random``: A, b ~ N(0, 1) / sqrt(H)
                                                                    (their equalised-lr ``get_weight``)
=================  ==============================================  ==========================================

``norm`` defaults to ``rms`` in both columns: the printed |s'|_2 over H x W positions makes
sigma ~ 1 / sqrt(HW), so every layer would shrink its features by a resolution-dependent
factor that r then has to undo; the authors' code divides by the root mean square, which
keeps sigma around 1 at every resolution.  The authors' alpha multiplies the constant 1
(``alpha + (1 - alpha) att``); with alpha initialised to 0.5 that is the paper's RNI Eq. 16 up to
relabelling alpha -> 1 - alpha, so only the paper's form is offered.

``noise_mode`` (as in StyleGAN code): ``random`` draws eps per sample; ``const`` uses a
fixed map stored in the layer (buffer ``noise_const``, drawn once at construction, saved in
checkpoints), so the generator is deterministic; ``none`` sets eps = 0.  An explicit
``noise`` tensor [N or 1, 1, H, W] overrides all three (GAN inversion optimises it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch import Tensor, nn

from core.dataclass_config import coerce_dataclass

__all__ = ["NoiseInjection", "NoiseMode", "InjectionKind", "RNIOptions", "set_noise_mode"]

InjectionKind = Literal["none", "eni", "rni"]
NoiseMode = Literal["random", "const", "none"]
Reduction = Literal["sum", "relu_neg_sum", "abs_sum", "neg_max"]
_KINDS = ("none", "eni", "rni")
_MODES = ("random", "const", "none")


@dataclass(frozen=True)
class RNIOptions:
    """The choices of Riemannian noise injection (see the module docstring's table).

    Args:
        reduction: channel reduction of RNI Eq. 13: ``sum`` (paper), ``relu_neg_sum`` (authors'
            FFHQ), ``abs_sum`` (authors' cats), ``neg_max`` (authors' churches).
        scaling: RNI Eq. 14's normalisation: ``maxabs`` (paper) or ``unit`` (authors).
        norm: RNI Eq. 16's normalisation of s': ``rms`` (authors; default) or ``l2`` (as printed).
        form: RNI Eq. 17 ``paper`` (o = r sigma (mu + eps)) or ``authors`` (o = sigma (mu + g eps)).
        affine_init: initial A, b of RNI Eq. 15: ``identity`` (A = 1, b = 0) or ``random`` (authors).
        alpha_init: initial alpha of RNI Eq. 16.
    """

    reduction: Reduction = "sum"
    scaling: Literal["maxabs", "unit"] = "maxabs"
    norm: Literal["rms", "l2"] = "rms"
    form: Literal["paper", "authors"] = "paper"
    affine_init: Literal["identity", "random"] = "identity"
    alpha_init: float = 0.5

    def __post_init__(self) -> None:
        choices = {
            "reduction": ("sum", "relu_neg_sum", "abs_sum", "neg_max"),
            "scaling": ("maxabs", "unit"),
            "norm": ("rms", "l2"),
            "form": ("paper", "authors"),
            "affine_init": ("identity", "random"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"unknown rni.{key} {getattr(self, key)!r}; expected one of: {', '.join(allowed)}")

    @classmethod
    def coerce(cls, value: Union["RNIOptions", dict, None]) -> "RNIOptions":
        """Accept options, their dict form (checkpoint hparams) or None (the defaults)."""
        return cls() if value is None else coerce_dataclass(cls, value, "rni")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class NoiseInjection(nn.Module):
    """Inject noise into features mu [N, C, H, W]: ``none``, ``eni`` (RNI Eq. 18) or ``rni`` (RNI Eq. 13-17).

    Args:
        kind: ``none``, ``eni`` or ``rni``.
        resolution: the feature map's side H = W (the RNI maps A, b and ``noise_const`` are H x W).
        rni: options of RNI (:class:`RNIOptions`; the paper's equations by default).
    """

    def __init__(self, kind: InjectionKind, resolution: int, rni: Optional[RNIOptions] = None) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"unknown noise_injection {kind!r}; expected one of: {', '.join(_KINDS)}")
        self.kind, self.resolution = kind, int(resolution)
        self.rni = RNIOptions.coerce(rni)
        self.noise_mode: NoiseMode = "random"
        if kind == "none":
            return
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        if kind == "eni":
            self.strength = nn.Parameter(torch.zeros([]))  # r of RNI Eq. 18, init 0 (StyleGAN2)
            return
        opts = self.rni
        if opts.affine_init == "identity":
            a, b = torch.ones(resolution, resolution), torch.zeros(resolution, resolution)
        else:  # authors: equalised-lr weights of fan-in H, N(0, 1) / sqrt(H) at run time
            a, b = torch.randn(resolution, resolution), torch.randn(resolution, resolution)
        self.affine_gain = 1.0 if opts.affine_init == "identity" else resolution**-0.5
        self.A = nn.Parameter(a)
        self.b = nn.Parameter(b)
        self.alpha = nn.Parameter(torch.tensor(opts.alpha_init))
        # paper: r scales mu and eps (init 1); authors: the noise strength g scales eps (init 0).
        self.strength = nn.Parameter(torch.ones([]) if opts.form == "paper" else torch.zeros([]))

    # ------------------------------------------------------------------ noise
    def draw(self, mu: Tensor, noise_mode: Optional[NoiseMode] = None) -> Optional[Tensor]:
        """eps for features ``mu``: [N, 1, H, W], [1, 1, H, W] (const) or None (mode ``none``)."""
        mode = noise_mode or self.noise_mode
        if mode not in _MODES:
            raise ValueError(f"unknown noise_mode {mode!r}; expected one of: {', '.join(_MODES)}")
        if mode == "none":
            return None
        if mode == "const":
            return self.noise_const.to(mu.dtype)
        return torch.randn(mu.shape[0], 1, *mu.shape[2:], device=mu.device, dtype=mu.dtype)

    # ------------------------------------------------------------------ RNI's sigma
    def sigma(self, mu: Tensor) -> Tensor:
        """sigma(mu) of RNI Eq. 13-16, [N, 1, H, W]; computed in float32 at least."""
        opts = self.rni
        x = mu.float() if mu.dtype in (torch.float16, torch.bfloat16) else mu
        if opts.reduction == "sum":  # RNI Eq. 13
            red = x.sum(dim=1, keepdim=True)
        elif opts.reduction == "relu_neg_sum":
            red = torch.relu(-x).sum(dim=1, keepdim=True)
        elif opts.reduction == "abs_sum":
            red = x.abs().sum(dim=1, keepdim=True)
        else:
            red = (-x).amax(dim=1, keepdim=True)
        s = red - red.mean(dim=[2, 3], keepdim=True)  # RNI Eq. 14
        if opts.scaling == "maxabs":
            s = s / s.abs().amax(dim=[2, 3], keepdim=True).clamp_min(1e-8)
        else:
            s = (s / (s.amax(dim=[2, 3], keepdim=True) + 1e-8) + 1.0) / 2.0
        gain = self.affine_gain
        s_d = s * (self.A * gain).to(s.dtype) + (self.b * gain).to(s.dtype)  # RNI Eq. 15
        alpha = self.alpha.to(s.dtype)
        s_prime = alpha * s_d + (1.0 - alpha)  # RNI Eq. 16
        if opts.norm == "rms":
            sigma = s_prime * torch.rsqrt(s_prime.square().mean(dim=[2, 3], keepdim=True) + 1e-8)
        else:
            sigma = s_prime / s_prime.flatten(1).norm(dim=1).clamp_min(1e-8).reshape(-1, 1, 1, 1)
        return sigma.to(mu.dtype)

    # ------------------------------------------------------------------ forward
    def forward(self, mu: Tensor, noise_mode: Optional[NoiseMode] = None, noise: Optional[Tensor] = None) -> Tensor:
        if self.kind == "none":
            return mu
        if mu.shape[-1] != self.resolution or mu.shape[-2] != self.resolution:
            raise ValueError(f"NoiseInjection built for {self.resolution}x{self.resolution}, got {list(mu.shape)}")
        eps = noise.to(mu.dtype) if noise is not None else self.draw(mu, noise_mode)
        r = self.strength.to(mu.dtype)
        if self.kind == "eni":  # RNI Eq. 18
            return mu if eps is None else mu + r * eps
        sigma = self.sigma(mu)
        if self.rni.form == "paper":  # RNI Eq. 17: o = r sigma mu + r sigma eps
            return r * sigma * (mu if eps is None else mu + eps)
        return sigma * (mu if eps is None else mu + r * eps)

    def extra_repr(self) -> str:
        text = f"kind={self.kind}, resolution={self.resolution}"
        return text + (f", {self.rni}" if self.kind == "rni" else "")


def set_noise_mode(module: nn.Module, mode: NoiseMode) -> None:
    """Set the default ``noise_mode`` of every :class:`NoiseInjection` inside ``module``."""
    if mode not in _MODES:
        raise ValueError(f"unknown noise_mode {mode!r}; expected one of: {', '.join(_MODES)}")
    for m in module.modules():
        if isinstance(m, NoiseInjection):
            m.noise_mode = mode
