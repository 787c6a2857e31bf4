"""DE-GAN networks: the VAE (encoder, decoder) and the DCGAN generator/discriminator.

Seed paper "Generative adversarial networks with decoder-encoder output noise" (Zhong et
al.), Tables II (MNIST, 28x28), III (CelebA, 64x64) and IV (CIFAR-10, 32x32).  Plain
``torch.nn``; the training recipes live in :mod:`lightning_modules.vae` and
:mod:`lightning_modules.de_gan`.  All convolutions are 5x5 with stride 2 ("↑"/"↓" in the
tables), padded TensorFlow-"SAME"-style so each one exactly halves/doubles the side.

VAE (:class:`VAEEncoder`, :class:`VAEDecoder`), parametrised by the image side R:

* decoder: z -> (transposed conv, kernel s0 from 1x1) s0 x s0 x 4w, then 5x5 "↑" layers
  halving the channels (4w -> 2w -> w -> ...), the last one to the image channels.
  s0 = 3 for R = 28 (Table II: "3x3x128↑", 64, 32, 1 -> 7, 14, 28) and s0 = 4 otherwise
  (Table III: "4x4x128↑", 64, 32, 16, 3 for 64x64; Table IV: "4x4x128↑", 64, 32, 3 for
  32x32).  It returns *logits*: the VAE applies the sigmoid (Table II, Bernoulli
  likelihood) or the tanh (Tables III/IV, Gaussian likelihood).  The tables list no
  activations between layers; ReLU is used.
* encoder: three 5x5 "↓" convs with w, 2w, 4w channels (32, 64, 128 in all three tables),
  LeakyReLU(0.2), dropout, flatten, then the table's "128 Fully-Connected" twice: the
  posterior mean mu and log-variance of q(z|x) (DE-GAN Eq. 4-7).

Generator / discriminator (``arch``):

* ``mnist`` (Table II): G = FC 16g (1024) + BN + ReLU -> FC 2g*(R/4)^2 (6272 = 128*7*7 at
  R = 28) + BN + ReLU -> 5x5 "↑" 2g (128) + BN + ReLU -> 5x5 "↑" to the image channels ->
  sigmoid, rescaled to [-1, 1] (2*sigmoid - 1 = tanh(x/2)).  D = 5x5 "↓" (C + K) + lReLU
  -> 5x5 "↓" (d + K) + BN + lReLU -> FC 16d (1024) + BN + lReLU -> FC 1.  Table II is
  DCGAN-tensorflow's conditional MNIST model: with ``num_classes`` K = 10 the one-hot label
  joins the noise, each fully connected layer's input and, as 10 constant maps, each
  convolution's input (:func:`join_labels`), and the layer sizes are the table's (11 and
  74 maps with C = 1, d = 64).  ``num_classes: 0`` is the project's unconditional variant:
  no labels, and the "+K" maps of D stay as 10 ordinary feature maps.
  Any R divisible by 4 works: 28 (the paper), 32 (the embedded digits, MNIST padded).
* ``celeba`` / ``cifar10`` (Tables III / IV, the same layer list at R = 64 / 32): G = FC
  1024 + BN + ReLU, reshaped to (1024 / s0^2) x s0 x s0 with s0 = R/16, then four 5x5
  "↑": 8g (512) + BN + ReLU, 4g (256) + BN + ReLU, 2g (128) + BN + ReLU, image channels +
  tanh.  The extracted tables print the last two as "5x5x512↑" and "5x5x64↑", which
  cannot end in a 3-channel image; we read them as DCGAN's halving widths.  D = 5x5 "↓"
  d (64) + lReLU, 2d (128) + BN + lReLU, 4d (256) + BN + lReLU, flatten, FC 1 (the
  tables' trailing "64 Fully-Connected" row, after the 1-unit layer, is left out).  With
  ``num_classes`` K > 0 the labels join every layer's input as for ``mnist`` (CIFAR-10's
  "each image is bound with a label", Sec. IV-C; Table IV prints no label channels).

The discriminator returns logits (the sigmoid is inside the loss) and, on request,
the activations of one block for the hidden-space loss (DE-GAN Eq. 12): ``D(x,
return_features=k)`` gives ``(logits, h_k(x))``.
"""

from __future__ import annotations

import re
from typing import Literal, Mapping, Optional, Union

import torch
from torch import nn

from lightning_modules.nets.dcgan import dcgan_init_

__all__ = [
    "ARCHS",
    "Arch",
    "DEGANDiscriminator",
    "DEGANGenerator",
    "VAEDecoder",
    "VAEEncoder",
    "check_arch",
    "join_labels",
    "upgrade_legacy_state_dict",
]

Arch = Literal["mnist", "celeba", "cifar10"]
ARCHS: dict[str, str] = {"mnist": "Table II", "celeba": "Table III", "cifar10": "Table IV"}
#: Table II's discriminator carries DCGAN-tensorflow's 10 label maps in its first two convs.
TABLE2_LABEL_MAPS = 10


def _down(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    """5x5 stride-2 conv that halves the side (rounding up), TF "SAME"."""
    return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=bias)


def _up(c_in: int, c_out: int, bias: bool = True) -> nn.ConvTranspose2d:
    """5x5 stride-2 transposed conv that doubles the side, TF "SAME"."""
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=bias)


def check_arch(arch: str, resolution: int, key: str = "model.init_args") -> None:
    """Raise a ValueError naming the config keys when ``arch`` cannot produce ``resolution``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown {key}.arch {arch!r}; expected one of: {', '.join(ARCHS)}")
    if arch == "mnist":
        if resolution < 8 or resolution % 4:
            raise ValueError(
                f"{key}.arch=mnist (Table II) needs a resolution divisible by 4 (28 as in the paper, 32 for the "
                f"digits or MNIST padded to 32), got {resolution}"
            )
    elif resolution < 16 or resolution % 16:
        raise ValueError(
            f"{key}.arch={arch} ({ARCHS[arch]}) needs a resolution divisible by 16 (64 for CelebA, 32 for "
            f"CIFAR-10), got {resolution}"
        )


# ---------------------------------------------------------------------------------------------- VAE
def _decoder_start(resolution: int) -> int:
    """Side of the decoder's first map: 3 for 28x28 (Table II), 4 for 4 * 2^k (Tables III/IV)."""
    if resolution == 28:
        return 3
    if resolution >= 8 and resolution & (resolution - 1) == 0:
        return 4
    raise ValueError(f"the DE-GAN VAE supports image sides 28 and 2^k >= 8 (32, 64, ...), got {resolution}")


class VAEDecoder(nn.Module):
    """p(x|z) of the VAE (DE-GAN Eq. 6): latent [N, latent_dim] -> image logits [N, C, R, R].

    Args:
        latent_dim: size of z (128 in all three tables).
        resolution: image side R: 28 (Table II), 32 (Table IV, and Table II's layers on
            32x32 digits), 64 (Table III); any 4 * 2^k.
        channels: image channels.
        width: w; the first map has 4w channels (128 in the tables at w = 32).
    """

    def __init__(self, latent_dim: int = 128, resolution: int = 32, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.latent_dim, self.resolution, self.channels = latent_dim, resolution, channels
        start = _decoder_start(resolution)
        # 3 -> 7 needs 7 = (3 - 1) * 2 - 2 * 1 + 5: padding 1, no output padding (Table II).
        n_up, side = 0, start
        while side < resolution:
            side = 7 if side == 3 else side * 2
            n_up += 1
        chans = [max(4 * width // 2**i, 1) for i in range(n_up)]  # 4w, 2w, w, w/2 ...
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, chans[0], start), nn.ReLU(inplace=True)]
        for i in range(n_up):
            c_out = channels if i == n_up - 1 else chans[i + 1]
            if start == 3 and i == 0:
                layers.append(nn.ConvTranspose2d(chans[i], c_out, 5, stride=2, padding=1))
            else:
                layers.append(_up(chans[i], c_out))
            if i < n_up - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape [N, {self.latent_dim}], got {list(z.shape)}")
        return self.net(z[:, :, None, None])


class VAEEncoder(nn.Module):
    """q(z|x) of the VAE (DE-GAN Eq. 5): images [N, C, R, R] -> (mu, logvar), each [N, latent_dim].

    Args:
        latent_dim: size of z (128 in all three tables).
        resolution: image side R.
        channels: image channels.
        width: w; the three convs have w, 2w, 4w channels (32, 64, 128 in the tables).
        dropout: the tables' "Dropout" before the fully connected layer.
    """

    def __init__(
        self, latent_dim: int = 128, resolution: int = 32, channels: int = 1, width: int = 32, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.latent_dim, self.resolution, self.channels = latent_dim, resolution, channels
        chans = [width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        c_in, side = channels, resolution
        for c_out in chans:
            layers += [_down(c_in, c_out), nn.LeakyReLU(0.2, inplace=True)]
            c_in, side = c_out, (side + 1) // 2
        layers += [nn.Dropout(dropout), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(c_in * side * side, latent_dim)
        self.logvar = nn.Linear(c_in * side * side, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images of shape [N, {self.channels}, {self.resolution}, {self.resolution}], "
                f"got {list(x.shape)}"
            )
        h = self.features(x)
        return self.mu(h), self.logvar(h)


# ---------------------------------------------------------------------------------------------- GAN
def join_labels(h: torch.Tensor, onehot: Optional[torch.Tensor]) -> torch.Tensor:
    """``h`` with the one-hot labels appended: as K more features ([N, F] -> [N, F + K]) or as K
    constant maps ([N, C, H, W] -> [N, C + K, H, W]); ``h`` itself when ``onehot`` is None.

    DCGAN-tensorflow's conditional MNIST model joins the labels this way to the noise, to the
    fully connected layers' inputs and, as maps, to the convolutions' inputs (DE-GAN Table II).
    """
    if onehot is None:
        return h
    onehot = onehot.to(h.dtype)
    if h.ndim == 4:
        onehot = onehot[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
    return torch.cat([h, onehot], dim=1)


def _one_hot(labels: Optional[torch.Tensor], num_classes: int, batch: int) -> Optional[torch.Tensor]:
    """One-hot float labels [N, K] for a conditional network (``num_classes`` > 0), else None."""
    if not num_classes:
        return None
    if labels is None or labels.shape != (batch,):
        got = None if labels is None else list(labels.shape)
        raise ValueError(f"a conditional DE-GAN network ({num_classes} classes) needs one label per image: got {got}")
    return nn.functional.one_hot(labels.long(), num_classes).float()


class DEGANGenerator(nn.Module):
    """DCGAN generator of Tables II-IV: noise [N, z_dim] (and labels [N]) -> images [N, C, R, R] in [-1, 1].

    ``stages`` are the layers; with ``num_classes`` K > 0 every stage's input has the one-hot
    label appended (:func:`join_labels`): K features for the fully connected stages, K
    constant maps for the transposed convolutions (DCGAN-tensorflow's conditional MNIST
    model, which Table II is; Tables III/IV print no label channels, so for them this is
    the same scheme applied to their layers).

    Args:
        z_dim: noise dimension (128 in the paper).
        resolution: image side R.
        channels: image channels.
        width: g; Table II: FC 16g and 2g maps (1024, 128); Tables III/IV: 8g, 4g, 2g maps
            (512, 256, 128) at g = 64.
        arch: ``mnist`` (Table II), ``celeba`` (Table III) or ``cifar10`` (Table IV).
        num_classes: K; 0 for an unconditional generator.
    """

    def __init__(
        self,
        z_dim: int = 128,
        resolution: int = 32,
        channels: int = 1,
        width: int = 64,
        arch: Arch = "mnist",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        check_arch(arch, resolution)
        if num_classes < 0:
            raise ValueError(f"model.init_args.num_classes must be >= 0 (0: unconditional), got {num_classes}")
        self.z_dim, self.resolution, self.channels, self.arch = z_dim, resolution, channels, arch
        self.num_classes = k = num_classes
        stages: list[nn.Module] = []
        if arch == "mnist":
            s = resolution // 4
            self.map_shape = (2 * width, s, s)
            stages.append(nn.Sequential(nn.Linear(z_dim + k, 16 * width, bias=False), nn.BatchNorm1d(16 * width),
                                        nn.ReLU(inplace=True)))  # fmt: skip
            stages.append(nn.Sequential(nn.Linear(16 * width + k, 2 * width * s * s, bias=False),
                                        nn.BatchNorm1d(2 * width * s * s), nn.ReLU(inplace=True)))  # fmt: skip
            stages.append(nn.Sequential(_up(2 * width + k, 2 * width, bias=False), nn.BatchNorm2d(2 * width),
                                        nn.ReLU(inplace=True)))  # fmt: skip
            stages.append(_up(2 * width + k, channels))
            self.num_fc = 2
        else:
            s = resolution // 16
            fc = 1024
            if fc % (s * s):
                raise ValueError(f"cannot reshape the 1024-unit layer to {s}x{s} maps (resolution {resolution})")
            self.map_shape = (fc // (s * s), s, s)
            stages.append(nn.Sequential(nn.Linear(z_dim + k, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(inplace=True)))
            chans = [self.map_shape[0], 8 * width, 4 * width, 2 * width]
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                stages.append(nn.Sequential(_up(c_in + k, c_out, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
            stages.append(_up(chans[-1] + k, channels))
            self.num_fc = 1
        self.stages = nn.ModuleList(stages)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected noise of shape [N, {self.z_dim}], got {list(z.shape)}")
        y = _one_hot(labels, self.num_classes, z.shape[0])
        h = z
        for i, stage in enumerate(self.stages):
            if i == self.num_fc:
                h = h.view(z.shape[0], *self.map_shape)
            h = stage(join_labels(h, y))
        # Table II ends in a sigmoid ([0, 1]); 2 * sigmoid(x) - 1 = tanh(x / 2) maps it to the data's [-1, 1].
        return torch.tanh(h / 2) if self.arch == "mnist" else torch.tanh(h)


class DEGANDiscriminator(nn.Module):
    """DCGAN discriminator of Tables II-IV: images [N, C, R, R] (and labels [N]) -> logits [N] (and hidden activations).

    ``blocks`` is the list of layers ``h_0, h_1, ...`` whose outputs the hidden-space loss
    (DE-GAN Eq. 12) can compare; the last block is the 1-unit head.  ``default_hidden_layer`` is
    the last convolutional block ("a high convolutional layer", Sec. II-C).  With
    ``num_classes`` K > 0 every block's input has the one-hot label appended (K constant maps
    before a convolution, K features before a fully connected layer; :func:`join_labels`):
    for ``mnist`` this is DCGAN-tensorflow's conditional MNIST discriminator, whose first two
    convolutions have C + K and d + K output maps: Table II's 11 and 74 at C = 1, K = 10,
    d = 64.  The hidden activations h_k are the block outputs, before the labels are joined.

    Args:
        resolution: image side R.
        channels: image channels.
        width: d; Table II: d + 10 maps and FC 16d (74, 1024); Tables III/IV: d, 2d, 4d
            maps (64, 128, 256) at d = 64.
        arch: ``mnist`` (Table II), ``celeba`` (Table III) or ``cifar10`` (Table IV).
        num_classes: K; 0 for an unconditional discriminator (``mnist`` then keeps Table II's
            C + 10 and d + 10 output maps, as ordinary feature maps).
    """

    def __init__(
        self, resolution: int = 32, channels: int = 1, width: int = 64, arch: Arch = "mnist", num_classes: int = 0
    ) -> None:
        super().__init__()
        check_arch(arch, resolution)
        if num_classes < 0:
            raise ValueError(f"model.init_args.num_classes must be >= 0 (0: unconditional), got {num_classes}")
        self.resolution, self.channels, self.arch = resolution, channels, arch
        self.num_classes = k = num_classes
        act = nn.LeakyReLU(0.2)
        blocks: list[nn.Module] = []
        if arch == "mnist":
            extra = k or TABLE2_LABEL_MAPS
            c1, c2, side = channels + extra, width + extra, (resolution + 3) // 4
            blocks.append(nn.Sequential(_down(channels + k, c1), act))
            blocks.append(nn.Sequential(_down(c1 + k, c2, bias=False), nn.BatchNorm2d(c2), act))
            blocks.append(
                nn.Sequential(nn.Linear(c2 * side * side + k, 16 * width, bias=False), nn.BatchNorm1d(16 * width), act)
            )
            blocks.append(nn.Linear(16 * width + k, 1))
            self.first_flat, self.default_hidden_layer = 2, 1
        else:
            chans, side = [width, 2 * width, 4 * width], resolution // 8
            blocks.append(nn.Sequential(_down(channels + k, chans[0]), act))
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                blocks.append(nn.Sequential(_down(c_in + k, c_out, bias=False), nn.BatchNorm2d(c_out), act))
            blocks.append(nn.Linear(chans[-1] * side * side + k, 1))
            self.first_flat, self.default_hidden_layer = 3, 2
        self.blocks = nn.ModuleList(blocks)
        dcgan_init_(self)

    def resolve_layer(self, layer: Optional[int]) -> int:
        """The block index of ``layer`` (``None``: the default; negative: from the end, -1 = the head)."""
        if layer is None:
            return self.default_hidden_layer
        n = len(self.blocks)
        if isinstance(layer, bool) or not -n <= layer < n:
            raise ValueError(
                f"model.init_args.hidden_layer must index the discriminator's {n} blocks (0..{n - 1}, or negative "
                f"from the end; null for the last convolution, block {self.default_hidden_layer}), got {layer!r}"
            )
        return layer % n

    def forward(
        self, x: torch.Tensor, labels: Optional[torch.Tensor] = None, return_features: Optional[int] = None
    ) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits [N]; with ``return_features=k`` also block k's output h_k(x) (the hidden-space map)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images of shape [N, {self.channels}, {self.resolution}, {self.resolution}], "
                f"got {list(x.shape)}"
            )
        y = _one_hot(labels, self.num_classes, x.shape[0])
        k = None if return_features is None else self.resolve_layer(return_features)
        h, features = x, None
        for i, block in enumerate(self.blocks):
            if i == self.first_flat:
                h = h.flatten(1)
            h = block(join_labels(h, y))
            if i == k:
                features = h
        logits = h.flatten()
        return logits if k is None else (logits, features)


# ---------------------------------------------------------------------------------------------- old checkpoints
_LEGACY_G = re.compile(r"^(?P<net>generator\.|generator_ema\.module\.)(?P<kind>fc|conv)\.(?P<i>\d+)\.(?P<rest>.+)$")


def upgrade_legacy_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DEGAN state dict saved before the conditional models, renamed to today's layers.

    The unconditional networks had G's layers in ``fc`` and ``conv`` Sequentials and a
    ``Flatten`` inside D's first fully connected block; they are now ``stages`` (one per
    layer group, the labels joined in between) and D flattens in ``forward``.  Same weights,
    same order, same outputs; a state dict without the old names is returned unchanged.
    """
    found = [m for m in map(_LEGACY_G.match, state) if m is not None]
    if not found:
        return dict(state)
    num_fc = 2 if any(m["kind"] == "fc" and int(m["i"]) >= 3 for m in found) else 1  # mnist: two FC layers
    last_conv = max(int(m["i"]) for m in found if m["kind"] == "conv")
    d_renames = (
        {"discriminator.blocks.2.1.": "discriminator.blocks.2.0.", "discriminator.blocks.2.2.": "discriminator.blocks.2.1."}
        if num_fc == 2
        else {"discriminator.blocks.3.1.": "discriminator.blocks.3."}
    )
    upgraded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _LEGACY_G.match(key)
        if m is not None:
            i = int(m["i"])
            stage = i // 3 if m["kind"] == "fc" else num_fc + i // 3
            inner = "" if m["kind"] == "conv" and i == last_conv else f".{i % 3}"
            key = f"{m['net']}stages.{stage}{inner}.{m['rest']}"
        else:
            for old, new in d_renames.items():
                if key.startswith(old):
                    key = new + key[len(old) :]
                    break
        upgraded[key] = value
    return upgraded
