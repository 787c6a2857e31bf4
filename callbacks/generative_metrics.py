"""FID, KID and precision/recall of the generator, at validation and test, logged under ``metrics/``.

* FID, the Fréchet distance between Gaussians fitted to real and generated features
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local
  Nash equilibrium"); torchmetrics' ``FrechetInceptionDistance``.
* KID, the unbiased squared MMD with the cubic polynomial kernel, averaged over random
  subsets (Bińkowski et al. 2018, "Demystifying MMD GANs"); torchmetrics'
  ``KernelInceptionDistance``. Unlike FID it is unbiased, so it can be compared across
  sample sizes.
* Improved precision and recall (Kynkäänniemi et al. 2019), k-NN manifolds of the
  features: :mod:`evaluation.precision_recall`.

The feature space is pluggable (:mod:`evaluation.features`): the FID Inception-v3, or the
project's own classifier. Logged values are ``metrics/fid``, ``metrics/kid_mean``,
``metrics/kid_std``, ``metrics/precision``, ``metrics/recall`` and (with ``ppl_samples``)
``metrics/ppl[<distance>]`` -- the distance in the tag (``lpips-vgg``, the published
one, or the offline ``inception-l2`` / ``classifier-l2``; :meth:`GenerativeMetrics.ppl_tag`), so a
number is never read without it -- so e.g.
``ModelCheckpoint(monitor="metrics/fid", mode="min")`` keeps the best generator.

Real features are computed once and cached on disk (see :meth:`GenerativeMetrics.cache_key`);
generated images come from fixed-seed noise, so two evaluations of the same weights give
the same numbers. Under DDP everything runs on global rank zero and the numbers are
broadcast, so every rank logs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from typing import Any, Literal, Optional

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from callbacks.rank_zero import compute_on_rank_zero
from core.io import atomic_write as _atomic_write
from evaluation.condition_number import redraw_noise_maps, rendering_network
from evaluation.features import FeatureExtractorUnavailable, PrecomputedFeatures, build_feature_extractor
from evaluation.ppl import FeatureDistance, LPIPSDistance, distance_label, perceptual_path_length
from evaluation.precision_recall import precision_recall

__all__ = ["CACHE_ENV", "PPL_TAG", "GenerativeMetrics", "split_distance_tag"]

#: PPL's tag before its distance: logged as ``metrics/ppl[<distance>]``.
PPL_TAG = "metrics/ppl"


def split_distance_tag(tag: str) -> tuple[str, Optional[str]]:
    """``"metrics/ppl[lpips-vgg]"`` -> ``("metrics/ppl", "lpips-vgg")``; a tag without brackets -> ``(tag, None)``."""
    if tag.endswith("]") and "[" in tag:
        base, label = tag[:-1].split("[", 1)
        return base, label
    return tag, None

#: Environment variable: root of the project's caches (real features go to ``$NOISE_GANS_CACHE/real_features``).
CACHE_ENV = "NOISE_GANS_CACHE"
DEFAULT_CACHE_ROOT = os.path.join("~", ".cache", "noise-gans")
#: Bumped when the cache file's layout or the way features are computed changes.
CACHE_FORMAT = 1
#: Datamodule arguments that change how data is loaded, not which images: left out of the cache key.
_NON_DATA_HPARAMS = frozenset({"batch_size", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor"})
_SPLIT_STAGE = {"train": "fit", "val": "validate", "test": "test"}
#: Seed of the random subset of real images taken when ``max_real`` is smaller than the split.
_REAL_SUBSET_SEED = 0


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its repr without memory addresses (stable across runs)."""
    try:
        json.dumps(value, sort_keys=True)
        return value
    except (TypeError, ValueError):
        return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


class GenerativeMetrics(Callback):
    """FID, KID and improved precision/recall of generated images against a real split.

    Works with any LightningModule that has ``noise`` (a NoiseSpec) and
    ``generate(z, ema=...)`` returning images in [-1, 1], e.g. every ``AdversarialModule``.
    Needs a datamodule (the real images come from ``<real_split>_set``, or the dataset of
    ``<real_split>_dataloader()``).

    Args:
        num_samples: generated images per evaluation. The papers report FID with 50,000
            samples (FID is biased upwards with fewer, so compare numbers only at equal
            ``num_samples``); the CPU configs use a few thousand.
        every_n_epochs: evaluate at the end of every n-th validation (sanity checks do not
            count); ``train.py test`` always evaluates.
        feature_extractor: the feature space: ``inception`` (the FID Inception-v3 of the
            papers) or ``classifier`` (the project's Classifier; needs ``feature_path``).
        feature_path: weights of the extractor: the Inception file
            ``weights-inception-2015-12-05-6726825d.pth`` (without it: the torch.hub cache, or
            a download), or the Classifier checkpoint.
        real_split: the datamodule split the real features come from.
        max_real: use at most this many real images (a fixed random subset); null: all.
        kid_subset_size: images per KID subset (lowered, with a warning, to the number of
            samples when there are fewer).
        kid_subsets: number of KID subsets; ``metrics/kid_std`` is the spread over them.
        precision_recall: also log improved precision and recall.
        pr_k: the k of the k-NN radii for precision/recall (3 in the paper).
        pr_max_samples: at most this many real and as many generated features enter
            precision/recall (its cost grows with the square of the count).
        batch_size: images per batch, for the generator and for the feature extractor.
        ema: use the generator's EMA weights (where the method has them).
        seed: seed of the generated noise (and of KID's subsets): same weights, same numbers.
        cache_dir: folder of the cached real features; null: ``$NOISE_GANS_CACHE/real_features``
            if that variable is set, else ``~/.cache/noise-gans/real_features``.
        ppl_samples: latent pairs for the perceptual path length ``metrics/ppl[<distance>]`` (StyleGAN
            Sec. 3.2, :func:`evaluation.ppl.perceptual_path_length`; the paper uses 100,000);
            0 turns it off.
        ppl_sampling: ``full`` (t ~ U(0, 1)) or ``end`` (t = 0) paths.
        ppl_epsilon: the path step (1e-4 in the paper).
        ppl_lpips_path: LPIPS backbone weights for the paper's distance (tag
            ``metrics/ppl[lpips-vgg]``); null: squared L2 between the feature extractor's
            features (works offline, but the numbers are then not comparable to published PPL;
            tag ``metrics/ppl[inception-l2]`` or ``metrics/ppl[classifier-l2]``).
        ppl_space: ``z`` (l_Z, through the whole generator) or ``w`` (l_W, StyleGAN's Eq. 3:
            lerp between mapped latents through the synthesis network; needs a model with
            ``mapping(z, ema=...)`` and ``synthesize(ws, ema=...)``, e.g. RNIStyleGAN2).
        ppl_crop: measure PPL on the face crop (rows 3/8..7/8, columns 2/8..6/8;
            :func:`evaluation.ppl.face_crop`), as StyleGAN's PPL does on FFHQ.
        ppl_noise_mode: the injected noise, always the same for both ends of a step: ``const``
            (the generator's one fixed map for every pair) or ``per_batch`` (StyleGAN's PPL: one
            fresh map per layer for every batch of pairs, seeded by ``seed``;
            :func:`evaluation.condition_number.redraw_noise_maps`).
    """

    def __init__(
        self,
        num_samples: int = 50000,
        every_n_epochs: int = 1,
        feature_extractor: Literal["inception", "classifier"] = "inception",
        feature_path: Optional[str] = None,
        real_split: Literal["train", "val", "test"] = "train",
        max_real: Optional[int] = None,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        precision_recall: bool = True,
        pr_k: int = 3,
        pr_max_samples: int = 10000,
        batch_size: int = 250,
        ema: bool = True,
        seed: int = 0,
        cache_dir: Optional[str] = None,
        ppl_samples: int = 0,
        ppl_sampling: Literal["full", "end"] = "end",
        ppl_epsilon: float = 1e-4,
        ppl_lpips_path: Optional[str] = None,
        ppl_space: Literal["z", "w"] = "z",
        ppl_crop: bool = False,
        ppl_noise_mode: Literal["const", "per_batch"] = "const",
    ) -> None:
        checks = {
            "num_samples": (num_samples, 2),
            "every_n_epochs": (every_n_epochs, 1),
            "kid_subset_size": (kid_subset_size, 2),
            "kid_subsets": (kid_subsets, 1),
            "pr_k": (pr_k, 1),
            "batch_size": (batch_size, 1),
        }
        for name, (value, low) in checks.items():
            if value < low:
                raise ValueError(f"GenerativeMetrics.{name} must be >= {low}, got {value}")
        if ppl_samples < 0 or ppl_epsilon <= 0 or ppl_sampling not in ("full", "end"):
            raise ValueError(
                "GenerativeMetrics: ppl_samples must be >= 0, ppl_epsilon > 0 and ppl_sampling full or end; "
                f"got {ppl_samples}, {ppl_epsilon}, {ppl_sampling!r}"
            )
        if ppl_noise_mode not in ("const", "per_batch"):
            raise ValueError(f"GenerativeMetrics.ppl_noise_mode must be const or per_batch, got {ppl_noise_mode!r}")
        if ppl_space not in ("z", "w"):
            raise ValueError(f"GenerativeMetrics.ppl_space must be z or w, got {ppl_space!r}")
        if max_real is not None and max_real < 2:
            raise ValueError(f"GenerativeMetrics.max_real must be >= 2 or null, got {max_real}")
        if precision_recall and min(pr_max_samples, num_samples) <= pr_k:
            raise ValueError(
                f"GenerativeMetrics: precision/recall needs more than pr_k={pr_k} samples; "
                f"num_samples={num_samples}, pr_max_samples={pr_max_samples}"
            )
        if feature_extractor not in ("inception", "classifier"):
            raise ValueError(
                f"GenerativeMetrics.feature_extractor must be inception or classifier, got {feature_extractor!r}"
            )
        if real_split not in _SPLIT_STAGE:
            raise ValueError(f"GenerativeMetrics.real_split must be train, val or test, got {real_split!r}")
        self.num_samples, self.every_n_epochs = num_samples, every_n_epochs
        self.feature_extractor, self.feature_path = feature_extractor, feature_path
        self.real_split, self.max_real = real_split, max_real
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.precision_recall, self.pr_k, self.pr_max_samples = precision_recall, pr_k, pr_max_samples
        self.batch_size, self.ema, self.seed, self.cache_dir = batch_size, ema, seed, cache_dir
        self.ppl_samples, self.ppl_sampling, self.ppl_epsilon = ppl_samples, ppl_sampling, ppl_epsilon
        self.ppl_lpips_path, self.ppl_space, self.ppl_crop = ppl_lpips_path, ppl_space, ppl_crop
        self.ppl_noise_mode = ppl_noise_mode
        self._ppl_distance: Optional[nn.Module] = None

        #: The feature extractor (built in ``setup`` on global rank zero; may be assigned before).
        self.extractor: Optional[nn.Module] = None
        #: The values of the last evaluation, by logged name.
        self.last: dict[str, float] = {}
        #: Real images pushed through the extractor by this callback (stays 0 on a cache hit).
        self.real_images_extracted = 0
        #: The cache file of the current real features, and whether it was read (True) or written (False).
        self.real_cache_path: Optional[str] = None
        self.real_cache_hit: Optional[bool] = None
        self._real: Optional[torch.Tensor] = None
        self._real_key: Optional[str] = None
        self._metrics: Optional[tuple[Any, Any]] = None
        self._metrics_for: Optional[tuple[torch.Tensor, torch.device]] = None
        self._validations = 0
        self._warned_kid = False

    # ------------------------------------------------------------------ configuration
    @property
    def cache_root(self) -> str:
        """The folder of the cached real features."""
        if self.cache_dir is not None:
            return os.path.expanduser(self.cache_dir)
        root = os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT
        return os.path.join(os.path.expanduser(root), "real_features")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Build the extractor before any training, so a missing weights file fails at once."""
        if stage not in ("fit", "validate", "test"):
            return
        missing = [name for name in ("noise", "generate") if not hasattr(pl_module, name)]
        if missing:
            raise TypeError(
                f"GenerativeMetrics needs a model with `noise` and `generate(z, ema=...)` (a GAN method); "
                f"{type(pl_module).__name__} has no {', '.join(missing)}"
            )
        if self.ppl_samples and self.ppl_space == "w" and not (
            hasattr(pl_module, "mapping") and getattr(pl_module, "has_w_space", False)
        ):
            raise ValueError(
                f"GenerativeMetrics.ppl_space is w but {type(pl_module).__name__} has no w space "
                "(mapping/synthesize, e.g. RNIStyleGAN2 with backbone stylegan2): use ppl_space: z"
            )
        if self.extractor is not None:
            self._check_extractor(self.extractor)
            return
        error: Optional[BaseException] = None
        if trainer.is_global_zero:
            try:
                self.extractor = build_feature_extractor(self.feature_extractor, self.feature_path)
                self._check_extractor(self.extractor)
            except Exception as err:  # every rank must learn of it, or the others hang in the next collective
                error = err
        message = trainer.strategy.broadcast(None if error is None else str(error), src=0)
        if error is not None:
            raise error
        if message is not None:
            raise FeatureExtractorUnavailable(message)

    @staticmethod
    def _check_extractor(extractor: nn.Module) -> None:
        if not isinstance(getattr(extractor, "num_features", None), int) or not isinstance(
            getattr(extractor, "identity", None), str
        ):
            raise TypeError(
                f"GenerativeMetrics: the feature extractor {type(extractor).__name__} needs an int `num_features` "
                "and a str `identity` (see evaluation.features)"
            )

    def hparams_metrics(self) -> list[str]:
        """The tags of the metrics it logs, which a run's TensorBoard hparams session lists as its metrics."""
        names = ["metrics/fid", "metrics/kid_mean"]
        if self.precision_recall:
            names += ["metrics/precision", "metrics/recall"]
        return names + ([self.ppl_tag()] if self.ppl_samples else [])

    def ppl_distance_label(self) -> str:
        """The distance PPL is measured with: ``lpips-vgg`` with ``ppl_lpips_path``, else ``<extractor>-l2``."""
        if self._ppl_distance is not None:
            return distance_label(self._ppl_distance)
        if self.ppl_lpips_path:
            return "lpips-vgg"
        if self.extractor is not None:
            return FeatureDistance(self.extractor).label
        return f"{self.feature_extractor}-l2"

    def ppl_tag(self) -> str:
        """The logged name of PPL, with its distance: ``metrics/ppl[lpips-vgg]``, ``metrics/ppl[inception-l2]``, ..."""
        return f"{PPL_TAG}[{self.ppl_distance_label()}]"

    # ------------------------------------------------------------------ Lightning hooks
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._skip_fast_dev_run(trainer):
            return
        self._validations += 1
        if self._validations % self.every_n_epochs == 0:
            self._evaluate(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._skip_fast_dev_run(trainer):
            self._evaluate(trainer, pl_module)

    def _skip_fast_dev_run(self, trainer: Trainer) -> bool:
        """``fast_dev_run`` checks the code path in seconds: no 50k samples then (the extractor is still built)."""
        if trainer.fast_dev_run:
            rank_zero_info("GenerativeMetrics: skipped under fast_dev_run")
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = int(state_dict.get("validations", 0))

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute on global rank zero, broadcast, log on every rank (so any rank's ModelCheckpoint sees it)."""
        payload = compute_on_rank_zero(trainer, lambda: self.compute(trainer, pl_module), "GenerativeMetrics")
        for name, value in payload.items():
            pl_module.log(name, value, sync_dist=False, rank_zero_only=False, prog_bar=name == "metrics/fid")
        self.last = dict(payload)

    # ------------------------------------------------------------------ the computation
    def compute(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """All metrics for the current weights of ``pl_module`` (no logging, no collectives)."""
        if self.extractor is None:
            self.extractor = build_feature_extractor(self.feature_extractor, self.feature_path)
            self._check_extractor(self.extractor)
        # Moved outside inference mode, so its parameters stay ordinary tensors.
        self.extractor.to(pl_module.device)
        progress = trainer.is_global_zero and trainer.progress_bar_callback is not None
        with torch.inference_mode():
            real = self.real_features(trainer, progress=progress)
            fake = self.fake_features(pl_module, progress=progress)
            values = self.metrics_from_features(real, fake)
            if self.ppl_samples:
                values[self.ppl_tag()] = self.perceptual_path_length(pl_module)
            return values

    def perceptual_path_length(self, pl_module: LightningModule) -> float:
        """PPL of the generator in z or w (StyleGAN Sec. 3.2), with the distance ``ppl_lpips_path`` selects."""
        if self._ppl_distance is None:
            self._ppl_distance = (
                LPIPSDistance(self.ppl_lpips_path) if self.ppl_lpips_path else FeatureDistance(self.extractor)
            )
        self._ppl_distance.to(pl_module.device)
        # Injected noise held fixed along the path (StyleGAN's PPL renders with fixed maps, which it
        # redraws per minibatch): otherwise two fresh noise draws, not the step in the latent, would
        # dominate the distance.  Both ends of a step are rendered in one call, so see the same maps.
        net = rendering_network(pl_module, self.ema) if self.ppl_noise_mode == "per_batch" else None
        noise_rng = torch.Generator().manual_seed(self.seed + 1)

        def render(draw, latents: torch.Tensor) -> torch.Tensor:
            if net is None:
                return self._to_extractor(draw(latents))
            with redraw_noise_maps(net, noise_rng):
                return self._to_extractor(draw(latents))

        if self.ppl_space == "w":
            space = dict(
                space="w",
                mapping=lambda z: pl_module.mapping(z, ema=self.ema),
                generate=lambda ws: render(lambda x: pl_module.synthesize(x, ema=self.ema, noise_mode="const"), ws),
            )
        else:
            space = dict(
                space="z",
                generate=lambda z: render(lambda x: pl_module.generate(x, ema=self.ema, noise_mode="const"), z),
            )
        was_training = pl_module.training
        pl_module.eval()
        try:
            mean, _ = perceptual_path_length(
                sample_z=lambda n, g: pl_module.noise.sample(n, generator=g).to(pl_module.device),
                distance=self._ppl_distance,
                num_samples=self.ppl_samples,
                epsilon=self.ppl_epsilon,
                sampling=self.ppl_sampling,
                # slerp assumes Gaussian noise (the paper's); uniform and discrete noise move on lines.
                interpolation=None if pl_module.noise.distribution == "gaussian" or self.ppl_space == "w" else "lerp",
                batch_size=self.batch_size,
                seed=self.seed,
                crop=self.ppl_crop,
                **space,
            )
        finally:
            pl_module.train(was_training)
        return float(mean)

    def _to_extractor(self, images: torch.Tensor) -> torch.Tensor:
        device = next(iter(self.extractor.parameters()), torch.empty(0)).device if self.extractor else images.device
        return images.to(device=device, dtype=torch.float32)

    def _extract(self, images: torch.Tensor) -> torch.Tensor:
        """Features of images in [-1, 1] (any float dtype; float32 on the extractor's device)."""
        assert self.extractor is not None
        device = next(iter(self.extractor.parameters()), torch.empty(0)).device
        images = images.to(device=device, dtype=torch.float32)
        with torch.autocast(device_type=device.type, enabled=False):
            return self.extractor(images).float()

    def fake_features(self, pl_module: LightningModule, progress: bool = False) -> torch.Tensor:
        """Features of ``num_samples`` images generated from noise seeded by ``seed``, [num_samples, F]."""
        generator = torch.Generator().manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        features = []
        try:
            for start in tqdm(
                range(0, self.num_samples, self.batch_size),
                desc="GenerativeMetrics: generated images",
                disable=not progress,
                leave=False,
            ):
                count = min(self.batch_size, self.num_samples - start)
                z = pl_module.noise.sample(count, generator=generator)  # drawn on CPU: same noise on any device
                features.append(self._extract(pl_module.generate(z, ema=self.ema)))
        finally:
            pl_module.train(was_training)
        return torch.cat(features)

    @torch.inference_mode()
    def metrics_from_features(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """FID, KID (and precision/recall) of generated features ``fake`` against ``real``, by logged name."""
        device = fake.device
        if real.shape[0] < 2 or fake.shape[0] < 2:
            raise ValueError(
                f"GenerativeMetrics needs at least 2 real and 2 generated images, got {real.shape[0]} real "
                f"({self.real_split} split) and {fake.shape[0]} generated"
            )
        fid, kid = self._torchmetrics(real, device)
        fid.update(fake, real=False)
        kid.update(fake, real=False)
        values = {"metrics/fid": float(fid.compute())}
        subset = min(self.kid_subset_size, real.shape[0], fake.shape[0])
        if subset < self.kid_subset_size and not self._warned_kid:
            rank_zero_warn(
                f"GenerativeMetrics.kid_subset_size={self.kid_subset_size} is more than the samples "
                f"({real.shape[0]} real, {fake.shape[0]} generated): KID uses subsets of {subset}. "
                "Raise num_samples / max_real or lower kid_subset_size."
            )
            self._warned_kid = True
        kid.subset_size = subset
        with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global CPU generator
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        values["metrics/kid_mean"], values["metrics/kid_std"] = float(kid_mean), float(kid_std)
        fid.reset()  # the fake states only: reset_real_features=False keeps the real ones for next time
        kid.reset()
        if self.precision_recall:
            if real.shape[0] > self.pr_max_samples:
                generator = torch.Generator().manual_seed(self.seed)
                real = real[torch.randperm(real.shape[0], generator=generator)[: self.pr_max_samples]]
            fake = fake[: self.pr_max_samples]  # i.i.d. already
            if min(real.shape[0], fake.shape[0]) <= self.pr_k:
                raise ValueError(
                    f"GenerativeMetrics.pr_k={self.pr_k} needs more samples than that: {real.shape[0]} real, "
                    f"{fake.shape[0]} generated"
                )
            precision, recall = precision_recall(real.to(device), fake, k=self.pr_k)
            values["metrics/precision"], values["metrics/recall"] = precision, recall
        return values

    def _torchmetrics(self, real: torch.Tensor, device: torch.device) -> tuple[Any, Any]:
        """FID and KID metrics whose real states hold ``real``; kept while ``real`` and the device stay."""
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        if self._metrics is not None and self._metrics_for[0] is real and self._metrics_for[1] == device:
            return self._metrics
        identity = PrecomputedFeatures(real.shape[1])
        # sync_on_compute=False: only rank 0 computes; a gather there would wait for the other ranks forever.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
            fid = FrechetInceptionDistance(feature=identity, reset_real_features=False, sync_on_compute=False)
            kid = KernelInceptionDistance(
                feature=identity,
                subsets=self.kid_subsets,
                subset_size=self.kid_subset_size,
                reset_real_features=False,
                sync_on_compute=False,
            )
        fid, kid = fid.to(device), kid.to(device)
        for block in real.split(4096):
            block = block.to(device)
            fid.update(block, real=True)
            kid.update(block, real=True)
        # Holding `real` itself (not its id) makes the identity check above unambiguous.
        self._metrics, self._metrics_for = (fid, kid), (real, device)
        return self._metrics

    # ------------------------------------------------------------------ real features and their cache
    def _real_dataset(self, datamodule: LightningDataModule) -> Dataset:
        split = self.real_split
        for attempt in range(2):
            dataset = getattr(datamodule, f"{split}_set", None)
            if dataset is not None and callable(getattr(datamodule, "unaugmented", None)):
                dataset = datamodule.unaugmented(split)  # no random x-flips in the reference set
            if dataset is None:
                try:
                    dataset = getattr(datamodule, f"{split}_dataloader")().dataset
                except Exception:
                    dataset = None
            if dataset is not None:
                return dataset
            if attempt == 0:
                datamodule.setup(_SPLIT_STAGE[split])
        raise RuntimeError(
            f"GenerativeMetrics.real_split={split}: the datamodule {type(datamodule).__name__} has no "
            f"`{split}_set` and no `{split}_dataloader()` with a dataset"
        )

    def _real_subset(self, dataset: Dataset) -> Dataset:
        size = len(dataset)  # type: ignore[arg-type]
        if self.max_real is None or self.max_real >= size:
            return dataset
        generator = torch.Generator().manual_seed(_REAL_SUBSET_SEED)
        indices = torch.randperm(size, generator=generator)[: self.max_real].sort().values
        return Subset(dataset, indices.tolist())

    def cache_key(self, datamodule: LightningDataModule, dataset: Dataset) -> dict[str, Any]:
        """What the real features depend on: the data (class, arguments, split, size), ``max_real``, the extractor.

        Loader-only arguments (batch size, workers) are left out. A dataset changed on disk
        under the same arguments is not detected: delete the cache folder then.
        """
        assert self.extractor is not None
        cls = type(datamodule)
        hparams = dict(getattr(datamodule, "hparams", {}) or {})
        return {
            "format": CACHE_FORMAT,
            "datamodule": f"{cls.__module__}.{cls.__qualname__}",
            "hparams": {k: _jsonable(v) for k, v in sorted(hparams.items()) if k not in _NON_DATA_HPARAMS},
            "split": self.real_split,
            "split_size": len(dataset),  # type: ignore[arg-type]
            "max_real": self.max_real,
            "real_subset_seed": _REAL_SUBSET_SEED,
            "extractor": self.extractor.identity,
        }

    def real_features(self, trainer: Trainer, progress: bool = False) -> torch.Tensor:
        """Features of the real split, [N, F] float32 on CPU: from memory, the disk cache, or computed (and cached)."""
        datamodule = trainer.datamodule
        if datamodule is None:
            raise RuntimeError(
                "GenerativeMetrics reads real images from a LightningDataModule (`data:` in the config); "
                "this run has none"
            )
        dataset = self._real_dataset(datamodule)
        key_json = json.dumps(self.cache_key(datamodule, dataset), sort_keys=True)
        key = hashlib.sha256(key_json.encode()).hexdigest()
        if self._real is not None and self._real_key == key:
            return self._real
        path = os.path.join(self.cache_root, f"{key}.pt")
        features = self._load_cache(path, key_json)
        self.real_cache_hit = features is not None
        if features is None:
            workers = getattr(datamodule, "num_workers", 0)
            workers = workers if isinstance(workers, int) else 0
            features = self._extract_real(self._real_subset(dataset), workers, progress)
            self._save_cache(path, key_json, features)
        self.real_cache_path = path
        self._real, self._real_key = features, key
        return features

    def _extract_real(self, dataset: Dataset, num_workers: int, progress: bool) -> torch.Tensor:
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=num_workers)
        features = []
        for batch in tqdm(loader, desc="GenerativeMetrics: real images", disable=not progress, leave=False):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            if images.dtype == torch.uint8:  # 0..255 -> [-1, 1]
                images = images.float().div(127.5).sub(1.0)
            features.append(self._extract(images).cpu())
            self.real_images_extracted += images.shape[0]
        return torch.cat(features).float().contiguous()

    def _load_cache(self, path: str, key_json: str) -> Optional[torch.Tensor]:
        if not os.path.exists(path):
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            features = blob["features"]
            valid = (
                blob.get("key") == key_json
                and isinstance(features, torch.Tensor)
                and features.dim() == 2
                and features.dtype == torch.float32
                and features.shape[1] == self.extractor.num_features  # type: ignore[union-attr]
                and bool(torch.isfinite(features).all())
            )
            if not valid:
                raise ValueError("its content does not match the expected real features")
        except Exception as err:
            rank_zero_warn(f"GenerativeMetrics: ignoring the unreadable real-feature cache {path} ({err}); recomputing")
            return None
        rank_zero_info(f"GenerativeMetrics: {features.shape[0]} real features from the cache {path}")
        return features

    def _save_cache(self, path: str, key_json: str, features: torch.Tensor) -> None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            blob = {"format": CACHE_FORMAT, "key": key_json, "features": features}
            _atomic_write(path, lambda tmp: torch.save(blob, tmp))

            def write_json(tmp: str) -> None:
                with open(tmp, "w") as handle:
                    json.dump(json.loads(key_json), handle, indent=2, sort_keys=True)
                    handle.write("\n")

            _atomic_write(path[: -len(".pt")] + ".json", write_json)
        except OSError as err:
            rank_zero_warn(f"GenerativeMetrics: could not write the real-feature cache {path} ({err}); continuing")
            return
        rank_zero_info(f"GenerativeMetrics: cached {features.shape[0]} real features in {path}")
