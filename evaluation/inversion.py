r"""GAN inversion: find the latent (and noise maps) whose image reconstructs a given image.

Image2StyleGAN (Abdal, Qin, Wonka 2019, "How to embed images into the StyleGAN latent
space?", Sec. 5 and Algorithm 1): optimise w+ -- one w per style input of the synthesis
network, [N, num_ws, w_dim] -- from the mean w, with Adam (lr 0.01), to minimise

    L(w+) = lambda_mse * |G(w+) - x|^2 / (C H W) + lambda_p * d(G(w+), x)

where d is a perceptual distance: Image2StyleGAN's own (:class:`VGG16Perceptual`, the mean
squared differences of VGG-16's conv1_1, conv1_2, conv3_2 and conv4_2 features, summed; it
needs torchvision's ImageNet VGG-16 weights as a local file, ``vgg16_path``), LPIPS when its
weights are on this machine, or the squared feature distance of the project's own
classifier (:class:`~evaluation.features.ClassifierFeatures`).  Only the first two are the
published kind of loss; :func:`perceptual_distance` returns the distance's name with it, and
``python -m tools invert`` writes that name into every output.  The seed paper ("On noise
injection in GANs", Sec. 5 and its supplement) uses this to compare how well plain StyleGAN2,
ENI and RNI generators embed faces.

Optionally the injected noise maps are optimised too, as StyleGAN2's projector does
(Karras et al. 2020, Appendix D): they start from N(0, 1), are penalised by their
multi-scale autocorrelation (so they cannot smuggle the image in), and are renormalised to
zero mean and unit variance after every step.  ``space`` can also be ``w`` (one w for all
style inputs) or ``z`` (the generator's input; the only choice for a DCGAN backbone).

The generator is a frozen copy of the model's (EMA by default) generator; the model itself
is not modified.  ``python -m tools invert --help`` runs it over a folder of images
and writes a CSV of PSNR/SSIM per image, a JSON summary, the latents and a PNG grid of
targets above reconstructions.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from datamodules.base import ImageTransform
from datamodules.encoded import CorruptImageError, FolderSource, decode_image
from evaluation.features import ClassifierFeatures
from evaluation.ppl import LPIPSDistance, LPIPSWeightsNotFound
from lightning_modules.nets.noise_injection import NoiseInjection
from lightning_modules.reconstruction import psnr, ssim
from lightning_modules.rni_stylegan2 import RNIStyleGAN2

__all__ = [
    "InversionResult",
    "VGG16Perceptual",
    "autocorrelation_penalty",
    "invert",
    "load_images",
    "perceptual_distance",
]

Space = Literal["w_plus", "w", "z"]
Distance = Callable[[Tensor, Tensor], Tensor]


@dataclass
class InversionResult:
    """What :func:`invert` found.

    Attributes:
        latents: the optimised latents: w+ [N, num_ws, w_dim], w [N, 1, w_dim] or z [N, z_dim].
        noises: the optimised noise maps (input to output), or an empty list.
        images: the reconstructions G(latents) in [-1, 1] (clamped), [N, C, H, W].
        psnr: per image, dB.
        ssim: per image.
        losses: the total loss after every step, [steps].
    """

    latents: Tensor
    noises: list[Tensor]
    images: Tensor
    psnr: Tensor
    ssim: Tensor
    losses: Tensor


# ---------------------------------------------------------------------------------- distances
class _FeatureSquaredDistance(nn.Module):
    """|phi(x) - phi(y)|^2 / dim per pair, differentiable in x (phi frozen)."""

    def __init__(self, phi: nn.Module) -> None:
        super().__init__()
        self.phi = phi

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return (self.phi(x) - self.phi(y)).flatten(1).square().mean(dim=1)


class _LPIPS(nn.Module):
    """LPIPS per pair, differentiable in x (the LPIPS network frozen)."""

    def __init__(self, lpips) -> None:
        super().__init__()
        self.inner = lpips

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        return self.inner.lpips(x, y).flatten()


class VGG16Perceptual(nn.Module):
    """Image2StyleGAN's perceptual loss (Abdal et al. 2019, Sec. 5): per pair,

        sum over j in (conv1_1, conv1_2, conv3_2, conv4_2) of |F_j(x) - F_j(y)|^2 / N_j,

    F_j the (ReLU) activations of VGG-16's layer j and N_j their number of elements.  VGG-16
    is torchvision's architecture (its ``features`` up to conv4_2) with ImageNet weights from
    ``weights_path``: torchvision's ``vgg16-397923af.pth`` (the whole model's state_dict, the
    file LPIPS also uses) or a state_dict of ``features`` alone.  Nothing is downloaded.
    Inputs are images in [-1, 1] (grey ones repeated to 3 channels), normalised as ImageNet's.
    """

    #: Indices in torchvision's ``vgg16().features`` of the ReLU after each of the four layers.
    LAYERS = {"conv1_1": 1, "conv1_2": 3, "conv3_2": 13, "conv4_2": 20}
    label = "vgg16-image2stylegan"

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        path = os.path.expanduser(str(weights_path))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"VGG-16 weights not found at {path}: download torchvision's vgg16-397923af.pth "
                "(https://download.pytorch.org/models/vgg16-397923af.pth) where there is internet and pass its path"
            )
        last = max(self.LAYERS.values())
        self.features = make_layers(cfgs["D"])[: last + 1]
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state_dict")
        if not any(key.startswith("features.") for key in state):
            state = {f"features.{key}": value for key, value in state.items()}
        wanted = self.features.state_dict()
        missing = [f"features.{key}" for key in wanted if f"features.{key}" not in state]
        if missing:
            raise ValueError(f"{path} is not torchvision's VGG-16 state_dict: missing {', '.join(missing[:4])}")
        self.features.load_state_dict({key: state[f"features.{key}"] for key in wanted})
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def layer_features(self, images: Tensor) -> list[Tensor]:
        """The four layers' activations of images in [-1, 1], [N, 1 or 3, H, W]."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        h = ((images + 1) / 2 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        out, keep = [], set(self.LAYERS.values())
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in keep:
                out.append(h)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[0])
        for fx, fy in zip(self.layer_features(x), self.layer_features(y)):
            total = total + (fx - fy).flatten(1).square().mean(dim=1)
        return total


def perceptual_distance(
    kind: Literal["auto", "vgg16", "lpips", "classifier", "none"] = "auto",
    lpips_path: Optional[str] = None,
    classifier_ckpt: Optional[str] = None,
    vgg16_path: Optional[str] = None,
) -> tuple[Optional[nn.Module], str]:
    """A differentiable perceptual distance and its name (written into every output of an inversion).

    ``auto``: Image2StyleGAN's VGG-16 loss if ``vgg16_path`` is given (``vgg16-image2stylegan``),
    else LPIPS (VGG) if its backbone weights are at ``lpips_path`` or in torchvision's cache
    (``lpips-vgg``), else the classifier's features if ``classifier_ckpt`` is given
    (``classifier-features``, not comparable with published inversions), else none (MSE only).
    ``vgg16`` / ``lpips`` / ``classifier`` insist and raise with instructions when the file is missing.
    """
    if kind not in ("auto", "vgg16", "lpips", "classifier", "none"):
        raise ValueError(f"perceptual must be auto, vgg16, lpips, classifier or none, got {kind!r}")
    if kind == "none":
        return None, "none"
    if kind == "vgg16" or (kind == "auto" and vgg16_path is not None):
        if vgg16_path is None:
            raise ValueError("perceptual vgg16 needs --vgg16-path (torchvision's vgg16-397923af.pth)")
        return VGG16Perceptual(vgg16_path), VGG16Perceptual.label
    if kind in ("auto", "lpips"):
        try:
            lpips = LPIPSDistance(lpips_path, net="vgg")
            return _LPIPS(lpips.requires_grad_(False).eval()), "lpips-vgg"
        except LPIPSWeightsNotFound:
            if kind == "lpips":
                raise
    if kind == "classifier" or classifier_ckpt is not None:
        if classifier_ckpt is None:
            raise ValueError("perceptual classifier needs --classifier-ckpt (a Classifier checkpoint)")
        return _FeatureSquaredDistance(ClassifierFeatures(classifier_ckpt)), "classifier-features"
    return None, "none"


def autocorrelation_penalty(noises: list[Tensor], min_size: int = 8) -> Tensor:
    """StyleGAN2 projector's noise regulariser: squared 1-pixel autocorrelations at every scale."""
    total = noises[0].new_zeros([])
    for noise in noises:
        n = noise
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean() ** 2 + (n * torch.roll(n, 1, dims=2)).mean() ** 2
            if n.shape[-1] <= min_size:
                break
            n = F.avg_pool2d(n, 2)
    return total


# ---------------------------------------------------------------------------------- inversion
def invert(
    module: nn.Module,
    targets: Tensor,
    space: Space = "w_plus",
    steps: int = 1000,
    lr: float = 0.01,
    mse_weight: float = 1.0,
    perceptual: Optional[nn.Module] = None,
    perceptual_weight: float = 1.0,
    optimize_noise: bool = False,
    noise_reg_weight: float = 1e5,
    ema: bool = True,
    w_avg_samples: int = 10_000,
    seed: int = 0,
    progress: bool = False,
) -> InversionResult:
    """Invert ``targets`` [N, C, H, W] in [-1, 1] through the generator of ``module``.

    Args:
        module: an :class:`~lightning_modules.RNIStyleGAN2` (any model with ``generator`` /
            ``generator_ema`` and ``noise``; ``w`` spaces need a StyleGAN2 generator).
        targets: images to reconstruct, on any device (moved to the module's).
        space: ``w_plus`` (Image2StyleGAN), ``w`` or ``z``.
        steps: Adam steps.
        lr: Adam learning rate (0.01 in Image2StyleGAN).
        mse_weight: weight of the per-pixel MSE.
        perceptual: a differentiable distance ``d(x, y) -> [N]`` (:func:`perceptual_distance`), or None.
        perceptual_weight: its weight.
        optimize_noise: also optimise the injected noise maps (one per image and layer).
        noise_reg_weight: weight of :func:`autocorrelation_penalty` (StyleGAN2's 1e5).
        ema: invert the EMA generator.
        w_avg_samples: z samples whose mean w is the starting point (StyleGAN2's projector: 10,000).
        seed: seeds the starting noise maps and the w_avg samples.
        progress: show a tqdm bar.
    """
    if space not in ("w_plus", "w", "z"):
        raise ValueError(f"space must be w_plus, w or z, got {space!r}")
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got {steps}, {lr}")
    source = module.generator_ema.module if ema else module.generator
    device = next(source.parameters()).device
    G = copy.deepcopy(source).eval().requires_grad_(False)
    has_w = hasattr(G, "mapping") and hasattr(G, "synthesis")
    if space != "z" and not has_w:
        raise ValueError(f"space {space!r} needs a StyleGAN2 generator (mapping + synthesis); use space z")
    x = targets.to(device=device, dtype=torch.float32)
    n = x.shape[0]
    if tuple(x.shape[1:]) != (G.img_channels if has_w else G.out_channels, G.resolution, G.resolution):
        raise ValueError(f"targets of shape {list(x.shape)} do not match the generator's output")
    rng = torch.Generator().manual_seed(seed)

    # Starting point: the mean of w (w spaces), or z = 0, the mode of the Gaussian (z space).
    if space == "z":
        latent = torch.zeros(n, module.noise.dim, device=device)
    else:
        with torch.no_grad():
            z = module.noise.sample(w_avg_samples, generator=rng).to(device, torch.float32)
            w_mean = G.mapping(z, broadcast=False).mean(dim=0)
        rows = G.num_ws if space == "w_plus" else 1
        latent = w_mean.reshape(1, 1, -1).repeat(n, rows, 1)
    latent = latent.clone().requires_grad_(True)

    layers = [m for m in G.modules() if isinstance(m, NoiseInjection) and m.kind != "none"]
    noises: list[Tensor] = []
    if optimize_noise:
        for layer in layers:
            noise = torch.randn(n, 1, layer.resolution, layer.resolution, generator=rng).to(device)
            layer.noise_const = noise.requires_grad_(True)  # read by noise_mode="const"
            noises.append(layer.noise_const)
    else:
        for layer in layers:  # the same fixed maps for every image
            layer.noise_const = layer.noise_const.detach()

    def render(lat: Tensor) -> Tensor:
        if space == "z":
            return G(lat, noise_mode="const")
        ws = lat if space == "w_plus" else lat.expand(-1, G.num_ws, -1)
        return G.synthesis(ws, noise_mode="const")

    optimizer = torch.optim.Adam([latent] + noises, lr=lr, betas=(0.9, 0.999))
    losses = []
    if perceptual is not None:
        perceptual = perceptual.to(device)
    for _ in tqdm(range(steps), desc="inversion", disable=not progress, leave=False):
        images = render(latent)
        loss = mse_weight * (images - x).square().flatten(1).mean(dim=1).sum()
        if perceptual is not None and perceptual_weight:
            loss = loss + perceptual_weight * perceptual(images, x).sum()
        if noises and noise_reg_weight:
            loss = loss + noise_reg_weight * autocorrelation_penalty(noises) * n
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()) / n)
        if noises:
            with torch.no_grad():
                for noise in noises:
                    noise.sub_(noise.mean(dim=[1, 2, 3], keepdim=True))
                    noise.div_(noise.square().mean(dim=[1, 2, 3], keepdim=True).sqrt().clamp_min(1e-8))
    with torch.no_grad():
        images = render(latent).clamp(-1, 1)
    return InversionResult(
        latents=latent.detach(),
        noises=[noise.detach() for noise in noises],
        images=images,
        psnr=psnr(images, x).cpu(),
        ssim=ssim(images, x).cpu(),
        losses=torch.tensor(losses),
    )


# ---------------------------------------------------------------------------------- images
def load_images(folder: str, resolution: int, channels: int, limit: Optional[int] = None) -> tuple[Tensor, list[str]]:
    """The image files under ``folder`` (sorted), center-cropped and resized, in [-1, 1]."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--images {folder} is not a directory of images (PNG, JPEG, ...)")
    source = FolderSource(folder)
    if len(source) == 0:
        raise FileNotFoundError(f"--images {folder} holds no image files (.png, .jpg, .jpeg, .bmp, .webp ...)")
    transform = ImageTransform(resolution, channels)
    images, names = [], []
    for i in range(len(source) if limit is None else min(limit, len(source))):
        try:
            images.append(transform(decode_image(source.read(i), channels=3 if channels == 3 else 1)))
        except CorruptImageError as err:
            raise CorruptImageError(f"{os.path.join(folder, source.name(i))}: {err}") from None
        names.append(source.name(i))
    return torch.stack(images), names


if __name__ == "__main__":  # deprecated alias of `python -m tools invert` (removed in the next release)
    from core.errors import run_alias

    run_alias("python -m evaluation.inversion", "tools", "invert")
