"""Random streams keyed by integers: a ``torch.Generator`` seeded from a ``numpy.random.SeedSequence``.

A stream that must depend on a few integers only (a run seed, a global step, a rank, a
hash of a noise type...) is seeded by mixing them with NumPy's ``SeedSequence`` (a hash
designed for this: nearby keys give unrelated streams) and keeping 63 bits, the range
``torch.Generator.manual_seed`` accepts on every platform.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

__all__ = ["seed_from_entropy", "seeded_generator"]


def seed_from_entropy(*entropy: int) -> int:
    """A 63-bit seed mixed from the non-negative integers ``entropy`` by ``numpy.random.SeedSequence``."""
    state = np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


def seeded_generator(generator: Optional[torch.Generator], device: torch.device, *entropy: int) -> torch.Generator:
    """``generator`` (or a new one on ``device`` if it is None or on another device), seeded from ``entropy``.

    Reusing the generator avoids allocating one per draw; its state is fully reset by the seed.
    """
    if generator is None or generator.device != device:
        generator = torch.Generator(device=device)
    generator.manual_seed(seed_from_entropy(*entropy))
    return generator
