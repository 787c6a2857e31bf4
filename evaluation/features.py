"""Feature extractors for FID, KID and precision/recall: Inception-v3 or the project's own classifier.

FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local
Nash equilibrium"), KID (Bińkowski et al. 2018, "Demystifying MMD GANs") and improved
precision/recall (Kynkäänniemi et al. 2019) compare *features* of real and generated
images.  The papers use the 2048-d pool features of the TensorFlow Inception-v3 of the
original FID code; :class:`InceptionFeatures` is that network (torchmetrics'
``NoTrainInceptionV3``, i.e. torch-fidelity's port of the TF weights).  On small or
grey data sets (the embedded digits, MNIST) a classifier trained on the data itself is
the more telling feature space; :class:`ClassifierFeatures` wraps the project's
:class:`~lightning_modules.classifier.Classifier`.

The contract of an extractor (what :class:`~callbacks.generative_metrics.GenerativeMetrics`
relies on): an ``nn.Module`` that is frozen and stays in eval mode, with

* ``num_features: int`` -- the feature dimension F;
* ``identity: str`` -- names the extractor *and its weights* (e.g. ``inception:<sha256>``),
  so cached real features are never reused with other weights;
* ``forward(images)`` -- float images in [-1, 1], shape [N, C, H, W] with C in {1, 3}, any
  size, to float features [N, F].
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import urllib.request
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from core.io import atomic_path, file_sha256
from lightning_modules.classifier import Classifier

__all__ = [
    "INCEPTION_URL",
    "ClassifierFeatures",
    "FeatureExtractor",
    "FeatureExtractorUnavailable",
    "InceptionFeatures",
    "PrecomputedFeatures",
    "build_feature_extractor",
]

#: The FID Inception-v3 weights (TF 2015-12-05 graph converted to PyTorch) that torchmetrics and
#: torch-fidelity download; the 8 hex digits in the name are the start of the file's sha256.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
INCEPTION_SHA256_PREFIX = "6726825d"

CLASSIFIER_HOWTO = "python train.py fit -c configs/classifier/digits.yaml"


class FeatureExtractorUnavailable(RuntimeError):
    """The requested feature extractor cannot be built here (weights missing, offline, package missing)."""


def _inception_help(reason: str) -> str:
    return (
        f"{reason}\n"
        f"  Fix: download {INCEPTION_URL} and set GenerativeMetrics.feature_path: /path/to/{INCEPTION_FILE} (or copy\n"
        f"  it to {_hub_weights_path()}), or set GenerativeMetrics.feature_extractor: classifier and feature_path: "
        f"a Classifier checkpoint (`{CLASSIFIER_HOWTO}`)."
    )


class FeatureExtractor(nn.Module):
    """Base of the extractors: frozen, always in eval mode, with ``num_features`` and ``identity``."""

    num_features: int
    identity: str

    def _freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Stay in eval mode whatever is asked (BatchNorm statistics and dropout stay fixed)."""
        return super().train(False)


class PrecomputedFeatures(nn.Module):
    """The identity, posing as torchmetrics' feature extractor: ``update`` then takes features.

    FID and KID are given this module as ``feature=`` and fed features that the caller
    (:class:`~callbacks.generative_metrics.GenerativeMetrics`, :mod:`evaluation.robustness`)
    computes itself with the real extractor. That way (1) each generated image goes through
    the extractor once for FID, KID and precision/recall together (each torchmetrics metric
    would otherwise run its own extractor on the images, and precision/recall is not in
    torchmetrics), and (2) real features can come from the disk cache, which ``update`` with
    images could not use. torchmetrics reads ``num_features`` to size its states.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected features of shape [N, {self.num_features}], got {tuple(features.shape)}")
        return features


# ---------------------------------------------------------------------------------- Inception
def _hub_weights_path() -> str:
    """Where torch.hub (and so torchmetrics / torch-fidelity) keeps the downloaded weights."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def _reachable(url: str, timeout: float) -> Optional[str]:
    """None if a TCP connection to the URL's host opens within ``timeout`` s, else the reason.

    Runs in a daemon thread with a deadline: a socket timeout does not cover the DNS look-up,
    which can stall far longer than the connection on a network without a resolver.
    """
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    outcome: list[Optional[str]] = ["timed out after %.0f s" % timeout]

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            outcome[0] = None
        except Exception as err:  # socket.gaierror, timeouts, refused connections, ...
            outcome[0] = f"{type(err).__name__}: {err}"

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0]


def _download_inception_weights(timeout: float) -> str:
    """Fetch the FID Inception weights into the torch.hub cache (atomically); return the path."""
    target = _hub_weights_path()
    reason = _reachable(INCEPTION_URL, timeout)
    if reason is not None:
        raise FeatureExtractorUnavailable(
            _inception_help(
                f"GenerativeMetrics: the Inception weights could not be fetched (no internet?): {reason}; they are not "
                f"in the torch.hub cache ({target}) and GenerativeMetrics.feature_path is not set."
            )
        )
    digest = hashlib.sha256()
    try:
        with atomic_path(target) as partial:
            with urllib.request.urlopen(INCEPTION_URL, timeout=timeout) as response, open(partial, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if not digest.hexdigest().startswith(INCEPTION_SHA256_PREFIX):
                raise OSError(f"downloaded file has sha256 {digest.hexdigest()}, expected {INCEPTION_SHA256_PREFIX}...")
    except OSError as err:  # URLError, socket timeouts and HTTP errors are all OSErrors
        raise FeatureExtractorUnavailable(
            _inception_help(f"GenerativeMetrics: the Inception weights could not be fetched (no internet?): {err}.")
        ) from err
    return target


class InceptionFeatures(FeatureExtractor):
    """2048-d pool features of the FID Inception-v3 (torchmetrics' ``NoTrainInceptionV3``).

    Images in [-1, 1] are mapped to 0..255 (rounded, clamped) and cast to uint8, as the
    FID Inception expects; grey images are repeated to 3 channels; torchmetrics resizes to
    299x299 (bilinear with antialias, its default).

    Args:
        weights_path: the weights file ``weights-inception-2015-12-05-6726825d.pth``. Without
            it the file is taken from the torch.hub cache, or downloaded there (needs
            internet; an unreachable host fails within ``download_timeout`` seconds).
        download_timeout: seconds to wait for the download host before giving up.

    Raises:
        FileNotFoundError: ``weights_path`` does not exist.
        FeatureExtractorUnavailable: torch-fidelity is missing, the weights cannot be
            downloaded, or the file is not an Inception state dict.
    """

    num_features = 2048

    def __init__(self, weights_path: Optional[str] = None, download_timeout: float = 10.0) -> None:
        super().__init__()
        if weights_path is not None:
            path = os.path.expanduser(str(weights_path))
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"GenerativeMetrics.feature_path: the Inception weights file {path} does not exist.\n"
                    f"  It is the FID Inception file {INCEPTION_FILE}, from {INCEPTION_URL}"
                )
        if importlib.util.find_spec("torch_fidelity") is None:
            raise FeatureExtractorUnavailable(
                "GenerativeMetrics: the Inception feature extractor needs the torch-fidelity package "
                "(torchmetrics' Inception is torch-fidelity's): pip install torch-fidelity.\n"
                "  Or set GenerativeMetrics.feature_extractor: classifier with a checkpoint of the project's "
                f"Classifier (train one with `{CLASSIFIER_HOWTO}`)."
            )
        if weights_path is None:
            path = _hub_weights_path()
            if not os.path.isfile(path):
                path = _download_inception_weights(download_timeout)
        from torchmetrics.image.fid import NoTrainInceptionV3

        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=path
            )
        except Exception as err:  # a truncated file, another network's state dict, ...
            raise FeatureExtractorUnavailable(
                _inception_help(f"GenerativeMetrics: {path} is not a readable Inception-v3 state dict ({err}).")
            ) from err
        self.weights_path = path
        self.identity = f"inception:{file_sha256(path)}"
        self._freeze()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"InceptionFeatures takes 1- or 3-channel images, got shape {tuple(images.shape)}")
        x = x.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
        return self.net(x).float()


# ---------------------------------------------------------------------------------- classifier
#: ITU-R BT.601 luma weights (sum to 1, so [-1, 1] stays [-1, 1]).
_LUMA = (0.299, 0.587, 0.114)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features of the project's :class:`~lightning_modules.classifier.Classifier`.

    Inputs are resized (bilinear, antialias) to the classifier's resolution and their
    channels converted (RGB to grey by luma weights, grey to RGB by repetition) when they
    differ from what it was trained on.

    Args:
        checkpoint_path: a Lightning checkpoint of the Classifier
            (``runs/classifier/.../checkpoints/last.ckpt``).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
    """

    def __init__(self, checkpoint_path: str) -> None:
        super().__init__()
        path = os.path.expanduser(str(checkpoint_path))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"GenerativeMetrics.feature_path: the classifier checkpoint {path} does not exist.\n"
                f"  Train the feature classifier with `{CLASSIFIER_HOWTO}` and point feature_path at its\n"
                "  runs/.../checkpoints/last.ckpt."
            )
        model = Classifier.load_from_checkpoint(path, map_location="cpu")
        self.model = model.eval()
        self.num_features = int(model.num_features)
        self.channels = int(model.hparams.channels)
        self.resolution = int(model.hparams.resolution)
        self.checkpoint_path = path
        self.identity = f"classifier:{file_sha256(path)}"
        self._freeze()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        channels = x.shape[1]
        if channels != self.channels:
            if channels == 3 and self.channels == 1:
                luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                x = (x * luma).sum(dim=1, keepdim=True)
            elif channels == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(
                    f"ClassifierFeatures: images have {channels} channels, the classifier takes {self.channels}"
                )
        if tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False, antialias=True
            )
        return self.model.features(x).float()


def build_feature_extractor(name: Literal["inception", "classifier"], path: Optional[str] = None) -> FeatureExtractor:
    """The extractor ``name`` with weights from ``path`` (a checkpoint is required for ``classifier``)."""
    if name == "inception":
        return InceptionFeatures(path)
    if name == "classifier":
        if path is None:
            raise ValueError(
                "GenerativeMetrics.feature_extractor is 'classifier' but GenerativeMetrics.feature_path is not set: "
                f"give the classifier checkpoint (train one with `{CLASSIFIER_HOWTO}`)"
            )
        return ClassifierFeatures(path)
    raise ValueError(f"GenerativeMetrics.feature_extractor must be 'inception' or 'classifier', got {name!r}")
