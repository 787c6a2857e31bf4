"""Work done on global rank 0 only, with its result (or its failure) shared by every rank."""

from __future__ import annotations

from typing import Any, Callable, Optional

from lightning.pytorch import Trainer

__all__ = ["compute_on_rank_zero"]


def compute_on_rank_zero(trainer: Trainer, compute: Callable[[], Any], name: str) -> Any:
    """``compute()`` on global rank 0, its result broadcast to every rank.

    ``compute`` must not use collectives (the other ranks wait in the broadcast).  If it
    raises on rank 0, rank 0 re-raises the original exception and every other rank raises
    a ``RuntimeError`` naming ``name`` and the error, so no rank waits forever.
    """
    payload: Optional[dict[str, Any]] = None
    error: Optional[BaseException] = None
    if trainer.is_global_zero:
        try:
            payload = {"result": compute()}
        except Exception as err:
            error, payload = err, {"error": f"{type(err).__name__}: {err}"}
    payload = trainer.strategy.broadcast(payload, src=0)
    if error is not None:
        raise error
    if "error" in payload:
        raise RuntimeError(f"{name} failed on rank 0: {payload['error']}")
    return payload["result"]
