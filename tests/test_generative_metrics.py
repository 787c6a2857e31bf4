"""GenerativeMetrics (FID, KID, precision/recall), its feature extractors and its real-feature cache.

Small sets and tiny random-init extractors: the numbers are checked against their
definitions, not against published values.
"""

import importlib.util
import json
import math
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import callbacks.generative_metrics as gm
from callbacks.generative_metrics import GenerativeMetrics
from core.io import file_sha256
from core.noise import NoiseSpec
from datamodules import DigitsDataModule
from evaluation import features as feats
from evaluation.features import (
    INCEPTION_URL,
    ClassifierFeatures,
    FeatureExtractor,
    FeatureExtractorUnavailable,
    InceptionFeatures,
    build_feature_extractor,
)
from evaluation.precision_recall import knn_radii, precision_recall
from lightning_modules import NoiseDimGAN


class TinyConvFeatures(FeatureExtractor):
    """A random-init conv net, fixed by ``seed``: a cheap stand-in for Inception."""

    def __init__(self, num_features: int = 16, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(1, 8, 3, stride=2, padding=1),
                nn.Tanh(),
                nn.Conv2d(8, num_features, 3, stride=2, padding=1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
        self.num_features = num_features
        self.identity = f"tiny-conv:{num_features}:{seed}"
        self._freeze()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float().mean(dim=1, keepdim=True))


@pytest.fixture(autouse=True)
def _no_cache_in_home(tmp_path, monkeypatch):
    """Nothing here may write to ~/.cache."""
    monkeypatch.setenv(gm.CACHE_ENV, str(tmp_path / "default_cache"))


def _metrics(**kwargs) -> GenerativeMetrics:
    defaults = dict(num_samples=200, kid_subset_size=100, kid_subsets=50, precision_recall=False)
    return GenerativeMetrics(**{**defaults, **kwargs})


# ---------------------------------------------------------------------------------- FID and KID
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    real = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    cb = _metrics()
    assert abs(cb.metrics_from_features(real, real.clone())["metrics/fid"]) < 1e-3
    fids = [cb.metrics_from_features(real, real + shift)["metrics/fid"] for shift in (0.25, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[0] > 0
    # Same covariance, means apart by `shift` in each of 8 dimensions: FID = 8 shift^2 exactly.
    assert fids == pytest.approx([8 * s**2 for s in (0.25, 0.5, 1.0, 2.0)], rel=1e-3)


def test_kid_is_zero_for_the_same_distribution_and_positive_for_a_shifted_one():
    g = torch.Generator().manual_seed(1)
    real, same, shifted = (torch.randn(300, 8, generator=g) for _ in range(3))
    cb = _metrics()
    values = cb.metrics_from_features(real, same)
    assert abs(values["metrics/kid_mean"]) < 2 * values["metrics/kid_std"]
    far = cb.metrics_from_features(real, shifted + 1.0)
    assert far["metrics/kid_mean"] > 5 * far["metrics/kid_std"] > 0
    # Fixed seed: the same features give the same KID subsets, hence the same number.
    assert cb.metrics_from_features(real, same) == values


def test_kid_subset_size_larger_than_the_samples_is_clamped_with_one_warning():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g)
    cb = _metrics(kid_subset_size=1000)
    with pytest.warns(UserWarning, match="kid_subset_size=1000"):
        first = cb.metrics_from_features(real, fake)
    assert math.isfinite(first["metrics/kid_mean"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb.metrics_from_features(real, fake)  # warned once only


# ---------------------------------------------------------------------------------- precision / recall
def test_precision_recall_of_identical_sets_is_one():
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(3))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_precision_recall_of_a_hand_checked_1d_example():
    real = torch.tensor([[0.0], [1.0], [2.0], [4.0], [10.0]], dtype=torch.float64)
    fake = torch.tensor([[0.5], [3.0], [6.0], [7.0]], dtype=torch.float64)
    # k = 1 radii: reals 1, 1, 1, 2, 6; fakes 2.5, 2.5, 1, 1.
    assert knn_radii(real, k=1).tolist() == [1.0, 1.0, 1.0, 2.0, 6.0]
    assert knn_radii(fake, k=1).tolist() == [2.5, 2.5, 1.0, 1.0]
    # Every fake is in a real sphere (6 on the border of 4's, 7 in 10's); the real 10 is in no fake
    # sphere (7 reaches 8, 6 reaches 7).
    assert precision_recall(real, fake, k=1) == (1.0, 0.8)
    # Swapping the roles swaps the numbers (precision(R, G) = recall(G, R), Eq. 2).
    assert precision_recall(fake, real, k=1) == (0.8, 1.0)
    # k = 2: reals' radii 2, 1, 2, 3, 8 and fakes' 5.5, 3, 3, 4 cover everything.
    assert precision_recall(real, fake, k=2) == (1.0, 1.0)


def test_mode_collapse_keeps_precision_and_loses_recall():
    g = torch.Generator().manual_seed(4)
    centers = torch.tensor([[-6.0, 0.0], [6.0, 0.0]])
    real = torch.cat([centers[0] + torch.randn(150, 2, generator=g), centers[1] + torch.randn(150, 2, generator=g)])
    one_mode = centers[0] + torch.randn(300, 2, generator=g)
    precision, recall = precision_recall(real, one_mode)
    assert precision >= 0.9 and recall <= 0.6
    # All fakes equal to one real point: that point's sphere holds them all, and they cover only it.
    precision, recall = precision_recall(real, real[7].repeat(50, 1))
    assert precision == 1.0 and recall == pytest.approx(1 / 300)


def test_precision_recall_in_row_chunks_matches_one_block():
    g = torch.Generator().manual_seed(5)
    real, fake = torch.randn(130, 6, generator=g), torch.randn(90, 6, generator=g) * 1.3
    assert precision_recall(real, fake, chunk=17) == precision_recall(real, fake, chunk=4096)


def test_precision_recall_needs_more_points_than_k():
    with pytest.raises(ValueError, match="k=3"):
        precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)


# ---------------------------------------------------------------------------------- the cache
@pytest.fixture(scope="module")
def digits():
    dm = DigitsDataModule(resolution=8, batch_size=64)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def gan():
    torch.manual_seed(0)
    return NoiseDimGAN(noise=NoiseSpec(dim=8), resolution=8, channels=1, g_width=4, d_width=4)


def _trainer(datamodule):
    return SimpleNamespace(datamodule=datamodule, is_global_zero=True, progress_bar_callback=None)


def _cached_metrics(tmp_path, extractor, **kwargs):
    cb = _metrics(num_samples=64, batch_size=32, kid_subset_size=50, kid_subsets=5, real_split="val", **kwargs)
    cb.cache_dir = str(tmp_path / "cache")
    cb.extractor = extractor
    return cb


def test_real_features_are_computed_once_then_read_from_the_cache(tmp_path, digits, gan):
    trainer, n_val = _trainer(digits), len(digits.val_set)
    first = _cached_metrics(tmp_path, TinyConvFeatures())
    values = first.compute(trainer, gan)
    assert first.real_images_extracted == n_val and first.real_cache_hit is False
    cached = Path(first.real_cache_path)
    assert cached.is_file() and not list(cached.parent.glob("*.tmp-*"))
    key = json.loads(cached.with_suffix(".json").read_text())
    assert key["split"] == "val" and key["extractor"] == "tiny-conv:16:0"
    assert key["datamodule"] == "datamodules.digits.DigitsDataModule" and "batch_size" not in key["hparams"]

    # A second run (new callback, same settings): no real image goes through the extractor.
    second = _cached_metrics(tmp_path, TinyConvFeatures())
    assert second.compute(trainer, gan) == values
    assert second.real_images_extracted == 0 and second.real_cache_hit is True
    # The same callback evaluating again keeps the real features in memory.
    assert second.compute(trainer, gan) == values

    # Other extractor weights or other data arguments: a new key.
    other = _cached_metrics(tmp_path, TinyConvFeatures(seed=1))
    other.compute(trainer, gan)
    assert other.real_images_extracted == n_val and other.real_cache_path != first.real_cache_path
    fewer = _cached_metrics(tmp_path, TinyConvFeatures(), max_real=50)
    fewer.compute(trainer, gan)
    assert fewer.real_images_extracted == 50
    assert fewer.real_cache_path not in (first.real_cache_path, other.real_cache_path)


def test_a_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path, digits, gan):
    trainer = _trainer(digits)
    first = _cached_metrics(tmp_path, TinyConvFeatures())
    values = first.compute(trainer, gan)
    Path(first.real_cache_path).write_bytes(b"not a torch file")
    again = _cached_metrics(tmp_path, TinyConvFeatures())
    with pytest.warns(UserWarning, match="unreadable real-feature cache"):
        assert again.compute(trainer, gan) == pytest.approx(values)
    assert again.real_images_extracted == len(digits.val_set)
    # ... and the rewritten file is good again.
    third = _cached_metrics(tmp_path, TinyConvFeatures())
    third.compute(trainer, gan)
    assert third.real_images_extracted == 0


def test_cache_folder_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(gm.CACHE_ENV, str(tmp_path / "root"))
    assert GenerativeMetrics().cache_root == str(tmp_path / "root" / "real_features")
    assert GenerativeMetrics(cache_dir=str(tmp_path / "x")).cache_root == str(tmp_path / "x")
    monkeypatch.delenv(gm.CACHE_ENV)
    assert GenerativeMetrics().cache_root == os.path.expanduser("~/.cache/noise-gans/real_features")


def test_same_weights_give_the_same_numbers_and_the_generator_dtype_does_not_matter(tmp_path, digits, gan):
    trainer = _trainer(digits)
    cb = _cached_metrics(tmp_path, TinyConvFeatures(), precision_recall=True, pr_max_samples=64)
    values = cb.compute(trainer, gan)
    assert set(values) == {"metrics/fid", "metrics/kid_mean", "metrics/kid_std", "metrics/precision", "metrics/recall"}
    assert all(math.isfinite(v) for v in values.values())
    double = NoiseDimGAN(noise=NoiseSpec(dim=8), resolution=8, channels=1, g_width=4, d_width=4)
    double.load_state_dict(gan.state_dict())
    double.double()
    assert cb.compute(trainer, double) == pytest.approx(values, rel=1e-4, abs=1e-6)


def test_every_n_validations_skipping_sanity_checks_and_fast_dev_run(monkeypatch):
    cb = _metrics(every_n_epochs=2)
    calls = []
    monkeypatch.setattr(cb, "_evaluate", lambda trainer, module: calls.append(cb._validations))
    trainer = SimpleNamespace(sanity_checking=False, fast_dev_run=False)
    cb.on_validation_epoch_end(SimpleNamespace(sanity_checking=True, fast_dev_run=False), None)
    for _ in range(5):
        cb.on_validation_epoch_end(trainer, None)
    assert calls == [2, 4]
    assert cb.state_dict() == {"validations": 5}
    cb.on_validation_epoch_end(SimpleNamespace(sanity_checking=False, fast_dev_run=1), None)
    cb.on_test_epoch_end(SimpleNamespace(sanity_checking=False, fast_dev_run=1), None)
    assert calls == [2, 4]
    cb.on_test_epoch_end(trainer, None)
    assert calls == [2, 4, 5]


# ---------------------------------------------------------------------------------- extractors
def test_inception_with_a_missing_weights_file_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError, match="nowhere") as exc:
        InceptionFeatures(str(missing))
    assert "GenerativeMetrics.feature_path" in str(exc.value) and INCEPTION_URL in str(exc.value)


def test_inception_without_torch_fidelity_says_what_to_install(monkeypatch):
    find_spec = importlib.util.find_spec  # a broken install: the package cannot be found
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch_fidelity" else find_spec(name, *a)
    )
    with pytest.raises(FeatureExtractorUnavailable, match="torch-fidelity") as exc:
        InceptionFeatures()
    assert "feature_extractor: classifier" in str(exc.value)


def test_inception_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    """No weights in the torch.hub cache and no network: an actionable error, in seconds."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(feats, "_reachable", lambda url, timeout: "name resolution failed")  # offline, here or not
    start = time.monotonic()
    with pytest.raises(FeatureExtractorUnavailable) as exc:
        InceptionFeatures(download_timeout=5.0)
    assert time.monotonic() - start < 15
    message = str(exc.value)
    assert "no internet" in message and "feature_path: /path/to/weights-inception-2015-12-05-6726825d.pth" in message
    assert INCEPTION_URL in message and "feature_extractor: classifier" in message


def test_inception_stalled_host_fails_within_the_timeout(tmp_path, monkeypatch):
    """A resolver or host that never answers: the probe gives up at its deadline, not at the OS's."""
    import socket

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    release = threading.Event()

    def never_answers(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(socket, "create_connection", never_answers)
    start = time.monotonic()
    try:
        with pytest.raises(FeatureExtractorUnavailable, match="timed out"):
            InceptionFeatures(download_timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        release.set()


def test_inception_features_from_a_local_weights_file(tmp_path, monkeypatch):
    """A random-init Inception saved as a weights file: loads offline, maps [-1, 1] grey to uint8 RGB."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with monkeypatch.context() as patch:  # build the network without its download
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        random_net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "weights.pth"
    torch.save(random_net.state_dict(), weights)
    extractor = InceptionFeatures(str(weights))
    assert extractor.identity == f"inception:{file_sha256(str(weights))}"
    out = extractor(torch.rand(1, 1, 16, 16) * 2 - 1)
    assert out.shape == (1, 2048) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not extractor.train().training
    # What the network receives: uint8 RGB, [-1, 1] mapped to 0..255 with rounding and clamping.
    seen = []
    monkeypatch.setattr(extractor.net, "forward", lambda x: seen.append(x) or torch.zeros(x.shape[0], 2048))
    extractor(torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.5], dtype=torch.float64).view(1, 1, 1, 5))
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (1, 3, 1, 5)
    assert seen[0][0, :, 0].tolist() == [[0, 64, 128, 255, 255]] * 3

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(FeatureExtractorUnavailable, match="bad.pth"):
        InceptionFeatures(str(bad))


def test_classifier_features_need_an_existing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/classifier/digits.yaml") as exc:
        ClassifierFeatures(str(tmp_path / "missing.ckpt"))
    assert "missing.ckpt" in str(exc.value)
    with pytest.raises(ValueError, match="GenerativeMetrics.feature_path"):
        build_feature_extractor("classifier", None)


def _classifier_checkpoint(path: Path, **hparams) -> Path:
    """An untrained Classifier saved in Lightning's checkpoint format (no training)."""
    import lightning

    from lightning_modules.classifier import Classifier

    torch.manual_seed(0)
    model = Classifier(**hparams)
    checkpoint = {
        "state_dict": model.state_dict(),
        Classifier.CHECKPOINT_HYPER_PARAMS_KEY: dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(checkpoint, path)
    return path


def test_classifier_features_from_a_checkpoint_convert_channels_and_size(tmp_path):
    ckpt = _classifier_checkpoint(tmp_path / "clf.ckpt", channels=1, resolution=16, width=4, num_features=12)
    extractor = build_feature_extractor("classifier", str(ckpt))
    assert extractor.num_features == 12 and extractor.identity.startswith("classifier:")
    assert not any(p.requires_grad for p in extractor.parameters())
    grey = torch.rand(3, 1, 32, 32) * 2 - 1
    out = extractor(grey)
    assert out.shape == (3, 12)
    # RGB of equal channels is that grey image (luma weights sum to 1); the size is resized to 16.
    assert torch.allclose(extractor(grey.expand(-1, 3, -1, -1)), out, atol=1e-5)
    direct = extractor.model.features(
        torch.nn.functional.interpolate(grey, size=(16, 16), mode="bilinear", antialias=True)
    )
    assert torch.allclose(out, direct, atol=1e-5)


# ---------------------------------------------------------------------------------- end to end
ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "noise_dim" / "digits_demo.yaml")


def _cli_args(tmp_path, *extra, subcommand="fit"):
    return [
        subcommand,
        "-c",
        DEMO,
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--model.init_args.g_width=8",
        "--model.init_args.d_width=8",
        "--data.init_args.batch_size=16",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.limit_val_batches=2",
        "--trainer.limit_test_batches=2",
        "--checkpoint.monitor=metrics/fid",
        "--checkpoint.mode=min",
        "--trainer.callbacks+=callbacks.generative_metrics.GenerativeMetrics",
        "--trainer.callbacks.init_args.num_samples=64",
        "--trainer.callbacks.init_args.batch_size=64",
        "--trainer.callbacks.init_args.real_split=val",
        "--trainer.callbacks.init_args.kid_subset_size=50",
        "--trainer.callbacks.init_args.kid_subsets=5",
        "--trainer.callbacks.init_args.pr_max_samples=64",
        f"--trainer.callbacks.init_args.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


def _extractor_args(tmp_path) -> list[str]:
    """The project's Classifier, untrained, as the feature extractor."""
    ckpt = _classifier_checkpoint(tmp_path / "clf.ckpt", channels=1, resolution=32, width=4, num_features=16)
    return [
        "--trainer.callbacks.init_args.feature_extractor=classifier",
        f"--trainer.callbacks.init_args.feature_path={ckpt}",
    ]


def _generative_metrics(cli) -> GenerativeMetrics:
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, GenerativeMetrics))


def test_fit_logs_metrics_and_test_logs_them_again_from_the_cache(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from train import main

    extractor = _extractor_args(tmp_path)
    fit = main(
        _cli_args(
            tmp_path,
            *extractor,
            # 4 iterations: 2 epochs of 2 batches, 2 validations. (A limit of 1 would mean 100%.)
            "--trainer.max_steps=8",
            "--trainer.limit_train_batches=2",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.callbacks.init_args.ppl_samples=32",
        )
    )
    # PPL's tag names its distance: the classifier's features here, not the published LPIPS.
    names = {"metrics/fid", "metrics/kid_mean", "metrics/kid_std", "metrics/precision", "metrics/recall",
             "metrics/ppl[classifier-l2]"}  # fmt: skip
    assert names <= set(fit.trainer.callback_metrics)
    assert math.isfinite(float(fit.trainer.callback_metrics["metrics/fid"]))
    metrics = _generative_metrics(fit)
    assert metrics.real_images_extracted == len(fit.datamodule.val_set)  # once for two evaluations
    assert metrics.last["metrics/fid"] == pytest.approx(float(fit.trainer.callback_metrics["metrics/fid"]))
    assert fit.trainer.checkpoint_callback.best_model_score is not None  # monitor="metrics/fid" worked
    events = EventAccumulator(fit.trainer.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("metrics/fid")) == 2  # two validation epochs

    last = fit.trainer.checkpoint_callback.last_model_path
    ppl = _cli_args(tmp_path, *extractor, f"--ckpt_path={last}", "--trainer.callbacks.init_args.ppl_samples=32")
    test = main(["test", *ppl[1:]])
    assert names <= set(test.trainer.callback_metrics)
    assert _generative_metrics(test).real_images_extracted == 0  # real features from the cache
    # Same weights, same noise seed: the test run reproduces the last validation's numbers.
    assert float(test.trainer.callback_metrics["metrics/fid"]) == pytest.approx(metrics.last["metrics/fid"], rel=1e-4)
    tag = "metrics/ppl[classifier-l2]"
    assert 0 < metrics.last[tag] < math.inf and metrics.hparams_metrics()[-1] == tag
    assert float(test.trainer.callback_metrics[tag]) == pytest.approx(metrics.last[tag], rel=1e-4)


def test_a_missing_weights_file_stops_before_training(tmp_path):
    from train import main

    missing = f"--trainer.callbacks.init_args.feature_path={tmp_path / 'nowhere.pth'}"
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        main(_cli_args(tmp_path, missing, "--trainer.max_steps=4"))
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_ddp_computes_on_rank_zero_and_every_rank_logs(tmp_path):
    """DDP on 2 CPU processes: no hang, one cache file, and ModelCheckpoint(monitor=metrics/fid) finds
    the metric on every rank (it raises where a monitored key is missing)."""
    import subprocess
    import sys

    ckpt = _classifier_checkpoint(tmp_path / "clf.ckpt", channels=1, resolution=32, width=4, num_features=16)
    args = _cli_args(
        tmp_path,
        "--trainer.callbacks.init_args.feature_extractor=classifier",
        f"--trainer.callbacks.init_args.feature_path={ckpt}",
        "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.max_steps=8",
        "--trainer.limit_train_batches=2",
        "--trainer.check_val_every_n_epoch=1",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "train.py", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "noise_dim" / "digits_demo" / "version_0"), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("metrics/fid")) == 2
