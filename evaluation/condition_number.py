r"""Empirical condition numbers of a generator: MC and TTMC (RNI paper, Eq. 19 and Table 2).

Seed paper "On noise injection in GANs" (Feng et al. 2021), Sec. 5, "Numerical stability".
The condition number of f at x (Horn & Johnson 2013),

    C(f) = limsup_{|dx| -> 0} ( |f(x) - f(x + dx)| / |f(x)| ) / ( |dx| / |x| )          (RNI Eq. 19)

is estimated from pairs (x, dx): x from the generator's input distribution (z, or w+ =
the mapping network's output for StyleGAN2), dx ~ N(0, s^2 I) with a small s, and

    C = ( |G(x) - G(x + dx)| / |G(x)| ) / ( |dx| / |x| ),

norms over all coordinates of a sample.  **MC** is the mean of C over N pairs, **TTMC** the
mean of its largest 1000 values out of N = 50,000 (the paper).

Choices the paper leaves open, as the authors' code makes them (RuiLiFeng/noise,
``metrics/conditional_number.py``):

* the paper writes dx ~ N(0, 1e-4); the code draws ``tf.random_normal(stddev=epsilon)`` with
  epsilon = 1e-4, so 1e-4 is the **standard deviation** here (``perturbation_std``);
* in W the code perturbs every row of w+ [N, num_ws, w_dim] independently and takes the norm
  over all of them;
* both evaluations see the **same injected noise**, and the code **redraws it for every
  minibatch**: it re-initialises the noise variables (one N(0, 1) map [1, 1, H, W] per layer)
  before each minibatch and renders ``[x; x + dx]`` in one call with ``randomize_noise=False``,
  so one map per layer is shared by the minibatch's samples and by both halves of every pair.
  ``redraw_noise=<generator>`` does that here (:func:`redraw_noise_maps`, seeded by ``seed``);
  without it ``f`` decides (e.g. the generator's one fixed map, ``noise_mode="const"``);
* the code crops faces to rows 3c..7c and columns 2c..6c, c = H // 8, before the norms
  (``crop=True`` in all its condition-number metrics, as in StyleGAN's PPL): ``crop``
  (:func:`evaluation.ppl.face_crop`);
* with N != 50,000 the top count scales with N: the top ``top_fraction`` = 1000 / 50,000 = 2%
  of the values, at least one (``top_count``).  The code takes the top 1000 of any N.

The first evaluation is done in one batch with the second (``[x; x + dx]``) unless
``replay_rng`` is set (per-sample noise drawn inside ``f``): then the two halves run as
separate calls under the same RNG state, since a single call would give them different noise.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from evaluation.ppl import face_crop
from lightning_modules.nets.noise_injection import NoiseInjection

__all__ = ["condition_numbers", "mc_ttmc", "redraw_noise_maps", "rendering_network", "top_count"]

#: The paper's sample count and top count: TTMC = mean of the top 1000 of 50,000.
PAPER_SAMPLES, PAPER_TOP = 50_000, 1_000


def top_count(num_samples: int, top_fraction: float = PAPER_TOP / PAPER_SAMPLES) -> int:
    """How many of ``num_samples`` values TTMC averages: round(top_fraction * N), at least 1."""
    if num_samples < 1 or not 0 < top_fraction <= 1:
        raise ValueError(f"need num_samples >= 1 and 0 < top_fraction <= 1, got {num_samples}, {top_fraction}")
    return max(1, min(num_samples, int(round(top_fraction * num_samples))))


def mc_ttmc(values: Tensor, top_fraction: float = PAPER_TOP / PAPER_SAMPLES) -> tuple[float, float]:
    """(MC, TTMC): the mean of all condition numbers and of the largest ``top_count`` of them."""
    v = values.detach().double().flatten()
    if v.numel() == 0 or not torch.isfinite(v).all():
        raise ValueError("condition numbers must be a non-empty, finite set of values")
    k = top_count(v.numel(), top_fraction)
    return float(v.mean()), float(torch.topk(v, k).values.mean())


def rendering_network(model: nn.Module, ema: bool = True) -> nn.Module:
    """The generator of a GAN module whose noise layers render: its EMA copy (``ema``, where there is
    one, ``generator_ema.module``) or ``generator``."""
    copy = getattr(model, "generator_ema", None)
    if ema and copy is not None:
        return copy.module
    generator = getattr(model, "generator", None)
    if not isinstance(generator, nn.Module):
        raise TypeError(
            f"per-batch noise redraws the noise maps of `generator` / `generator_ema`; {type(model).__name__} has "
            "neither (use the generator's fixed noise, noise_mode const)"
        )
    return generator


@contextmanager
def redraw_noise_maps(net: nn.Module, generator: torch.Generator) -> Iterator[list[Tensor]]:
    """Within the block, every noise-injection layer of ``net`` uses a fresh fixed map.

    Each :class:`~lightning_modules.nets.noise_injection.NoiseInjection` layer (input to
    output) gets one N(0, 1) map [1, 1, H, W], drawn on the CPU from ``generator``, as its
    ``noise_const``, which ``noise_mode="const"`` reads: one map per layer shared by every
    sample of a call.  The layers' own maps come back afterwards.  Yields the drawn maps.
    """
    layers = [m for m in net.modules() if isinstance(m, NoiseInjection) and m.kind != "none"]
    saved = [layer.noise_const for layer in layers]
    maps = [torch.randn(1, 1, layer.resolution, layer.resolution, generator=generator) for layer in layers]
    try:
        for layer, old, new in zip(layers, saved, maps):
            layer.noise_const = new.to(device=old.device, dtype=old.dtype)
        yield maps
    finally:
        for layer, old in zip(layers, saved):
            layer.noise_const = old


def _norms(x: Tensor) -> Tensor:
    return x.double().flatten(1).norm(dim=1)


@torch.no_grad()
def condition_numbers(
    f: Callable[[Tensor], Tensor],
    sample_x: Callable[[int, torch.Generator], Tensor],
    num_samples: int,
    perturbation_std: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
    replay_rng: bool = False,
    device: Optional[torch.device] = None,
    crop: bool = False,
    redraw_noise: Optional[nn.Module] = None,
) -> Tensor:
    """C of RNI Eq. 19 for ``num_samples`` pairs (x, dx); float64 [num_samples] on the CPU.

    Args:
        f: the map, inputs [B, ...] -> outputs [B, ...] (e.g. the generator in a fixed noise mode).
        sample_x: ``sample_x(n, generator)`` -> n inputs, drawn with the given CPU generator.
        num_samples: number of pairs.
        perturbation_std: standard deviation s of dx ~ N(0, s^2 I).
        batch_size: pairs per call of ``f``.
        seed: seeds x and dx (a CPU ``torch.Generator``): the same pairs for every model.
        replay_rng: ``f`` draws random numbers (injected noise): evaluate f(x) and f(x + dx)
            as two calls under one saved RNG state, so both see the same draws.
        device: where ``f``'s own random draws happen (for ``replay_rng``); defaults to x's device.
        crop: compare the outputs on their face crop (:func:`evaluation.ppl.face_crop`; the
            authors' code), images [B, C, H, H].
        redraw_noise: a generator whose injected-noise maps are redrawn for every batch of
            ``batch_size`` pairs (:func:`redraw_noise_maps`, after x and dx, from the same seeded
            generator): the authors' code.  ``f`` must read them (``noise_mode="const"``).
    """
    if replay_rng and redraw_noise is not None:
        raise ValueError("replay_rng (noise drawn inside f) and redraw_noise (fixed maps per batch) exclude each other")
    if num_samples < 1 or batch_size < 1 or not perturbation_std > 0:
        raise ValueError(
            f"need num_samples >= 1, batch_size >= 1, perturbation_std > 0; got {num_samples}, {batch_size}, "
            f"{perturbation_std}"
        )
    rng = torch.Generator().manual_seed(seed)
    noise_seed = int(torch.randint(0, 2**31 - 1, [], generator=rng))
    values = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        x = sample_x(n, rng)
        dx = (torch.randn(x.shape, generator=rng, dtype=torch.float64) * perturbation_std).to(x.device)
        x_pert = (x.double() + dx).to(x.dtype)
        dx = x_pert.double() - x.double()  # the perturbation the network actually sees, after rounding
        if replay_rng:
            where = device if device is not None else x.device
            devices = [where] if where.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(noise_seed + start)
                y0 = f(x)
                torch.manual_seed(noise_seed + start)
                y1 = f(x_pert)
        elif redraw_noise is not None:
            with redraw_noise_maps(redraw_noise, rng):
                y0, y1 = f(torch.cat([x, x_pert])).chunk(2)
        else:
            y0, y1 = f(torch.cat([x, x_pert])).chunk(2)
        if crop:
            y0, y1 = face_crop(y0), face_crop(y1)
        c = (_norms(y0 - y1) / _norms(y0)) / (_norms(dx) / _norms(x))
        values.append(c.cpu())
    out = torch.cat(values)
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise FloatingPointError(
            f"{bad} of {out.numel()} condition numbers are not finite (G(x) = 0, or dx too small for the dtype: "
            f"perturbation_std={perturbation_std})"
        )
    return out

