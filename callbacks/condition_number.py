"""The generator's condition numbers MC and TTMC (RNI paper, Eq. 19, Table 2), logged under ``metrics/``.

See :mod:`evaluation.condition_number` for the estimator and the choices it makes.  This
callback evaluates it at the end of every n-th validation and at test, on the EMA generator
by default, and logs ``metrics/mc`` and ``metrics/ttmc``.

Under DDP the work is split: the pairs come in fixed batches, each seeded by its index,
rank r evaluates batches r, r + world_size, ..., and every rank gathers all values.  So the
numbers do not depend on the number of processes, and every rank logs the same values.
Rank 0 also logs their distribution, as a TensorBoard histogram of log10 C
(``metrics/log10_condition_number``).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from tqdm import tqdm

from evaluation.condition_number import condition_numbers, mc_ttmc, rendering_network

__all__ = ["ConditionNumber"]


class ConditionNumber(Callback):
    """MC and TTMC of the generator (seed paper "On noise injection in GANs", Table 2).

    Works with any GAN module that has ``noise`` and ``generate(z, ema=..., noise_mode=...)``
    (``space: z``), and, for ``space: w``, ``mapping(z, ema=...)`` and
    ``synthesize(ws, ema=..., noise_mode=...)`` (e.g. :class:`~lightning_modules.RNIStyleGAN2`).

    Args:
        num_samples: pairs (x, dx); the paper uses 50,000.
        space: where x and dx live: ``z`` (the noise) or ``w`` (w+, the mapping network's
            output for every style input; StyleGAN2 only, as in the authors' code).
        perturbation_std: standard deviation of dx ~ N(0, s^2 I) (1e-4, the authors' code).
        noise_mode: the injected noise, the same for G(x) and G(x + dx) in every mode:
            ``per_batch`` (the authors' code: one fresh map per layer for every batch of
            ``batch_size`` pairs, shared by its samples; seeded by ``seed`` and the batch index),
            ``const`` (the generator's one fixed map for every pair), ``random`` (fresh
            per-sample noise, replayed for the perturbed input) or ``none`` (no noise).
        crop: measure on the face crop (rows 3/8..7/8, columns 2/8..6/8; the authors' code
            and StyleGAN's PPL on FFHQ); off for scenes.
        top_fraction: TTMC averages the largest round(top_fraction * N) values
            (1000 / 50,000 = 0.02 in the paper).
        batch_size: pairs per generator call.
        every_n_epochs: evaluate at every n-th validation (sanity checks do not count).
        ema: use the generator's EMA weights.
        seed: seed of x and dx: the same pairs for every model.
    """

    def __init__(
        self,
        num_samples: int = 50_000,
        space: Literal["z", "w"] = "w",
        perturbation_std: float = 1e-4,
        noise_mode: Literal["per_batch", "const", "random", "none"] = "per_batch",
        crop: bool = False,
        top_fraction: float = 0.02,
        batch_size: int = 250,
        every_n_epochs: int = 1,
        ema: bool = True,
        seed: int = 0,
    ) -> None:
        if num_samples < 1 or batch_size < 1 or every_n_epochs < 1:
            raise ValueError("ConditionNumber: num_samples, batch_size and every_n_epochs must be >= 1")
        if space not in ("z", "w"):
            raise ValueError(f"ConditionNumber.space must be z or w, got {space!r}")
        if noise_mode not in ("per_batch", "const", "random", "none"):
            raise ValueError(
                f"ConditionNumber.noise_mode must be per_batch, const, random or none, got {noise_mode!r}"
            )
        if not perturbation_std > 0 or not 0 < top_fraction <= 1:
            raise ValueError(
                f"ConditionNumber: need perturbation_std > 0 and 0 < top_fraction <= 1, got {perturbation_std}, "
                f"{top_fraction}"
            )
        self.num_samples, self.space, self.perturbation_std = num_samples, space, perturbation_std
        self.noise_mode, self.top_fraction, self.batch_size = noise_mode, top_fraction, batch_size
        self.every_n_epochs, self.ema, self.seed, self.crop = every_n_epochs, ema, seed, crop
        self.last: dict[str, float] = {}
        #: All condition numbers of the last evaluation (float64, CPU).
        self.values: Optional[torch.Tensor] = None
        self._validations = 0

    def hparams_metrics(self) -> list[str]:
        """The tags of the metrics it logs, which a run's TensorBoard hparams session lists as its metrics."""
        return ["metrics/mc", "metrics/ttmc"]

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        needs = ["noise", "generate"] + (["mapping", "synthesize"] if self.space == "w" else [])
        missing = [name for name in needs if not hasattr(pl_module, name)]
        if missing:
            raise TypeError(
                f"ConditionNumber(space={self.space!r}) needs a model with {', '.join(needs)}; "
                f"{type(pl_module).__name__} has no {', '.join(missing)}"
            )
        if self.space == "w" and not getattr(pl_module, "has_w_space", True):
            raise ValueError(
                "ConditionNumber.space is w but the model has no w space (e.g. backbone dcgan): use space: z"
            )

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_epochs == 0:
            self.evaluate(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = int(state_dict.get("validations", 0))

    # ------------------------------------------------------------------ computation
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Compute MC/TTMC (this rank's share, then gathered) and log them."""
        num_samples = self.num_samples
        if trainer.fast_dev_run:  # a code-path check: one batch
            num_samples = min(num_samples, self.batch_size)
            rank_zero_info(f"ConditionNumber: {num_samples} pairs under fast_dev_run")
        num_batches = -(-num_samples // self.batch_size)
        world, rank = trainer.world_size, trainer.global_rank
        mine = list(range(rank, num_batches, world))
        progress = trainer.is_global_zero and trainer.progress_bar_callback is not None
        values = self._compute(pl_module, mine, num_samples, progress)
        if world > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, values)
            values = {b: v for part in gathered for b, v in part.items()}
        allv = torch.cat([values[b] for b in range(num_batches)])
        mc, ttmc = mc_ttmc(allv, self.top_fraction)
        self.last = {"metrics/mc": mc, "metrics/ttmc": ttmc}
        self.values = allv
        for name, value in self.last.items():
            pl_module.log(name, value, sync_dist=False, rank_zero_only=False)
        if trainer.is_global_zero:  # the distribution, not only its mean and tail
            step = trainer.fit_loop.epoch_loop._batches_that_stepped
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_histogram("metrics/log10_condition_number", allv.log10(), global_step=step)
        return self.last

    def _compute(
        self, pl_module: LightningModule, batches: list[int], num_samples: int, progress: bool
    ) -> dict[int, torch.Tensor]:
        was_training = pl_module.training
        pl_module.eval()
        replay = self.noise_mode == "random"
        # per_batch: fresh fixed maps in the network that renders, read through noise_mode="const".
        net_mode = "const" if self.noise_mode == "per_batch" else self.noise_mode
        redraw = rendering_network(pl_module, self.ema) if self.noise_mode == "per_batch" else None
        device = pl_module.device

        def sample_z(n: int, g: torch.Generator) -> torch.Tensor:
            return pl_module.noise.sample(n, generator=g).to(device)

        if self.space == "w":

            def sample_x(n: int, g: torch.Generator) -> torch.Tensor:
                return pl_module.mapping(sample_z(n, g), ema=self.ema)

            def f(x: torch.Tensor) -> torch.Tensor:
                return pl_module.synthesize(x, ema=self.ema, noise_mode=net_mode)

        else:
            sample_x = sample_z

            def f(x: torch.Tensor) -> torch.Tensor:
                return pl_module.generate(x, ema=self.ema, noise_mode=net_mode)

        out = {}
        try:
            with torch.no_grad():
                for b in tqdm(batches, desc="condition number", disable=not progress, leave=False):
                    n = min(self.batch_size, num_samples - b * self.batch_size)
                    out[b] = condition_numbers(
                        f,
                        sample_x,
                        n,
                        perturbation_std=self.perturbation_std,
                        batch_size=n,
                        seed=self.seed * 1_000_003 + b,
                        replay_rng=replay,
                        device=device,
                        crop=self.crop,
                        redraw_noise=redraw,
                    )
        finally:
            pl_module.train(was_training)
        return out
