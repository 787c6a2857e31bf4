"""NoiseRobustness: a translator's scores over a grid of inference noise (I2I poster's curves).

At ``train.py test`` (and every ``every_n_epochs`` validations, if asked) the callback takes
the first ``max_images`` pairs of the split, corrupts the inputs with each noise type of
:mod:`evaluation.corruptions` at each power sigma_e^2 of the grid, translates them with
``pl_module.translate`` and scores the outputs against the clean targets
(:func:`evaluation.robustness.robustness_rows`).  It also fits the poster's Gaussian-source
theory to the clean inputs (:func:`evaluation.robustness.theory`).

Outputs, in ``<run>/robustness/`` (``<run>/robustness/epoch_N/`` during fit):
``robustness.csv`` / ``.json`` / ``.md`` (one row per (sigma_t^2, noise type, sigma_e^2)),
``robustness_psnr.png`` and ``robustness_ssim.png``; in TensorBoard the figures
(``robustness/psnr``), the Markdown table (``robustness/table``) and scalars
``robustness/<noise>/psnr_average`` and ``psnr_worst`` (also logged through the module, so
they show in ``train.py test``'s result table).  ``python -m tools sweep-i2i`` merges the
tables of runs trained with different sigma_t^2 into the poster's figure.

The corruptions of each (type, sigma_e^2) cell depend only on ``seed``, so runs with
different training noise are compared on identical inputs.  Computed on global rank 0;
the summary scalars are broadcast and logged on every rank.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal, Optional, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from callbacks.paths import run_dir
from callbacks.rank_zero import compute_on_rank_zero
from evaluation.corruptions import CORRUPTIONS
from evaluation.features import build_feature_extractor
from evaluation.robustness import (
    plot_robustness,
    robustness_rows,
    sigma_e2_grid,
    summary,
    summary_markdown,
    table_markdown,
    theory,
    write_table,
)

__all__ = ["NoiseRobustness"]

NoiseType = Literal["gaussian", "uniform", "salt_and_pepper", "poisson", "jpeg"]


class NoiseRobustness(Callback):
    """Scores of ``pl_module.translate`` over inference noise types and powers (see the module docstring).

    Args:
        lambda_max: top of the inference-noise range, sigma_e^2 in [0, lambda_max] on the
            [-1, 1] image scale; also the lambda_max of the theory overlay.
        num_levels: how many evenly spaced sigma_e^2 from 0 to ``lambda_max``.
        sigma_e2: an explicit list of powers instead of the even grid (``lambda_max`` is
            then still the theory's range).
        noise_types: corruptions to test: ``gaussian`` (the theory's case), ``uniform``,
            ``salt_and_pepper``, ``poisson``, ``jpeg``.
        max_images: at most this many pairs of the split (the first ones, in order).
        split: the datamodule split: ``test`` at ``train.py test``; validations during
            fit always use ``val``.
        batch_size: translation batch size.
        seed: seeds the corruptions (identical across runs) and any evaluation noise.
        every_n_epochs: also run after every n-th validation during fit; 0: test only.
        fid: FID/KID of the outputs against the clean targets in the feature space of
            ``inception`` or the project's ``classifier`` (needs ``fid_path``); ``none``.
        fid_path: weights of the FID feature extractor (see ``GenerativeMetrics.feature_path``).
        theory_max_dim: the truncation of the theory: how many top eigenvalues of the
            input covariance the Gaussian-source model keeps (``null``: every positive
            one, at most N - 1 for N images).  The minimax prediction depends on it (the
            average one does not); the table and log print it beside the prediction,
            with the minimax prediction at k = 8, 16, 32, 64, 128 and all.
        progress: a progress bar over the (type, sigma_e^2) cells.
    """

    def __init__(
        self,
        lambda_max: float = 0.4,
        num_levels: int = 5,
        sigma_e2: Optional[list[float]] = None,
        noise_types: Sequence[NoiseType] = ("gaussian", "uniform", "salt_and_pepper", "poisson", "jpeg"),
        max_images: int = 512,
        split: Literal["val", "test"] = "test",
        batch_size: int = 64,
        seed: int = 0,
        every_n_epochs: int = 0,
        fid: Literal["none", "inception", "classifier"] = "none",
        fid_path: Optional[str] = None,
        theory_max_dim: Optional[int] = 64,
        progress: bool = True,
    ) -> None:
        unknown = sorted(set(noise_types) - set(CORRUPTIONS))
        if unknown:
            raise ValueError(f"NoiseRobustness.noise_types: unknown {unknown}; expected some of {sorted(CORRUPTIONS)}")
        if not noise_types:
            raise ValueError("NoiseRobustness.noise_types is empty")
        try:
            grid = sigma_e2_grid(lambda_max, num_levels)
        except ValueError as err:
            raise ValueError(f"NoiseRobustness.lambda_max / num_levels: {err}") from None
        if sigma_e2 is not None:
            if not sigma_e2 or any(not (math.isfinite(v) and v >= 0) for v in sigma_e2):
                raise ValueError(f"NoiseRobustness.sigma_e2 must be a non-empty list of powers >= 0, got {sigma_e2}")
            grid = sorted(float(v) for v in sigma_e2)
        for name, value, low in (
            ("max_images", max_images, 2),
            ("batch_size", batch_size, 1),
            ("theory_max_dim", 1 if theory_max_dim is None else theory_max_dim, 1),
        ):
            if value < low:
                raise ValueError(f"NoiseRobustness.{name} must be >= {low}, got {value}")
        if every_n_epochs < 0:
            raise ValueError(f"NoiseRobustness.every_n_epochs must be >= 0, got {every_n_epochs}")
        if fid not in ("none", "inception", "classifier"):
            raise ValueError(f"NoiseRobustness.fid must be none, inception or classifier, got {fid!r}")
        if split not in ("val", "test"):
            raise ValueError(f"NoiseRobustness.split must be val or test, got {split!r}")
        self.lambda_max, self.grid, self.noise_types = float(lambda_max), grid, list(noise_types)
        self.max_images, self.split, self.batch_size, self.seed = max_images, split, batch_size, seed
        self.every_n_epochs, self.fid, self.fid_path = every_n_epochs, fid, fid_path
        self.theory_max_dim, self.progress = theory_max_dim, progress
        self._extractor: Optional[torch.nn.Module] = None
        self._validations = 0
        #: Rows and theory of the last evaluation (global rank 0), and the folder they went to.
        self.rows: list[dict[str, Any]] = []
        self.theory: Optional[dict[str, Any]] = None
        self.folder: Optional[str] = None

    def hparams_metrics(self) -> list[str]:
        """The tags of the metrics it logs, which a run's TensorBoard hparams session lists as its metrics."""
        return [f"robustness/{noise}/psnr_average" for noise in self.noise_types]

    # ------------------------------------------------------------------ hooks
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.every_n_epochs or trainer.fast_dev_run:
            return
        self._validations += 1
        if self._validations % self.every_n_epochs == 0:
            self._evaluate(trainer, pl_module, "val", os.path.join("robustness", f"epoch_{trainer.current_epoch}"))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:
            rank_zero_info("NoiseRobustness: skipped under fast_dev_run")
            return
        self._evaluate(trainer, pl_module, self.split, "robustness")

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = int(state_dict.get("validations", 0))

    # ------------------------------------------------------------------ the evaluation
    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str, subfolder: str) -> None:
        compute = lambda: self.compute(trainer, pl_module, split, subfolder)  # noqa: E731
        payload = compute_on_rank_zero(trainer, compute, "NoiseRobustness")
        for name, value in payload.items():
            pl_module.log(name, value, sync_dist=False, rank_zero_only=False)

    def pairs(self, trainer: Trainer, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``max_images`` (input, target) pairs of the datamodule's ``split``, in order."""
        dm = trainer.datamodule
        dataset: Optional[Dataset] = getattr(dm, f"{split}_set", None) if dm is not None else None
        if dataset is None and dm is not None:
            dm.setup("test" if split == "test" else "validate")
            dataset = getattr(dm, f"{split}_set", None)
        if dataset is None:
            raise ValueError(
                f"NoiseRobustness needs the datamodule's {split}_set (a dataset of (input, target) pairs); "
                f"{type(dm).__name__ if dm is not None else 'no datamodule'} has none: give train.py a paired "
                "DataModule (datamodules.PairedI2IDataModule or AlignedPairsDataModule) with a non-empty split"
            )
        count = min(self.max_images, len(dataset))
        loader = DataLoader(torch.utils.data.Subset(dataset, range(count)), batch_size=self.batch_size, shuffle=False)
        inputs, targets = [], []
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError(f"NoiseRobustness: the {split} split must yield (input, target) pairs")
            inputs.append(batch[0])
            targets.append(batch[1])
        return torch.cat(inputs), torch.cat(targets)

    def _features(self, device: torch.device):
        if self.fid == "none":
            return None
        if self._extractor is None:
            self._extractor = build_feature_extractor(self.fid, self.fid_path)
        self._extractor.to(device)

        def extract(images: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type=device.type, enabled=False):
                return self._extractor(images.to(device=device, dtype=torch.float32))

        return extract

    @torch.no_grad()
    def compute(self, trainer: Trainer, pl_module: LightningModule, split: str, subfolder: str) -> dict[str, float]:
        """Rows, theory and files for the current weights; returns the summary scalars (no collectives)."""
        inputs, targets = self.pairs(trainer, split)
        sigma_t2 = float(getattr(pl_module, "sigma_t2", float("nan")))
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)

        def translate(x: torch.Tensor) -> torch.Tensor:
            return pl_module.translate(x, generator=generator)

        show = self.progress and trainer.progress_bar_callback is not None
        self.rows = robustness_rows(
            translate,
            inputs,
            targets,
            self.grid,
            self.noise_types,
            sigma_t2=sigma_t2,
            seed=self.seed,
            batch_size=self.batch_size,
            features=self._features(pl_module.device),
            progress=show,
        )
        self.theory = theory(inputs, self.lambda_max, self.theory_max_dim)
        folder = run_dir(trainer) or trainer.default_root_dir
        self.folder = os.path.join(folder, subfolder)
        paths = write_table(self.rows, self.folder, self.theory)
        title = f"σ_t² = {sigma_t2:g}, {inputs.shape[0]} {split} images"
        figures = {
            m: plot_robustness(self.rows, os.path.join(self.folder, f"robustness_{m}.png"), m, self.theory, title)
            for m in ("psnr", "ssim")
        }
        step = trainer.global_step
        if isinstance(trainer.logger, TensorBoardLogger):
            for metric, fig in figures.items():
                trainer.logger.experiment.add_figure(f"robustness/{metric}", fig, step)
            text = summary_markdown(self.rows, "psnr", self.theory) + "\n\n" + table_markdown(self.rows, "psnr")
            trainer.logger.experiment.add_text("robustness/table", text, step)
        import matplotlib.pyplot as plt

        for fig in figures.values():
            plt.close(fig)
        scalars = {}
        for metric in ("psnr", "ssim"):
            for entry in summary(self.rows, metric):
                scalars[f"robustness/{entry['noise']}/{metric}_average"] = entry[f"{metric}_average"]
                scalars[f"robustness/{entry['noise']}/{metric}_worst"] = entry[f"{metric}_worst"]
        rank_zero_info(
            f"NoiseRobustness ({split}, {inputs.shape[0]} images): {paths['md']}\n"
            + summary_markdown(self.rows, "psnr", self.theory)
        )
        return scalars
