"""SLURM auto-requeue at the end of a training batch, on all processes together.

A job submitted with ``--signal=SIGUSR1@90 --requeue`` (``scripts/slurm/train.sbatch``) gets
SIGUSR1 90 s before its time limit or on preemption.  Lightning's ``SLURMEnvironment``
handles it by saving ``hpc_ckpt_N.ckpt`` in ``default_root_dir`` and running ``scontrol
requeue``, and the requeued job restores that checkpoint.  But its handler runs wherever the
signal lands in each process:

* between the D and the G step of a GAN iteration, the checkpoint holds half an iteration
  (odd ``global_step``): the restart trains that batch's D step again, ends one step past
  ``max_steps``, and never again meets ``--checkpoint.every_n_train_steps``;
* under DDP the processes get there at different points, and the barrier inside
  ``trainer.save_checkpoint`` meets a gradient all-reduce on another process: the job hangs
  (about 1 run in 5 in ``tests/test_slurm.py``) and is never requeued.

:class:`RequeueAtBatchEnd` replaces the handler, once training starts, with one that only
notes the signal.  At the end of every training batch the processes agree whether any of
them got it (one all-reduce of a flag; nothing on one process) and then all run Lightning's
handler at that same point: hpc checkpoint after a whole iteration, then the requeue from
rank 0.  ``train.py`` adds it to every run (key ``slurm_requeue``); outside SLURM, or with
auto-requeue off, it does nothing.
"""

from __future__ import annotations

import signal
from typing import Any, Optional

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["RequeueAtBatchEnd"]


class RequeueAtBatchEnd(Callback):
    """Run Lightning's SLURM requeue handler at the end of a training batch (see the module docstring).

    Args:
        enabled: move the handler (under SLURM with auto-requeue); ``false`` leaves Lightning's.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self._signal: Optional[int] = None
        self._previous: Any = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning registers its handlers before fit starts; this replaces the requeue one.
        environment = trainer._accelerator_connector.cluster_environment
        if self.enabled and isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            self._signal = environment.requeue_signal
            self._previous = signal.signal(self._signal, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._signal is None:
            return
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self.requested = False
            # Lightning's handler: hpc checkpoint (all ranks, rank 0 writes), scontrol requeue (rank 0).
            trainer._signal_connector._slurm_sigusr_handler_fn(self._signal, None)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._signal is not None:
            signal.signal(self._signal, self._previous)
            self._signal = self._previous = None
