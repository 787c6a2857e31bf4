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
  sigmoid, rescaled to [-1, 1] (2*sigmoid - 1 = tanh(x/2)).  D = 5x5 "↓" (C + 10) + lReLU
  -> 5x5 "↓" (d + 10) + BN + lReLU -> FC 16d (1024) + BN + lReLU -> FC 1.  The "+10"
  makes the layer sizes those of Table II (11 and 74 with C = 1, d = 64): the table is
  DCGAN-tensorflow's MNIST model, whose D concatenates 10 one-hot label maps
  (c_dim + y_dim, df_dim + y_dim); here they are ordinary feature maps (unconditional).
  Any R divisible by 4 works: 28 (the paper), 32 (the embedded digits, MNIST padded).
* ``celeba`` / ``cifar10`` (Tables III / IV, the same layer list at R = 64 / 32): G = FC
  1024 + BN + ReLU, reshaped to (1024 / s0^2) x s0 x s0 with s0 = R/16, then four 5x5
  "↑": 8g (512) + BN + ReLU, 4g (256) + BN + ReLU, 2g (128) + BN + ReLU, image channels +
  tanh.  The extracted tables print the last two as "5x5x512↑" and "5x5x64↑", which
  cannot end in a 3-channel image; we read them as DCGAN's halving widths.  D = 5x5 "↓"
  d (64) + lReLU, 2d (128) + BN + lReLU, 4d (256) + BN + lReLU, flatten, FC 1 (the
  tables' trailing "64 Fully-Connected" row, after the 1-unit layer, is left out).

The discriminator returns logits (the sigmoid is inside the loss) and, on request,
the activations of one block for the hidden-space loss (DE-GAN Eq. 12): ``D(x,
return_features=k)`` gives ``(logits, h_k(x))``.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

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
class DEGANGenerator(nn.Module):
    """DCGAN generator of Tables II-IV: noise [N, z_dim] -> images [N, C, R, R] in [-1, 1].

    Args:
        z_dim: noise dimension (128 in the paper).
        resolution: image side R.
        channels: image channels.
        width: g; Table II: FC 16g and 2g maps (1024, 128); Tables III/IV: 8g, 4g, 2g maps
            (512, 256, 128) at g = 64.
        arch: ``mnist`` (Table II), ``celeba`` (Table III) or ``cifar10`` (Table IV).
    """

    def __init__(
        self, z_dim: int = 128, resolution: int = 32, channels: int = 1, width: int = 64, arch: Arch = "mnist"
    ) -> None:
        super().__init__()
        check_arch(arch, resolution)
        self.z_dim, self.resolution, self.channels, self.arch = z_dim, resolution, channels, arch
        if arch == "mnist":
            s = resolution // 4
            self.map_shape = (2 * width, s, s)
            self.fc = nn.Sequential(
                nn.Linear(z_dim, 16 * width, bias=False),
                nn.BatchNorm1d(16 * width),
                nn.ReLU(inplace=True),
                nn.Linear(16 * width, 2 * width * s * s, bias=False),
                nn.BatchNorm1d(2 * width * s * s),
                nn.ReLU(inplace=True),
            )
            self.conv = nn.Sequential(
                _up(2 * width, 2 * width, bias=False),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(inplace=True),
                _up(2 * width, channels),
            )
        else:
            s = resolution // 16
            fc = 1024
            if fc % (s * s):
                raise ValueError(f"cannot reshape the 1024-unit layer to {s}x{s} maps (resolution {resolution})")
            self.map_shape = (fc // (s * s), s, s)
            self.fc = nn.Sequential(nn.Linear(z_dim, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(inplace=True))
            chans = [self.map_shape[0], 8 * width, 4 * width, 2 * width]
            layers: list[nn.Module] = []
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                layers += [_up(c_in, c_out, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            layers.append(_up(chans[-1], channels))
            self.conv = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected noise of shape [N, {self.z_dim}], got {list(z.shape)}")
        x = self.conv(self.fc(z).view(z.shape[0], *self.map_shape))
        # Table II ends in a sigmoid ([0, 1]); 2 * sigmoid(x) - 1 = tanh(x / 2) maps it to the data's [-1, 1].
        return torch.tanh(x / 2) if self.arch == "mnist" else torch.tanh(x)


class DEGANDiscriminator(nn.Module):
    """DCGAN discriminator of Tables II-IV: images [N, C, R, R] -> logits [N] (and hidden activations).

    ``blocks`` is the list of layers ``h_0, h_1, ...`` whose outputs the hidden-space loss
    (DE-GAN Eq. 12) can compare; the last block is the 1-unit head.  ``default_hidden_layer`` is
    the last convolutional block ("a high convolutional layer", Sec. II-C).

    Args:
        resolution: image side R.
        channels: image channels.
        width: d; Table II: d + 10 maps and FC 16d (74, 1024); Tables III/IV: d, 2d, 4d
            maps (64, 128, 256) at d = 64.
        arch: ``mnist`` (Table II), ``celeba`` (Table III) or ``cifar10`` (Table IV).
    """

    def __init__(self, resolution: int = 32, channels: int = 1, width: int = 64, arch: Arch = "mnist") -> None:
        super().__init__()
        check_arch(arch, resolution)
        self.resolution, self.channels, self.arch = resolution, channels, arch
        act = nn.LeakyReLU(0.2)
        blocks: list[nn.Module] = []
        if arch == "mnist":
            c1, c2, side = channels + TABLE2_LABEL_MAPS, width + TABLE2_LABEL_MAPS, (resolution + 3) // 4
            blocks.append(nn.Sequential(_down(channels, c1), act))
            blocks.append(nn.Sequential(_down(c1, c2, bias=False), nn.BatchNorm2d(c2), act))
            blocks.append(
                nn.Sequential(
                    nn.Flatten(), nn.Linear(c2 * side * side, 16 * width, bias=False), nn.BatchNorm1d(16 * width), act
                )
            )
            blocks.append(nn.Linear(16 * width, 1))
            self.default_hidden_layer = 1
        else:
            chans, side = [width, 2 * width, 4 * width], resolution // 8
            blocks.append(nn.Sequential(_down(channels, chans[0]), act))
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                blocks.append(nn.Sequential(_down(c_in, c_out, bias=False), nn.BatchNorm2d(c_out), act))
            blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * side * side, 1)))
            self.default_hidden_layer = 2
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
        self, x: torch.Tensor, return_features: Optional[int] = None
    ) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits [N]; with ``return_features=k`` also block k's output h_k(x) (the hidden-space map)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images of shape [N, {self.channels}, {self.resolution}, {self.resolution}], "
                f"got {list(x.shape)}"
            )
        k = None if return_features is None else self.resolve_layer(return_features)
        h, features = x, None
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == k:
                features = h
        logits = h.flatten()
        return logits if k is None else (logits, features)
