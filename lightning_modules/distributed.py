"""Gradient averaging across processes for GANs trained with Lightning manual optimisation.

Under ``--trainer.strategy ddp`` Lightning wraps the whole LightningModule in one
``DistributedDataParallel``.  Its reducer expects every backward pass after a forward to
reach every trainable parameter, but a GAN iteration takes two backward passes, each
reaching only D's parameters (D step) or only G's (G step): plain DDP then fails with
"parameters that were not used in producing the loss", and
``ddp_find_unused_parameters_true`` works at the price of a graph traversal per step.

Instead, the methods here average the gradients themselves, as NVlabs' StyleGAN3 training
loop does (``training/training_loop.py``: the gradients of the phase's module are flattened,
summed with one ``all_reduce`` and divided by the number of GPUs before ``opt.step()``):

* :func:`take_over_gradient_sync` (from ``on_fit_start``) marks the module as averaging its own
  gradients when the strategy wrapped it in DDP on more than one process;
* :func:`backward_and_step` runs ``zero_grad``, ``manual_backward`` (the precision plugin's
  loss scaling) inside the wrapper's ``no_sync()`` (so Lightning does not prepare DDP's
  reducer, which then neither checks for unused parameters nor communicates: DDP only
  broadcast the initial weights from rank 0), one all-reduce over exactly the parameters of
  the optimiser being stepped, and ``optimizer.step()`` (unscaling and the non-finite check
  under ``16-mixed``; ranks see the same averaged gradients, so they agree on skipping a step).

Parameters outside the stepped optimiser -- the other network, EMA copies, DE-GAN's frozen
VAE -- are never communicated.  Buffers are not broadcast either (NVlabs'
``broadcast_buffers=False``): batch-norm running statistics and the path-length mean are
per process, and checkpoints hold rank 0's.  Every process must step the same optimisers
with gradients for the same parameters: a parameter without a gradient on one process and
with one on another counts as zero there (DDP's ``find_unused_parameters`` rule).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule
from torch.nn.parallel import DistributedDataParallel

__all__ = ["take_over_gradient_sync", "all_reduce_gradients", "backward_and_step"]


def take_over_gradient_sync(module: LightningModule) -> bool:
    """Let the module average its gradients in :func:`backward_and_step` instead of DDP's reducer.

    Returns whether the module now averages gradients itself (a multi-process DDP run).
    """
    wrapper = module.trainer.strategy.model
    take_over = isinstance(wrapper, DistributedDataParallel) and module.trainer.world_size > 1
    module._averages_gradients = take_over
    return take_over


def _trainable(optimizer: Any) -> list[torch.nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]


@torch.no_grad()
def all_reduce_gradients(optimizer: Any) -> None:
    """Average the gradients of ``optimizer``'s trainable parameters over all processes (one all-reduce per dtype).

    A parameter keeps ``grad = None`` only when it has no gradient on every process (Adam then
    leaves it alone, as on one process).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    by_dtype: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
    for p in _trainable(optimizer):
        by_dtype.setdefault((p.dtype, p.device), []).append(p)
    for (dtype, device), params in sorted(by_dtype.items(), key=lambda item: str(item[0])):
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=dtype, device=device)
                 for p in params]  # fmt: skip
        # One flag per parameter rides along: how many processes had a gradient for it.
        has_grad = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
        flat = torch.cat([*grads, has_grad])
        dist.all_reduce(flat)
        flat.div_(world)
        chunks = flat.split([p.numel() for p in params] + [len(params)])
        for p, chunk, seen in zip(params, chunks[:-1], chunks[-1].tolist()):
            if seen == 0:
                continue
            if p.grad is None:
                p.grad = chunk.view_as(p).clone()
            else:
                p.grad.copy_(chunk.view_as(p))


def backward_and_step(module: LightningModule, optimizer: Any, loss: torch.Tensor) -> None:
    """One manual-optimisation update: zero the gradients, backward, average over processes, step."""
    optimizer.zero_grad(set_to_none=True)
    if getattr(module, "_averages_gradients", False):
        with module.trainer.strategy.model.no_sync():
            module.manual_backward(loss)
        all_reduce_gradients(optimizer)
    else:
        module.manual_backward(loss)
    optimizer.step()
