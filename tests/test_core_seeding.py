"""core.seeding: torch generators keyed by integers through numpy's SeedSequence."""

import numpy as np
import torch

from core.seeding import seed_from_entropy, seeded_generator


def test_seed_is_63_bits_of_the_seed_sequence():
    for entropy in ([0], [7, 3, 1], [2**40, 12345, 0]):
        state = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        assert seed_from_entropy(*entropy) == state & (2**63 - 1)
        assert 0 <= seed_from_entropy(*entropy) < 2**63
    assert seed_from_entropy(1, 2) != seed_from_entropy(2, 1)


def test_generator_is_reused_on_its_device_and_reset_by_the_seed():
    cpu = torch.device("cpu")
    g = seeded_generator(None, cpu, 5, 6)
    first = torch.rand(4, generator=g)
    assert seeded_generator(g, cpu, 5, 6) is g
    assert torch.equal(torch.rand(4, generator=g), first)
    assert g.initial_seed() == seed_from_entropy(5, 6)
    assert not torch.equal(torch.rand(4, generator=seeded_generator(g, cpu, 5, 7)), first)
