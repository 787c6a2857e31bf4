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
* both evaluations see the **same injected noise**.  The code feeds the network's constant
  noise maps (``randomize_noise=False``): ``noise_mode="const"``.  ``noise_mode="random"``
  instead draws fresh per-sample noise and replays the random number generator for the
  second evaluation, so G(x) and G(x + dx) still share one realisation;
* with N != 50,000 the top count scales with N: the top ``top_fraction`` = 1000 / 50,000 = 2%
  of the values, at least one (``top_count``).

The first evaluation is done in one batch with the second (``[x; x + dx]``) only when no
random noise is drawn; with random noise the two halves run as separate calls under the
same RNG state, since a single call would give them different noise.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ["condition_numbers", "mc_ttmc", "top_count"]

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
    """
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
        else:
            y0, y1 = f(torch.cat([x, x_pert])).chunk(2)
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

