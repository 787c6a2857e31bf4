"""BigGAN generator and discriminator (Brock, Donahue & Simonyan 2019) for 32, 64 and 128 px.

Plain ``torch.nn``; the training recipe (hinge loss, Adam, D steps per G step, EMA) lives in
:class:`lightning_modules.NoiseDimGAN`.  The pieces of the BigGAN paper (Sec. 3, Appendix B):

* **residual blocks** (Fig. 15): G's block is CBN-ReLU-up-conv3x3-CBN-ReLU-conv3x3 with a
  nearest-upsampled 1x1-conv shortcut; D's block is (ReLU)-conv3x3-ReLU-conv3x3-avgpool
  with a 1x1-conv shortcut (pre-activation, except the first block, which sees pixels);
* **spectral normalisation** (Miyato et al. 2018) of every convolution, linear layer and
  D's class embedding, in G and D (``torch.nn.utils.parametrizations.spectral_norm``:
  one power iteration per training forward pass);
* **hierarchical latent** (Sec. 3, "Hierarchical latent spaces"): z is split into
  ``num_blocks + 1`` chunks.  Chunk 0 feeds the initial linear layer; chunk i is
  concatenated with the shared class embedding and conditions the batch norms of G
  block i (conditional BN: gain = 1 + W_g c, bias = W_b c);
* **shared class embedding** (Sec. 3, "shared embedding") in G, and D's projection
  (Miyato & Koyama 2018): D(x, y) = psi(h) + <embed(y), h>; ``num_classes = 0`` makes both
  networks unconditional;
* **self-attention** (SAGAN, Zhang et al. 2019) at one configurable resolution;
* **orthogonal initialisation** (Saxe et al. 2014) of all weights;
* a **capacity multiplier** ``ch`` (BigGAN's ``G_ch`` / ``D_ch``).

How z of any dimension n is split.  ``torch.tensor_split`` cuts z into ``num_blocks + 1``
contiguous chunks whose sizes differ by at most one: with ``S = num_blocks + 1`` slots
the first ``n mod S`` chunks have ``n // S + 1`` values, the others ``n // S`` (BigGAN's
own code needs S to divide n; here no n is refused, so a sweep over n can use any
value).  Every coordinate of z lands in exactly one chunk.  When ``n < S`` the last
``S - n`` chunks are empty: those blocks are conditioned on the class embedding alone
(unconditional: a learned, input-independent affine).  ``hierarchical: false`` feeds
all of z to the initial linear layer and only the class embedding to the blocks.

Layouts (channels are multiples of ``ch``; BigGAN-PyTorch's ``G_arch`` / ``D_arch``):

==== ======================================== ==============================================
R    G: 4x4 input, then one block per doubling D: blocks (v: halves the side)
==== ======================================== ==============================================
32   4ch | 4ch, 4ch, 4ch                      4ch v, 4ch v, 4ch, 4ch
64   16ch | 16ch, 8ch, 4ch, 2ch               ch v, 2ch v, 4ch v, 8ch v, 16ch
128  16ch | 16ch, 8ch, 4ch, 2ch, ch           ch v, 2ch v, 4ch v, 8ch v, 16ch v, 16ch
==== ======================================== ==============================================
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["BigGANGenerator", "BigGANDiscriminator", "SelfAttention", "split_latent", "biggan_layout", "num_parameters"]

# resolution -> (G channels, per block input then outputs), (D channels: outputs, downsample flags)
_G_ARCH = {32: [4, 4, 4, 4], 64: [16, 16, 8, 4, 2], 128: [16, 16, 8, 4, 2, 1]}
_D_ARCH = {
    32: ([4, 4, 4, 4], [True, True, False, False]),
    64: ([1, 2, 4, 8, 16], [True, True, True, True, False]),
    128: ([1, 2, 4, 8, 16, 16], [True, True, True, True, True, False]),
}


def biggan_layout(resolution: int) -> tuple[list[int], tuple[list[int], list[bool]]]:
    """G's channel multipliers and D's (multipliers, downsample flags) at ``resolution``."""
    if resolution not in _G_ARCH:
        raise ValueError(
            f"BigGAN supports resolution 32, 64 or 128 (model.init_args.resolution), got {resolution}"
        )
    return _G_ARCH[resolution], _D_ARCH[resolution]


def split_latent(z: torch.Tensor, slots: int) -> list[torch.Tensor]:
    """Cut z [N, n] into ``slots`` contiguous chunks, sizes differing by at most one (first ones longer)."""
    return list(torch.tensor_split(z, slots, dim=1))


def _sn(module: nn.Module) -> nn.Module:
    """Orthogonal initialisation, zero bias, then spectral normalisation (init first: SN's u, v start from it)."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def _conv(c_in: int, c_out: int, kernel: int = 3) -> nn.Module:
    return _sn(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2))


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019, Sec. 3) as in BigGAN: keys and values max-pooled by 2,
    output scaled by a learned gamma that starts at 0 (the block starts as the identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = _sn(nn.Conv2d(channels, max(channels // 8, 1), 1, bias=False))
        self.phi = _sn(nn.Conv2d(channels, max(channels // 8, 1), 1, bias=False))
        self.g = _sn(nn.Conv2d(channels, max(channels // 2, 1), 1, bias=False))
        self.o = _sn(nn.Conv2d(max(channels // 2, 1), channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # [N, C/8, HW]
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # [N, C/8, HW/4]
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # [N, C/2, HW/4]
        beta = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # [N, HW, HW/4]
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, -1, h, w))
        return x + self.gamma * o


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias are linear in a condition vector (BigGAN's CBN).

    gain = 1 + W_g c and bias = W_b c (both spectrally normalised).  With a condition of
    width 0 it is batch norm with a learned affine.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.bn = nn.BatchNorm2d(channels, affine=cond_dim == 0)
        if cond_dim > 0:
            self.gain = _sn(nn.Linear(cond_dim, channels, bias=False))
            self.bias = _sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        out = self.bn(x)
        if self.cond_dim == 0:
            return out
        gain = 1.0 + self.gain(cond)[:, :, None, None]
        return out * gain + self.bias(cond)[:, :, None, None]


class GBlock(nn.Module):
    """BigGAN's up-sampling residual block (Fig. 15 (b))."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm(c_in, cond_dim)
        self.conv1 = _conv(c_in, c_out)
        self.bn2 = ConditionalBatchNorm(c_out, cond_dim)
        self.conv2 = _conv(c_out, c_out)
        self.shortcut = _conv(c_in, c_out, kernel=1)

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        h = F.relu(self.bn1(x, cond))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """BigGAN's (optionally down-sampling) residual block (Fig. 15 (c))."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, c_out)
        self.conv2 = _conv(c_out, c_out)
        self.downsample, self.preactivation = downsample, preactivation
        self.shortcut = _conv(c_in, c_out, kernel=1) if (c_in != c_out or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        sc = x
        if self.preactivation:  # conv then pool (cheaper, as BigGAN-PyTorch); the first block pools first
            sc = self.shortcut(sc) if self.shortcut is not None else sc
            sc = F.avg_pool2d(sc, 2) if self.downsample else sc
        else:
            sc = F.avg_pool2d(sc, 2) if self.downsample else sc
            sc = self.shortcut(sc) if self.shortcut is not None else sc
        return h + sc


def _check_attention(attn_resolution: Optional[int], resolutions: list[int], key: str) -> None:
    if attn_resolution and attn_resolution not in resolutions:
        raise ValueError(
            f"model.init_args.{key}={attn_resolution} is not a resolution of this network; "
            f"choose one of {sorted(set(resolutions))} or 0 for no attention"
        )


class BigGANGenerator(nn.Module):
    """Maps z [N, n] (and class labels [N]) to images [N, out_channels, R, R] in [-1, 1].

    Args:
        z_dim: noise dimension n (any n >= 1; see the module docstring for the split).
        resolution: output side R: 32, 64 or 128.
        out_channels: image channels.
        ch: capacity multiplier (BigGAN's ``G_ch``).
        num_classes: classes of the shared embedding; 0 makes G unconditional.
        shared_dim: width of the shared class embedding.
        attn_resolution: resolution after whose block self-attention sits; 0 for none.
        hierarchical: split z over the blocks (BigGAN's ``--hier``).
    """

    def __init__(
        self,
        z_dim: int,
        resolution: int = 32,
        out_channels: int = 3,
        ch: int = 64,
        num_classes: int = 0,
        shared_dim: int = 128,
        attn_resolution: int = 0,
        hierarchical: bool = True,
    ) -> None:
        super().__init__()
        if z_dim < 1:
            raise ValueError(f"BigGAN needs noise of dimension >= 1 (model.init_args.noise.dim), got {z_dim}")
        if num_classes < 0:
            raise ValueError(f"model.init_args.num_classes must be >= 0 (0: unconditional), got {num_classes}")
        mults, _ = biggan_layout(resolution)
        self.z_dim, self.resolution, self.out_channels = z_dim, resolution, out_channels
        self.num_classes, self.hierarchical = num_classes, hierarchical
        self.num_blocks = len(mults) - 1
        self.slots = self.num_blocks + 1 if hierarchical else 1
        sizes = [c.shape[1] for c in split_latent(torch.empty(0, z_dim), self.slots)]
        self.chunk_sizes = sizes if hierarchical else [z_dim]
        self.shared = nn.Embedding(num_classes, shared_dim) if num_classes > 0 else None
        if self.shared is not None:
            nn.init.orthogonal_(self.shared.weight)
        class_dim = shared_dim if num_classes > 0 else 0
        block_z = sizes[1:] if hierarchical else [0] * self.num_blocks
        self.linear = _sn(nn.Linear(self.chunk_sizes[0], 4 * 4 * ch * mults[0]))
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        out_res = [4 * 2 ** (i + 1) for i in range(self.num_blocks)]
        _check_attention(attn_resolution, out_res, "attn_resolution")
        for i in range(self.num_blocks):
            self.blocks.append(GBlock(ch * mults[i], ch * mults[i + 1], block_z[i] + class_dim))
            if attn_resolution == out_res[i]:
                self.attention[str(i)] = SelfAttention(ch * mults[i + 1])
        self.bn_out = nn.BatchNorm2d(ch * mults[-1])
        self.conv_out = _conv(ch * mults[-1], out_channels)
        self.bottom = ch * mults[0]

    def block_conditions(self, z: torch.Tensor, labels: Optional[torch.Tensor]) -> tuple[torch.Tensor, list]:
        """(input of the initial linear layer, condition vector of each block)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"the BigGAN generator was built for noise of dimension {self.z_dim} "
                f"(model.init_args.noise.dim), got z of shape {list(z.shape)}"
            )
        chunks = split_latent(z, self.slots) if self.hierarchical else [z]
        first = chunks[0]
        rest = chunks[1:] if self.hierarchical else [z[:, :0]] * self.num_blocks
        if self.shared is not None:
            if labels is None:
                raise ValueError("this BigGAN generator is conditional (num_classes > 0): pass class labels")
            y = self.shared(labels.long())
            conds = [torch.cat([c, y.to(c.dtype)], dim=1) for c in rest]
        else:
            conds = [c if c.shape[1] > 0 else None for c in rest]
        return first, conds

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        first, conds = self.block_conditions(z, labels)
        h = self.linear(first).view(z.shape[0], self.bottom, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, conds[i])
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.conv_out(F.relu(self.bn_out(h))))


class BigGANDiscriminator(nn.Module):
    """Maps images [N, in_channels, R, R] (and labels [N]) to one logit each, shape [N].

    Args:
        resolution: input side R: 32, 64 or 128.
        in_channels: image channels.
        ch: capacity multiplier (BigGAN's ``D_ch``).
        num_classes: classes of the projection embedding; 0 makes D unconditional.
        attn_resolution: resolution after whose block self-attention sits; 0 for none.
    """

    def __init__(
        self,
        resolution: int = 32,
        in_channels: int = 3,
        ch: int = 64,
        num_classes: int = 0,
        attn_resolution: int = 0,
    ) -> None:
        super().__init__()
        _, (mults, downs) = biggan_layout(resolution)
        self.resolution, self.in_channels, self.num_classes = resolution, in_channels, num_classes
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        res, out_res, c_in = resolution, [], in_channels
        for i, (m, down) in enumerate(zip(mults, downs)):
            self.blocks.append(DBlock(c_in, ch * m, down, preactivation=i > 0))
            res = res // 2 if down else res
            out_res.append(res)
            c_in = ch * m
        _check_attention(attn_resolution, out_res, "attn_resolution")
        for i, r in enumerate(out_res):
            if attn_resolution == r and not self.attention:  # after the first block reaching that size
                self.attention[str(i)] = SelfAttention(ch * mults[i])
        self.linear = _sn(nn.Linear(c_in, 1))
        self.embed = _sn(nn.Embedding(num_classes, c_in)) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        h = F.relu(h).sum(dim=(2, 3))
        out = self.linear(h).flatten()
        if self.embed is not None:
            if labels is None:
                raise ValueError("this BigGAN discriminator is conditional (num_classes > 0): pass class labels")
            out = out + (self.embed(labels.long()) * h).sum(dim=1)
        return out


def num_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module`` (to compare capacities)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
