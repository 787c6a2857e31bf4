"""Where a run writes, for code that runs on the main process only."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch import Trainer

__all__ = ["run_dir"]


def run_dir(trainer: Trainer) -> Optional[str]:
    """The run folder (``runs/<experiment>/version_N``), without a collective.

    ``trainer.log_dir`` broadcasts the answer from rank 0 under DDP, so calling it from
    rank-zero-only code hangs the other processes. This reads the logger directly, which
    on rank 0 gives the same folder.
    """
    logger = trainer.logger
    if logger is None:
        return trainer.default_root_dir
    return getattr(logger, "log_dir", None) or logger.save_dir
