"""``python -m tools nvlabs-convert``: an NVlabs StyleGAN2-ADA network as an RNIStyleGAN2 checkpoint.

Reads a stylegan2-ada-pytorch network pickle (``network-snapshot-*.pkl``: ``G``, ``D``,
``G_ema``) without running any code from it, or a plain state dict with NVlabs' names
(``torch.save(G_ema.state_dict())``), see docs/nvlabs-checkpoints.md.  Writes a checkpoint
that ``RNIStyleGAN2.load_from_checkpoint`` reads (noise injection ``eni``, StyleGAN2's own),
so ``python -m tools invert --ckpt OUT`` and the evaluation tools take it like a trained run:

    python -m tools nvlabs-convert network-snapshot-025000.pkl runs/nvlabs/ffhq128.ckpt
    python -m tools invert --ckpt runs/nvlabs/ffhq128.ckpt --images faces/ --out runs/nvlabs/inv

``G_ema`` becomes the module's EMA generator and ``G`` its raw generator (each stands in for
the other when one is missing); ``D`` its discriminator (kept at its random initialisation
when the file has none).  NVlabs' ``conv_clamp`` is not an RNIStyleGAN2 hyperparameter: the
checkpoint runs without it (equal outputs wherever no activation exceeds +-conv_clamp, 256 in
NVlabs' mixed-precision configs); :func:`rni_stylegan2_from_nvlabs` keeps it in memory.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import lightning
import torch
from torch import nn

from core.errors import UserError
from lightning_modules.nets.nvlabs_import import (
    discriminator_state_dict_to_nvlabs,
    generator_state_dict_to_nvlabs,
    infer_discriminator_kwargs,
    infer_generator_kwargs,
    load_nvlabs,
)
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from lightning_modules.rni_stylegan2 import RNIStyleGAN2

__all__ = ["add_command", "rni_stylegan2_from_nvlabs", "run", "write_checkpoint"]


def _conv_clamp(net: Optional[nn.Module]) -> Optional[float]:
    clamps = {m.conv_clamp for m in (net.modules() if net is not None else ()) if getattr(m, "conv_clamp", None)}
    return max(clamps) if clamps else None


def rni_stylegan2_from_nvlabs(
    path: str, conv_clamp: Optional[float] = None, mbstd_group_size: Optional[int] = None
) -> RNIStyleGAN2:
    """An :class:`RNIStyleGAN2` (eval mode) holding the NVlabs networks in ``path`` (pickle or state dict).

    Args:
        path: a network pickle or a plain state dict with NVlabs' names.
        conv_clamp: for a plain state dict only (a pickle records it): the clamp of its convolutions.
        mbstd_group_size: for a plain discriminator state dict: its minibatch-stddev group size.
    """
    overrides = {} if mbstd_group_size is None else {"mbstd_group_size": mbstd_group_size}
    nets = load_nvlabs(path, conv_clamp=conv_clamp, **overrides)
    g_ema, g_raw, disc = nets.get("G_ema"), nets.get("G"), nets.get("D")
    g_ema = g_ema if g_ema is not None else g_raw
    g_raw = g_raw if g_raw is not None else g_ema
    if g_ema is None:
        raise UserError(f"{path}: holds no generator (G or G_ema); RNIStyleGAN2 needs one")
    assert isinstance(g_ema, StyleGAN2Generator) and isinstance(g_raw, StyleGAN2Generator)
    g_kw = infer_generator_kwargs(generator_state_dict_to_nvlabs(g_ema.state_dict()))
    hparams = dict(
        noise=dict(dim=g_kw["z_dim"]),
        backbone="stylegan2",
        noise_injection=g_kw["noise_injection"],
        resolution=g_kw["resolution"],
        channels=g_kw["img_channels"],
        w_dim=g_kw["w_dim"],
        channel_base=g_kw["channel_base"],
        channel_max=g_kw["channel_max"],
        mapping_layers=g_kw["mapping_layers"],
        g_architecture=g_kw["architecture"],
    )
    if disc is not None:
        assert isinstance(disc, StyleGAN2Discriminator)
        d_kw = infer_discriminator_kwargs(discriminator_state_dict_to_nvlabs(disc.state_dict(), disc.resolution))
        channels_g = {b.resolution: b.conv1.weight.shape[0] for b in g_ema.synthesis.blocks}
        channels_d = {4: disc.conv.weight.shape[0], **{r: int(b.conv0.weight.shape[0]) for r, b in
                      zip(sorted(channels_g, reverse=True), disc.blocks)}}  # fmt: skip
        if channels_d != channels_g or d_kw["resolution"] != g_kw["resolution"]:
            raise UserError(
                f"{path}: D's channels {channels_d} differ from G's {channels_g}; "
                "RNIStyleGAN2 gives both one channel_base"
            )
        if disc.mbstd is None or disc.mbstd.num_channels != 1:
            raise UserError(f"{path}: D's minibatch-stddev layer is not the 1-channel one RNIStyleGAN2 builds")
        hparams.update(d_architecture=d_kw["architecture"], mbstd_group_size=int(disc.mbstd.group_size))
    module = RNIStyleGAN2(**hparams)
    module.generator.load_state_dict(g_raw.state_dict())
    module.generator_ema.module.load_state_dict(g_ema.state_dict())
    if disc is not None:
        module.discriminator.load_state_dict(disc.state_dict())
    for ours, theirs in ((module.generator, g_raw), (module.generator_ema.module, g_ema), (module.discriminator, disc)):
        if theirs is None:
            continue
        for a, b in zip(ours.modules(), theirs.modules()):
            if hasattr(b, "conv_clamp"):
                a.conv_clamp = b.conv_clamp
    return module.eval()


def write_checkpoint(module: RNIStyleGAN2, path: str) -> None:
    """A checkpoint ``RNIStyleGAN2.load_from_checkpoint`` reads (hyperparameters, state dict; no optimiser)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


def add_command(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(
        name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.set_defaults(run=run)
    p.add_argument("source", help="NVlabs network pickle (network-snapshot-*.pkl) or a state dict, NVlabs' names")
    p.add_argument("out", help="the RNIStyleGAN2 checkpoint to write (.ckpt)")
    p.add_argument("--conv-clamp", type=float, default=None, help="a plain state dict's conv_clamp (pickles record it)")
    p.add_argument("--mbstd-group-size", type=int, default=None, help="a plain D state dict's minibatch-stddev group")


def run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.source):
        raise UserError(f"{args.source}: no such file")
    module = rni_stylegan2_from_nvlabs(args.source, args.conv_clamp, args.mbstd_group_size)
    write_checkpoint(module, args.out)
    hp = module.hparams
    print(
        f"{args.out}: RNIStyleGAN2 ({hp['noise_injection']}), {hp['resolution']} px, z {hp['noise']['dim']}, "
        f"w {hp['w_dim']}, channel_base {hp['channel_base']}, channel_max {hp['channel_max']}, "
        f"{hp['mapping_layers']} mapping layers, G {hp['g_architecture']}, D {hp['d_architecture']}"
    )
    clamp = _conv_clamp(module.generator_ema.module)
    if clamp is not None:
        sys.stderr.write(
            f"note: NVlabs' conv_clamp={clamp:g} is not kept in the checkpoint (not an RNIStyleGAN2 option); "
            f"outputs are equal wherever no activation exceeds +-{clamp:g}\n"
        )
    return 0
