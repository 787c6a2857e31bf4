"""A training loader that a mid-epoch checkpoint can resume exactly: same order, from the next batch.

Lightning resumes the data of a mid-epoch checkpoint only for loaders with ``state_dict`` /
``load_state_dict`` (``lightning.fabric.utilities.types._Stateful``); any other loader
restarts its epoch with a fresh shuffle, so a resumed GAN sees some images twice and others
never.  :class:`ResumableLoader` counts the batches it handed to the training loop, and its
:class:`ResumableSampler` shuffles with a generator seeded by ``(seed, epoch)`` -- the same on
every process and on every restart -- and deals the permutation out to the processes (it is a
``DistributedSampler``, which Lightning then keeps instead of putting its own in).  On
resume the sampler skips the indices of the batches already trained on, without loading them.

Random augmentations (x-flips) are not part of this stream: after a resume they are drawn
afresh (in the main process from the generator :class:`callbacks.StepSeed` left, in workers
from per-epoch worker seeds).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["ResumableLoader", "ResumableSampler"]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class ResumableSampler(DistributedSampler):
    """This process's share of a ``(seed, epoch)``-seeded permutation, optionally from an offset.

    Args:
        dataset: the training set.
        seed: seeds the permutation of every epoch (with the epoch number).
        num_replicas: processes sharing the data (default: the process group's size, else 1).
        rank: this process's rank (default: from the process group, else 0).
    """

    def __init__(
        self, dataset: Dataset, seed: int = 0, num_replicas: Optional[int] = None, rank: Optional[int] = None
    ) -> None:
        world, own = _world()
        super().__init__(
            dataset,
            num_replicas=world if num_replicas is None else num_replicas,
            rank=own if rank is None else rank,
            shuffle=True,
            seed=seed,
            drop_last=False,
        )
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """Start the next pass after its first ``count`` indices (of this process)."""
        self._skip = count

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self._skip :]
        self._skip = 0
        return iter(indices)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` with Lightning's ``state_dict`` / ``load_state_dict``.

    The state is the epoch and the number of batches handed out in it; loading it makes the
    next pass over that epoch start with the batch after them.  The pass starts at the first
    ``next()``, after Lightning's ``set_epoch`` (which comes after Lightning's ``iter()`` when
    it resumes).  ``generator`` (for worker seeds) is re-seeded from ``(seed, epoch, rank)``
    at each pass, so starting one never draws from torch's global generator.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, **kwargs: Any) -> None:
        if "shuffle" in kwargs or "sampler" in kwargs:
            raise TypeError("ResumableLoader shuffles with its own ResumableSampler; pass no shuffle/sampler")
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=ResumableSampler(dataset, seed=seed),
            generator=torch.Generator(),
            **kwargs,
        )
        self.batches_yielded = 0
        self._resume: Optional[tuple[int, int]] = None  # (epoch, batches already trained on)

    def __iter__(self) -> Iterator[Any]:
        return self._pass()

    def _pass(self) -> Iterator[Any]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        resume, self._resume = self._resume, None
        self.batches_yielded = resume[1] if resume is not None and resume[0] == sampler.epoch else 0
        sampler.skip_next(self.batches_yielded * self.batch_size)
        self.generator.manual_seed((sampler.seed * 1_000_003 + sampler.epoch) * 1_009 + sampler.rank)
        for batch in super().__iter__():
            self.batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        return {
            "epoch": sampler.epoch,
            "batches": self.batches_yielded,
            "batch_size": self.batch_size,
            "num_replicas": sampler.num_replicas,
            "seed": sampler.seed,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        saved = (state_dict.get("batch_size"), state_dict.get("num_replicas"), state_dict.get("seed"))
        if saved != (self.batch_size, sampler.num_replicas, sampler.seed):
            rank_zero_warn(
                f"The checkpoint's data loader had (batch_size, processes, seed) = {saved}, this run has "
                f"{(self.batch_size, sampler.num_replicas, sampler.seed)}: the interrupted epoch restarts from "
                "its first batch."
            )
            return
        self._resume = (int(state_dict.get("epoch", 0)), int(state_dict.get("batches", 0)))
