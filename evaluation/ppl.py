r"""Perceptual path length (PPL) of a generator: Karras et al. 2019, "A style-based generator
architecture for generative adversarial networks" (StyleGAN), Sec. 3.2.

For latent pairs z1, z2 ~ P(z) and t ~ U(0, 1), with a small step epsilon = 1e-4:

    l_Z = E[ d(G(slerp(z1, z2; t)), G(slerp(z1, z2; t + epsilon))) / epsilon^2 ]      (StyleGAN Eq. 2)
    l_W = E[ d(g(lerp(f(z1), f(z2); t)), g(lerp(f(z1), f(z2); t + epsilon))) / epsilon^2 ]  (StyleGAN Eq. 3)

where f is the mapping network (z -> w), g the synthesis network (w -> image) and d a
perceptual distance (LPIPS, Zhang et al. 2018, in the paper).  ``sampling="full"`` draws
t ~ U(0, 1); ``sampling="end"`` measures only at the path's end points, t in {0, 1} (Sec.
3.2, Table 4): as in the official code it takes t = 0, which covers both end points since
(z1, z2) and (z2, z1) are equally likely.  Following the official code, the mean is taken
after dropping the values outside the [1st, 99th] percentile range (lower percentile
rounded down, upper rounded up), which removes the rare huge steps at mode boundaries.

Interpolation.  z is Gaussian, so the paper interpolates along the great circle (slerp):
the official code normalises z1 and z2 to unit length and returns a unit vector, which
is harmless there because StyleGAN's mapping network starts with pixel normalisation.
Generators here without that normalisation (DCGAN) would see inputs far from their
training distribution at radius 1, so :func:`slerp` puts the path on the sphere of
radius ``z_radius`` (default sqrt(dim), the typical norm of a standard Gaussian vector);
for a scale-invariant generator any radius gives the paper's value, and ``z_radius=1``
reproduces the official code literally.  For non-Gaussian noise (uniform, discrete
levels; :mod:`core.noise`) pass ``interpolation="lerp"``.  In W the paper
interpolates linearly.

Crop.  On faces StyleGAN's PPL measures the face region only (``crop=True`` in its ``ppl_*``
metrics; ``ppl2_wend`` takes the full image), as do the RNI authors' condition-number metrics:
:func:`face_crop` keeps rows 3c..7c and columns 2c..6c of an H x H image, c = H // 8,
before the distance.

Distances.  :class:`LPIPSDistance` (torchmetrics' LPIPS network; it needs torchvision's
ImageNet backbone weights as a local file here) and :class:`FeatureDistance`, the
squared L2 distance between features of any module (e.g. the project's
:class:`~lightning_modules.classifier.Classifier`), which works offline.  Only LPIPS
gives numbers comparable with published PPL, so every distance carries a ``label``
(:func:`distance_label`: ``lpips-vgg``, ``inception-l2``, ``classifier-l2``, ...) that
the callbacks and tables print next to the number.

Why not torchmetrics' ``perceptual_path_length``: it accepts a custom similarity module,
but always measures at t = 0 (only ``end`` sampling), interpolates towards a fresh
independent latent rather than along the z1 -> z2 path, has no W space (mapping /
synthesis), draws latents from the global RNG and expects images in [0, 255].
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FeatureDistance",
    "LPIPSDistance",
    "LPIPSWeightsNotFound",
    "distance_label",
    "face_crop",
    "lerp",
    "lpips_backbone_url",
    "percentile_mask",
    "perceptual_path_length",
    "slerp",
    "squared_l2",
]

Distance = Callable[[Tensor, Tensor], Tensor]


# ---------------------------------------------------------------------------------- interpolation
def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Linear interpolation a + t (b - a), ``t`` of shape [N] broadcast over the other dimensions."""
    t = t.reshape(-1, *([1] * (a.ndim - 1))).to(a.dtype)
    return a + t * (b - a)


def slerp(a: Tensor, b: Tensor, t: Tensor, radius: Optional[float] = None, eps: float = 1e-12) -> Tensor:
    """Spherical interpolation of the directions of ``a`` and ``b`` [N, D], on the sphere of ``radius``.

    The point at angle t * Omega from a/|a| towards b/|b| on their great circle (Omega the
    angle between them), times ``radius`` (``None``: sqrt(D)).  t outside [0, 1] extrapolates
    along the same circle.  As the official StyleGAN code, built from the component of b
    orthogonal to a, which stays accurate for small angles.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"slerp expects two latent batches of the same shape [N, D], got {list(a.shape)}, {list(b.shape)}"
        )
    radius = math.sqrt(a.shape[1]) if radius is None else float(radius)
    a = F.normalize(a, dim=1, eps=eps)
    b = F.normalize(b, dim=1, eps=eps)
    cos = (a * b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos) * t.reshape(-1, 1).to(a.dtype)
    ortho = F.normalize(b - cos * a, dim=1, eps=eps)
    out = a * torch.cos(omega) + ortho * torch.sin(omega)
    return radius * F.normalize(out, dim=1, eps=eps)


# ---------------------------------------------------------------------------------- crop
def face_crop(images: Tensor) -> Tensor:
    """StyleGAN's face crop (its PPL's ``crop=True``): rows 3c..7c, columns 2c..6c of [..., H, H], c = H // 8.

    A 128 px image keeps rows 48..111 and columns 32..95 (64 x 64); a 36 px one rows 12..27 and
    columns 8..23, since c is rounded down first (StyleGAN's ``c = int(H // 8)``).
    """
    if images.ndim < 2 or images.shape[-1] != images.shape[-2] or images.shape[-1] < 8:
        raise ValueError(f"face_crop expects square images of side >= 8, got shape {list(images.shape)}")
    c = images.shape[-2] // 8
    return images[..., 3 * c : 7 * c, 2 * c : 6 * c]


# ---------------------------------------------------------------------------------- filtering
def percentile_mask(values: Tensor, lower: float = 1.0, upper: float = 99.0) -> Tensor:
    """Boolean mask of ``values`` inside [lower, upper] percentiles (StyleGAN's PPL filter).

    The lower percentile is rounded down and the upper one up to sample values, as numpy's
    ``percentile(..., interpolation='lower' / 'higher')`` in the official code.
    """
    if not 0.0 <= lower <= upper <= 100.0:
        raise ValueError(f"need 0 <= lower <= upper <= 100, got {lower}, {upper}")
    v = values.detach().double().flatten()
    lo = torch.quantile(v, lower / 100.0, interpolation="lower")
    hi = torch.quantile(v, upper / 100.0, interpolation="higher")
    return (v >= lo) & (v <= hi)


# ---------------------------------------------------------------------------------- PPL
@torch.no_grad()
def perceptual_path_length(
    generate: Callable[..., Tensor],
    sample_z: Callable[[int, torch.Generator], Tensor],
    distance: Distance,
    num_samples: int = 10_000,
    epsilon: float = 1e-4,
    space: Literal["z", "w"] = "z",
    sampling: Literal["full", "end"] = "full",
    mapping: Optional[Callable[..., Tensor]] = None,
    interpolation: Optional[Literal["slerp", "lerp"]] = None,
    z_radius: Optional[float] = None,
    num_classes: Optional[int] = None,
    batch_size: int = 64,
    seed: int = 0,
    lower_percentile: float = 1.0,
    upper_percentile: float = 99.0,
    crop: bool = False,
) -> tuple[Tensor, Tensor]:
    """Perceptual path length l_Z (StyleGAN Eq. 2) or l_W (StyleGAN Eq. 3) of a generator; see the module docstring.

    Args:
        generate: ``space="z"``: latents [B, D] -> images [B, C, H, W] (the whole generator G);
            ``space="w"``: w [B, ...] -> images (the synthesis network g).  With ``num_classes``
            it is called as ``generate(latents, labels)`` in Z (``generate(w)`` in W).
        sample_z: ``sample_z(n, generator)`` -> n latents [n, D] (on any device) drawn with
            the given CPU ``torch.Generator``, e.g. ``lambda n, g: gan.noise.sample(n,
            device=gan.device, generator=g)``.  Called twice per batch (z1, then z2).
        distance: ``distance(x, y)`` -> per-pair distances [B] (e.g. :class:`LPIPSDistance`,
            :class:`FeatureDistance`, :func:`squared_l2`).
        num_samples: number of latent pairs.
        epsilon: the step along the path (1e-4 in the paper).
        space: ``z`` (l_Z) or ``w`` (l_W, needs ``mapping``).
        sampling: ``full`` (t ~ U(0, 1)) or ``end`` (t = 0).
        mapping: the mapping network z -> w (``mapping(z, labels)`` with ``num_classes``).
        interpolation: ``slerp`` or ``lerp``; ``None``: slerp in Z, lerp in W (the paper).
        z_radius: radius of the slerp sphere; ``None`` for sqrt(D) (see the module docstring).
        num_classes: for a conditional generator: one uniform label per pair, shared by its
            two images.
        batch_size: pairs per generator call (each call renders 2 * batch_size images).
        seed: seeds the CPU ``torch.Generator`` for z1, z2, t and the labels: a fixed seed
            gives the same pairs for every model and machine.
        lower_percentile, upper_percentile: the values kept for the mean (1 and 99 in the
            official code; 0 and 100 keep everything).
        crop: measure the distance on :func:`face_crop` of both images (StyleGAN's ``crop=True``,
            for faces).

    Returns:
        ``(ppl, distances)``: the filtered mean (a 0-d float64 tensor) and all ``num_samples``
        values d / epsilon^2 (float64, unfiltered, in sampling order; :func:`percentile_mask`
        gives the kept ones).
    """
    if space not in ("z", "w"):
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    if sampling not in ("full", "end"):
        raise ValueError(f"sampling must be 'full' or 'end', got {sampling!r}")
    if space == "w" and mapping is None:
        raise ValueError(
            "space='w' needs the mapping network (mapping=...), and generate must be the synthesis network"
        )
    interpolation = interpolation or ("slerp" if space == "z" else "lerp")
    if interpolation not in ("slerp", "lerp"):
        raise ValueError(f"interpolation must be 'slerp' or 'lerp', got {interpolation!r}")
    if not epsilon > 0 or num_samples < 1 or batch_size < 1:
        raise ValueError(
            f"need epsilon > 0, num_samples >= 1, batch_size >= 1; got {epsilon}, {num_samples}, {batch_size}"
        )

    rng = torch.Generator().manual_seed(seed)  # on the CPU: the same pairs on any machine
    values = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        z1, z2 = sample_z(n, rng), sample_z(n, rng)
        t = torch.rand(n, generator=rng, dtype=torch.float64)  # drawn either way: the same pairs for both samplings
        if sampling == "end":
            t.zero_()
        labels = None
        if num_classes is not None:
            labels = torch.randint(0, num_classes, (n,), generator=rng).to(z1.device)
        if space == "w":
            a = mapping(z1, labels) if labels is not None else mapping(z1)
            b = mapping(z2, labels) if labels is not None else mapping(z2)
        else:
            a, b = z1, z2
        # Interpolate in float64 or float32: a step of epsilon is below the resolution of
        # bf16/fp16 (and of discrete levels), so the path points are not cast back.
        work = torch.float64 if a.dtype == torch.float64 else torch.float32
        a, b = a.to(work), b.to(work)
        t0, t1 = t.to(a.device, work), (t + epsilon).to(a.device, work)
        if interpolation == "slerp":
            p0, p1 = slerp(a, b, t0, z_radius), slerp(a, b, t1, z_radius)
        else:
            p0, p1 = lerp(a, b, t0), lerp(a, b, t1)
        points = torch.cat([p0, p1])
        if labels is not None and space == "z":
            images = generate(points, torch.cat([labels, labels]))
        else:
            images = generate(points)
        if crop:
            images = face_crop(images)
        x0, x1 = images.chunk(2)
        d = distance(x0, x1)
        if d.shape != (n,):
            raise ValueError(f"distance must return one value per pair, shape [{n}], got {list(d.shape)}")
        values.append(d.double() / epsilon**2)
    distances = torch.cat(values).cpu()
    keep = percentile_mask(distances, lower_percentile, upper_percentile)
    return distances[keep].mean(), distances


# ---------------------------------------------------------------------------------- distances
def squared_l2(x: Tensor, y: Tensor) -> Tensor:
    """Sum of squared differences per pair: [N, ...] x [N, ...] -> [N]."""
    return (x - y).flatten(1).pow(2).sum(dim=1)


def distance_label(distance: Distance) -> str:
    """The name of the distance behind a PPL (or inversion) number: its ``label``, ``pixel-l2`` for
    :func:`squared_l2`, else ``custom:<name>``.  Only ``lpips-*`` is on the published scale."""
    label = getattr(distance, "label", None)
    if isinstance(label, str) and label:
        return label
    if distance is squared_l2:
        return "pixel-l2"
    return "custom:" + getattr(distance, "__name__", type(distance).__name__)


class FeatureDistance(nn.Module):
    """Squared L2 distance between features: d(x, y) = |phi(x) - phi(y)|^2, per pair.

    ``phi`` is any module or callable mapping images to features [N, ...], e.g. the
    project's trained :class:`~lightning_modules.classifier.Classifier` (pass the module:
    its ``features`` method is used) or a ``ClassifierFeatures`` extractor.  Works offline;
    values are not on LPIPS's scale, so compare PPLs only under the same extractor.

    Args:
        extractor: an object with a ``features`` method (used), or a callable/module
            (called).
    """

    def __init__(self, extractor: Union[nn.Module, Callable[[Tensor], Tensor]]) -> None:
        super().__init__()
        self.extractor = extractor  # registered as a submodule when it is one (moves with .to())
        self._fn = extractor.features if hasattr(extractor, "features") and callable(extractor.features) else extractor

    @property
    def label(self) -> str:
        """``<extractor>-l2``: ``inception-l2`` / ``classifier-l2`` for the project's extractors (their
        ``identity`` up to the colon), else ``feature-l2``."""
        identity = getattr(self.extractor, "identity", None)
        name = identity.split(":", 1)[0] if isinstance(identity, str) and identity else "feature"
        return f"{name}-l2"

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return squared_l2(self._fn(x).double(), self._fn(y).double())


# torchvision's ImageNet backbones that LPIPS builds on (torchmetrics' lpips.py); the LPIPS
# linear layers themselves ship with torchmetrics (torchmetrics/functional/image/lpips_models/).
_LPIPS_BACKBONES = {
    "alex": ("alexnet", "AlexNet_Weights"),
    "vgg": ("vgg16", "VGG16_Weights"),
    "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
}


class LPIPSWeightsNotFound(FileNotFoundError):
    """The ImageNet backbone weights LPIPS needs are not on this machine."""


def lpips_backbone_url(net: str) -> str:
    """Where torchvision downloads the ImageNet weights of LPIPS' ``net`` backbone."""
    import torchvision.models

    _, enum_name = _LPIPS_BACKBONES[net]
    return getattr(torchvision.models, enum_name).IMAGENET1K_V1.url


class LPIPSDistance(nn.Module):
    """LPIPS (Zhang et al. 2018), the paper's perceptual distance, through torchmetrics' network.

    LPIPS = calibrated linear layers (shipped with torchmetrics) on top of an ImageNet
    backbone (AlexNet, VGG16 or SqueezeNet 1.1) whose weights torchvision downloads.  Offline,
    the backbone weights must be a local file: ``weights_path``, or, when it is ``None``,
    torchvision's own cache (``$TORCH_HOME/hub/checkpoints/<file>``, where an earlier
    online run left it).  The file is torchvision's ``state_dict`` of the whole model
    (e.g. ``alexnet-owt-7be5be79.pth``) or of its ``features`` part.

    Inputs are images in [-1, 1], [N, C, H, W]; grey images are repeated to 3 channels.
    The paper (FFHQ, 1024^2) crops to the face and downsamples to 256 before LPIPS; give
    ``resize`` to resize both images to that side first.

    Args:
        weights_path: the backbone's ImageNet weights (see above); ``None`` looks in the cache.
        net: backbone, ``vgg`` (as in StyleGAN's PPL), ``alex`` or ``squeeze``.
        resize: resize inputs to this side (bilinear, antialiased) before LPIPS; ``None`` keeps them.

    Raises:
        LPIPSWeightsNotFound: no weights file; the message names the file and where it comes from.
    """

    def __init__(
        self,
        weights_path: Optional[str] = None,
        net: Literal["vgg", "alex", "squeeze"] = "vgg",
        resize: Optional[int] = None,
    ) -> None:
        super().__init__()
        if net not in _LPIPS_BACKBONES:
            raise ValueError(f"net must be one of {sorted(_LPIPS_BACKBONES)}, got {net!r}")
        url = lpips_backbone_url(net)
        filename = url.rsplit("/", 1)[1]
        if weights_path is None:
            weights_path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
            where = "torchvision's cache"
        else:
            weights_path = os.path.expanduser(str(weights_path))
            where = "weights_path"
        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        if not os.path.isfile(weights_path):
            raise LPIPSWeightsNotFound(
                f"LPIPS ({net}) needs torchvision's ImageNet weights of {_LPIPS_BACKBONES[net][0]}, "
                f"file {filename}, and {where} has none at {weights_path}.\n"
                f"  Download it where there is internet ({url}) and pass its path as weights_path, or copy it to\n"
                f"  {cache}/; offline alternative: FeatureDistance(classifier) with the project's own classifier."
            )
        # torchmetrics' LPIPS module (private API, torchmetrics 1.x): build it with a random
        # backbone (no download; the shipped linear layers are loaded), then load the backbone.
        from torchmetrics.functional.image.lpips import _NoTrainLpips

        self.lpips = _NoTrainLpips(net=net, pnet_rand=True)
        self._load_backbone(weights_path)
        self.net_name, self.resize = net, resize
        self.weights_path = weights_path
        #: The distance's name in logged tags and tables (:func:`distance_label`).
        self.label = f"lpips-{net}"

    def _load_backbone(self, path: str) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state_dict")
        if not any(key.startswith("features.") for key in state):  # the `features` part alone
            state = {f"features.{key}": value for key, value in state.items()}
        # torchmetrics splits torchvision's `features` Sequential into Sequential slices (`slice1`,
        # ... for AlexNet/VGG, `slices.0`, ... for SqueezeNet) whose children keep their index
        # in `features` as their name: features.<i>.<param> -> <slice>.<i>.<param>.
        target, missing = {}, []
        for slice_name, block in self.lpips.net.named_modules():
            if not (isinstance(block, nn.Sequential) and re.fullmatch(r"slice\d+|slices\.\d+", slice_name)):
                continue
            for index, layer in block.named_children():
                for param_name in layer.state_dict():
                    key = f"features.{index}.{param_name}"
                    if key not in state:
                        missing.append(key)
                    else:
                        target[f"{slice_name}.{index}.{param_name}"] = state[key]
        if missing:
            raise ValueError(
                f"{path} is not torchvision's {_LPIPS_BACKBONES[self.lpips.pnet_type][0]} state_dict: "
                f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
            )
        self.lpips.net.load_state_dict(target, strict=True)

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance per pair [N] of images in [-1, 1]."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"LPIPS expects two image batches [N, 1 or 3, H, W] of one shape, got {list(x.shape)}, {list(y.shape)}"
            )
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        if self.resize is not None and x.shape[-1] != self.resize:
            size = (self.resize, self.resize)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
        param = next(self.lpips.parameters())
        return self.lpips(x.to(param), y.to(param)).flatten()
