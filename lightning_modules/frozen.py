"""Frozen pretrained networks inside a LightningModule: the one supported mechanism.

A method that uses a pretrained network as a fixed function (DE-GAN's VAE preconditioner)
assigns it wrapped, ``self.vae_holder = Frozen(vae)``.  The wrapper is a registered child, so
``.to()``, ``.double()`` and device placement reach the network with the rest of the module,
but the network itself is held outside ``nn.Module``'s registry, so it is

* in no ``state_dict`` (checkpoints keep only what the method records about it, e.g. its
  path and hash), and in no ``parameters()`` (no optimiser, no DDP gradient sync, no EMA);
* never trained: ``requires_grad`` is off and it stays in eval mode (dropout off, batch-norm
  running statistics) whatever ``.train()`` Lightning calls.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["Frozen"]


class Frozen(nn.Module):
    """Holds ``net`` frozen (see the module docstring); ``frozen.net`` is the network itself."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.requires_grad_(False)
        net.eval()
        object.__setattr__(self, "net", net)  # not a registered child: no state_dict, no parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        """Device and dtype moves (``.to``, ``.double()``, ...) reach the held network."""
        super()._apply(fn, *args, **kwargs)
        self.net._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> "Frozen":
        """Stays in eval mode, whatever the mode asked for."""
        super().train(False)
        self.net.eval()
        return self

    def extra_repr(self) -> str:
        return f"{type(self.net).__name__} (frozen: no gradients, eval mode, not in state_dict)"
