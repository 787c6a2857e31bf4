"""The divergence-entropy check on a known source: the generator's q over the prototypes against d(eps).

Runs :func:`evaluation.known_source.known_source_report` on the EMA generator (seed paper
Noise-dim Sec. 4.4, Eq. 11; see that module for how q is measured and how empty cells are
handled) and logs, under ``known_source/``: ``eps_bits`` (H(Z)), ``H_q_bits``, and per
divergence ``D_<name>`` and ``d_eps_<name>``.  At the end of fit and at test it also
writes the whole report as ``known_source.json`` in the run folder, which
``python -m tools known-source`` merges into its table and figure.

Needs :class:`datamodules.KnownSourceDataModule` (its ``prototypes`` and ``probabilities``).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.paths import run_dir
from callbacks.rank_zero import compute_on_rank_zero
from evaluation.known_source import DEFAULT_DIVERGENCES, known_source_report, prototype_counts

__all__ = ["KnownSourceEvaluation", "RESULT_FILE"]

#: The report's file name in the run folder.
RESULT_FILE = "known_source.json"


class KnownSourceEvaluation(Callback):
    """q of the generator over a known source's prototypes, D(p || q) and d(eps).

    Args:
        every_n_epochs: evaluate at the end of every n-th validation (sanity checks do not count).
        divergences: the divergences to report (``kl``, ``js``, ``tv``, ``reverse-kl``).
        max_enumerate: enumerate discrete noise exactly up to this many values.
        num_samples: noise draws for q when the noise is not enumerated.
        smoothing: pseudo-count of ``kl_smoothed_bits``.
        ema: use the generator's EMA weights.
        seed: seed of the sampled noise.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        divergences: tuple[str, ...] = DEFAULT_DIVERGENCES,
        max_enumerate: int = 2**16,
        num_samples: int = 16384,
        smoothing: float = 0.5,
        ema: bool = True,
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1 or max_enumerate < 1 or num_samples < 1 or smoothing < 0:
            raise ValueError(
                "KnownSourceEvaluation: every_n_epochs, max_enumerate and num_samples must be >= 1, smoothing >= 0"
            )
        self.every_n_epochs, self.divergences = every_n_epochs, tuple(divergences)
        self.max_enumerate, self.num_samples, self.smoothing = max_enumerate, num_samples, smoothing
        self.ema, self.seed = ema, seed
        self.last: Optional[dict[str, Any]] = None
        self._validations = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if not (hasattr(datamodule, "prototypes") and hasattr(datamodule, "probabilities")):
            raise TypeError(
                "KnownSourceEvaluation needs data with known prototypes and probabilities "
                f"(datamodules.KnownSourceDataModule), got {type(datamodule).__name__}"
            )

    def compute(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The report for the current weights (no logging, no collectives)."""
        datamodule = trainer.datamodule
        was_training = pl_module.training
        pl_module.eval()
        try:
            counts, method = prototype_counts(
                lambda z: pl_module.generate(z, ema=self.ema),
                pl_module.noise,
                datamodule.prototypes,
                max_enumerate=self.max_enumerate,
                num_samples=self.num_samples,
                seed=self.seed,
            )
        finally:
            pl_module.train(was_training)
        report = known_source_report(
            datamodule.probabilities,
            counts,
            pl_module.noise.entropy_bits(),
            self.divergences,
            self.smoothing,
            method,
        )
        report.update(noise=pl_module.noise.to_dict(), global_step=trainer.global_step)
        return report

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, log: bool, write: bool) -> None:
        report = compute_on_rank_zero(trainer, lambda: self.compute(trainer, pl_module), "KnownSourceEvaluation")
        self.last = report
        if log:
            names = ["eps_bits", "H_q_bits"] + [f"{k}_{d}" for d in self.divergences for k in ("D", "d_eps")]
            for name in names:
                value = float(report[name])
                # inf (a prototype never generated, KL) cannot be plotted; TensorBoard gets the smoothed KL there.
                if math.isinf(value) and name == "D_kl":
                    value = float(report["kl_smoothed_bits"])
                pl_module.log(f"known_source/{name}", value, rank_zero_only=False, sync_dist=False)
        if write and trainer.is_global_zero:
            folder = run_dir(trainer)
            if folder is not None:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, RESULT_FILE), "w") as handle:
                    json.dump(report, handle, indent=2)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_epochs == 0:
            self._evaluate(trainer, pl_module, log=True, write=False)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluate(trainer, pl_module, log=False, write=True)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluate(trainer, pl_module, log=True, write=True)

    def hparams_metrics(self) -> list[str]:
        """The tags of the metrics it logs, which a run's TensorBoard hparams session lists as its metrics."""
        return ["known_source/H_q_bits", *(f"known_source/D_{d}" for d in self.divergences)]

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = int(state_dict.get("validations", 0))
