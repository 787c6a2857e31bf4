"""Entry point: ``python train.py {fit,validate,test,predict} -c configs/<method>/<experiment>.yaml``.

A LightningCLI whose model and data are chosen by ``class_path`` in the YAML (any
LightningModule / LightningDataModule; the project's own can be named without their
package, e.g. ``class_path: NoiseDimGAN``).  Defaults, each overridable in the config:

* TensorBoard logs under ``runs/<experiment name>/version_N`` (the config names the
  experiment in ``trainer.logger.init_args.name``), the resolved config saved there as
  ``config.yaml``;
* checkpoints in ``<run>/checkpoints``, always with ``last.ckpt`` (key ``checkpoint``, a
  :class:`~callbacks.Checkpoint`; ``--checkpoint.every_n_train_steps N`` refreshes it every N
  optimiser steps, mid-epoch too, and a run resumed from it continues exactly);
* a :class:`~callbacks.StepSeed` (key ``step_seed``) that seeds every training batch from
  (run seed, rank, batch index): different noise on each DDP process, the same noise after
  a resume;
* a :class:`~callbacks.RequeueAtBatchEnd` (key ``slurm_requeue``): under SLURM, the SIGUSR1
  checkpoint-and-requeue happens at the end of a batch, on all processes together;
* a :class:`~callbacks.NonFiniteGuard` (key ``nan_guard``) that stops training at the first
  NaN/Inf loss, before a checkpoint can store it;
* ``validate`` / ``test`` / ``predict`` refuse to run without ``--ckpt_path`` (a freshly
  initialised model gives meaningless numbers); ``--allow_untrained true`` overrides.

After ``fit`` it prints where the run, the last checkpoint and the last sample grid are.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Optional

# Lightning's CLI uses jsonargparse and pytree APIs those packages have deprecated: their
# warnings are not the user's to act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402

import callbacks  # noqa: E402, F401  (registers the project's classes for short class_path names)
import datamodules  # noqa: E402, F401
import lightning_modules  # noqa: E402, F401
from callbacks import Checkpoint, NonFiniteGuard, RequeueAtBatchEnd, SampleGrid, StepSeed, run_dir  # noqa: E402

TRAINER_DEFAULTS = {
    # Where anything without a logger folder goes (e.g. checkpoints under fast_dev_run).
    "default_root_dir": "runs",
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "default", "default_hp_metric": False},
    },
}


class NoiseGANCLI(LightningCLI):
    """LightningCLI with the project's defaults and a guard against evaluating untrained weights."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(Checkpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(NonFiniteGuard, "nan_guard")
        parser.add_lightning_class_args(StepSeed, "step_seed")
        parser.add_lightning_class_args(RequeueAtBatchEnd, "slurm_requeue")
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="validate/test/predict: allow running without --ckpt_path, on freshly initialised weights",
        )

    def _require_checkpoint(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") is None and not config.get("allow_untrained"):
            sys.stderr.write(
                f"error: `train.py {self.subcommand}` evaluates the weights of a checkpoint, and none was given.\n"
                f"  Pass --ckpt_path runs/<experiment>/version_N/checkpoints/last.ckpt (printed at the end of fit),\n"
                f"  or --allow_untrained true to {self.subcommand} freshly initialised weights on purpose.\n"
            )
            raise SystemExit(2)

    before_validate = before_test = before_predict = _require_checkpoint

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        log_dir = run_dir(self.trainer)
        lines = [f"Run:         {log_dir}   (tensorboard --logdir {_logger_root(self, log_dir)})"]
        checkpoint = self.trainer.checkpoint_callback
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.last_model_path:
            lines.append(f"Checkpoint:  {checkpoint.last_model_path}")
        grids = [cb.last_png for cb in self.trainer.callbacks if isinstance(cb, SampleGrid) and cb.last_png]
        if grids:
            lines.append(f"Samples:     {grids[-1]}")
        noise = getattr(self.model, "noise", None)
        if noise is not None:
            lines.append(f"Noise:       {noise}")
        lines.append(f"Steps:       {self.trainer.global_step} optimiser steps, epoch {self.trainer.current_epoch}")
        print("\n" + "\n".join(lines), flush=True)


def _logger_root(cli: LightningCLI, log_dir: Optional[str]) -> str:
    save_dir = getattr(cli.trainer.logger, "save_dir", None)
    return save_dir if save_dir else os.path.dirname(log_dir or "runs")


def main(args: Optional[list[str]] = None) -> LightningCLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None) and return it (tests inspect it)."""
    return NoiseGANCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        auto_configure_optimizers=False,
        # Resuming into the same run folder (--trainer.logger.init_args.version N) rewrites config.yaml.
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()
