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

After ``fit`` it prints where the run, the last checkpoint and the last sample grid are, the
noise and the generator's randomness budget (``Budget:``, bits per sample and its parts).

A user error -- a misspelt key (on the command line or in a YAML), a bad value, a missing
dataset, checkpoint or weights file, a file that is not a checkpoint -- prints one line,
``error: <the key or path, and what to do>``, and exits with status 2; ``--debug`` (or
``NOISE_GANS_DEBUG=1``) shows the traceback too.  See :func:`config_error_message`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import math
import os
import re
import typing
import warnings
from typing import Any, Optional, Sequence

# Lightning's CLI uses jsonargparse and pytree APIs those packages have deprecated: their
# warnings are not the user's to act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402

import callbacks  # noqa: E402, F401  (registers the project's classes for short class_path names)
import datamodules  # noqa: E402, F401
import lightning_modules  # noqa: E402, F401
from callbacks import Checkpoint, NonFiniteGuard, RequeueAtBatchEnd, SampleGrid, StepSeed, run_dir  # noqa: E402
from callbacks.nan_guard import NonFiniteLossError  # noqa: E402
from core.errors import USER_ERRORS, UserError, check_checkpoint_file, run_cli  # noqa: E402
from datamodules.encoded import CorruptImageError  # noqa: E402
from evaluation.features import FeatureExtractorUnavailable  # noqa: E402

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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        # Lightning's own names ("last", "best", ...) and remote URLs are Lightning's to check.
        if ckpt_path and ckpt_path not in ("best", "last", "hpc", "registry") and not re.match(r"\w+:", ckpt_path):
            check_checkpoint_file(ckpt_path, "--ckpt_path", howto="python train.py fit -c <config>")

    def _require_checkpoint(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") is None and not config.get("allow_untrained"):
            raise UserError(
                f"`train.py {self.subcommand}` evaluates the weights of a checkpoint, and none was given.\n"
                f"  Pass --ckpt_path runs/<experiment>/version_N/checkpoints/last.ckpt (printed at the end of fit),\n"
                f"  or --allow_untrained true to {self.subcommand} freshly initialised weights on purpose."
            )

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
        budget = getattr(self.model, "randomness_budget", None)
        if callable(budget):
            lines.append(f"Budget:      {format_budget(budget())}")
        lines.append(f"Steps:       {self.trainer.global_step} optimiser steps, epoch {self.trainer.current_epoch}")
        print("\n" + "\n".join(lines), flush=True)


def format_budget(parts: dict[str, float]) -> str:
    """A randomness budget in one line: the total bits per sample, then each part."""
    total = math.fsum(parts.values())
    return f"{total:.2f} bits/sample (" + ", ".join(f"{name} {bits:.2f}" for name, bits in parts.items()) + ")"


def _logger_root(cli: LightningCLI, log_dir: Optional[str]) -> str:
    save_dir = getattr(cli.trainer.logger, "save_dir", None)
    return save_dir if save_dir else os.path.dirname(log_dir or "runs")


class _LoopsStarted(Callback):
    """Notes when the trainer's loops begin: a ValueError raised before is a configuration error."""

    started = False

    def _start(self, *args: Any) -> None:
        _LoopsStarted.started = True

    on_sanity_check_start = on_train_start = on_validation_start = on_test_start = on_predict_start = _start


# ---------------------------------------------------------------------------------------------- user errors
#: Raised anywhere in a run, these are the user's to fix (beside core.errors.USER_ERRORS):
#: metric weights that cannot be loaded, a diverged run, an unreadable image in the dataset.
RUN_ERRORS = (FeatureExtractorUnavailable, NonFiniteLossError, CorruptImageError)
#: The first lines of jsonargparse's messages that only wrap the one that matters.
_WRAPPER = re.compile(r"Does not validate against any of the Union subtypes|Problem with given class_path|Parser key ")
#: The config's top-level keys; those whose keys are a class's __init__ arguments name the class.
_SECTIONS: dict[str, Optional[type]] = {
    "trainer": Trainer, "checkpoint": Checkpoint, "nan_guard": NonFiniteGuard, "step_seed": StepSeed,
    "slurm_requeue": RequeueAtBatchEnd, "model": None, "data": None, "seed_everything": None, "ckpt_path": None,
    "allow_untrained": None, "config": None, "print_config": None,
}  # fmt: skip


def _chain(exc: Optional[BaseException]) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    found: list[BaseException] = []
    while exc is not None and all(exc is not e for e in found):
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def _import(class_path: Optional[str]) -> Optional[type]:
    if not class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module or "lightning_modules"), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _argument_class(cls: type, name: str) -> Optional[type]:
    """The class annotated for ``cls``'s argument ``name`` (the X of ``Optional[X]``), if any."""
    try:
        hint = typing.get_type_hints(cls.__init__).get(name)
    except Exception:  # an unresolvable annotation: no hint, not an error
        return None
    return next((t for t in typing.get_args(hint) or (hint,) if inspect.isclass(t) and t is not type(None)), None)


def _suggest(key: str, cls: Optional[type], names: Sequence[str] = ()) -> Optional[str]:
    """``key`` with its misspelt part replaced by the closest of ``cls``'s (nested) argument names, if any.

    ``names``: the valid names of the first part when there is no ``cls`` (the config's sections).
    """
    parts = key.split(".")
    for i, part in enumerate(parts):
        try:
            if cls is not None:
                names = [n for n in inspect.signature(cls).parameters if n not in ("args", "kwargs")]
        except (TypeError, ValueError):
            return None
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
            return ".".join(parts[:i] + close + parts[i + 1 :]) if close else None
        cls, names = _argument_class(cls, part) if cls is not None else _SECTIONS.get(part), ()
        if cls is None:
            return None
    return None


def _section(cls: Optional[type]) -> Optional[str]:
    for base, key in ((LightningModule, "model"), (LightningDataModule, "data"), (Callback, "trainer.callbacks")):
        if inspect.isclass(cls) and issubclass(cls, base):
            return key
    return None


def config_error_message(exc: BaseException) -> Optional[str]:
    """One line for an error of the configuration, naming the key; None when ``exc`` is not one.

    jsonargparse reports a misspelt key or a bad value as nested messages (``Parser key
    "model"`` > ``Problem with given class_path ...`` > the actual problem), and an invalid
    value a class rejects as a ValueError wrapped the same way; the line is built from the
    keys along the way and the innermost message.  A ValueError raised before the trainer's
    loops begin (``setup`` of the data, model or callbacks) is a configuration error too.
    """
    chain = _chain(exc)
    parse_error = isinstance(exc, argparse.ArgumentError)
    if not parse_error and not (isinstance(exc, (ValueError, TypeError)) and _WRAPPER.match(str(exc))):
        if isinstance(exc, ValueError) and not _LoopsStarted.started:
            return str(exc)
        return None
    keys: list[str] = []
    class_path: Optional[str] = None
    for link in chain:
        text = str(link).strip()
        found = re.search(r"class_path'?\s*[=:]\s*'([\w.]+)'", text)
        if found and class_path is None:
            class_path = found[1]
        first = text.splitlines()[0] if text else ""
        key = re.match(r'Parser key "([^"]+)":', first)
        if key and (not keys or keys[-1] != key[1]):
            keys.append(key[1])
        given = re.match(r"Problem with given class_path '([\w.]+)':", first)
        if given and keys[-1:] != ["init_args"]:
            keys.append("init_args")
            class_path = given[1]
    leaf = chain[-1]
    if not parse_error and not isinstance(leaf, (ValueError,) + USER_ERRORS + RUN_ERRORS):
        return None  # a class's __init__ failed in some other way: a bug, keep the traceback
    cls = _import(class_path)
    text = str(leaf).strip()
    unknown = re.match(r"unrecognized arguments: (\S+)", text) or re.match(r"Option '([^']+)' is not accepted", text)
    unknown = unknown or re.match(r"Subcommand '\w+' does not accept option '([^']+)'", text)
    if unknown:
        name = unknown[1].lstrip("-").split("=")[0]
        where = ".".join(keys)
        close = _suggest(name, cls, () if keys else list(_SECTIONS))
        hint = f"did you mean {where + '.' if where else ''}{close}? " if close else ""
        return f"{where + '.' if where else ''}{name}: no such key ({hint}`python train.py fit --help` lists them)"
    not_a_class = re.match(r"Expected a dot import path string: (\S+)", text)
    if not_a_class:
        keys, text = keys + ["class_path"], (
            f"no class {not_a_class[1]} (name one of the project's, e.g. NoiseDimGAN, or give its import path)"
        )
    expected = re.match(r"Expected an? (.+?)\. Got value: (.*)", text, re.S)
    if expected:
        kind = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", expected[1])
        kind = re.sub(r"typing\.Literal\[(.*)\]", r"one of \1", kind)
        text = f"expected {kind}, got {expected[2].strip()}"
    if keys:
        where = "-c/--config" if keys == ["config"] else ".".join(keys)
        return text if text.startswith(where) else f"{where}: {text}"
    section = _section(cls)
    if section and not text.startswith(section + "."):
        return f"{section} ({cls.__name__}): {text}"
    return text


def main(args: Optional[list[str]] = None) -> LightningCLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None) and return it (tests inspect it).

    Errors propagate as raised (a jsonargparse ``ArgumentError`` for a bad key or value);
    the command line shows them as one line (:func:`config_error_message`).
    """
    _LoopsStarted.started = False
    no_exit = {"exit_on_error": False}  # raise, not print the usage: the error is shown as one line
    return NoiseGANCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": [*TRAINER_DEFAULTS.get("callbacks", []), _LoopsStarted()]},
        auto_configure_optimizers=False,
        # Resuming into the same run folder (--trainer.logger.init_args.version N) rewrites config.yaml.
        save_config_kwargs={"overwrite": True},
        parser_kwargs={**no_exit, **{name: no_exit for name in LightningCLI.subcommands()}},
        args=args,
    )


if __name__ == "__main__":
    run_cli(main, user_errors=RUN_ERRORS, translate=config_error_message)
