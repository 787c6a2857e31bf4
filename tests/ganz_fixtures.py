"""Tiny GANZ generators and checkpoints shared by the tests/test_ganz_*.py files."""

from __future__ import annotations

from pathlib import Path

import lightning
import torch

from lightning_modules.ganz import GANZ
from tools.__main__ import main as tools_main

D_T, RES, CHANNELS, N_FILTERS = 8, 16, 1, 4


def ganz_cli(argv: list[str]) -> int:
    """``python -m tools ganz ARGV``, in this process; the exit status."""
    return tools_main(["ganz", *argv])


def tiny_ganz(seed: int = 0, channels: int = CHANNELS, d_t: int = D_T, **kwargs) -> GANZ:
    """A 16x16 GANZ whose generator's outputs have contrast and stay inside [-1, 1].

    A freshly initialised BEGAN generator makes nearly flat images; the last convolution is
    rescaled so that G(z), z ~ U[-1, 1], spans about [-0.7, 0.7] -- images in the range of G
    with enough structure that a wrong latent gives a clearly worse PSNR.
    """
    torch.manual_seed(seed)
    model = GANZ(
        noise={"dim": d_t, "distribution": "uniform"},
        resolution=RES,
        channels=channels,
        n_filters=N_FILTERS,
        **kwargs,
    )
    with torch.no_grad():
        g = model.generator
        last = g.synthesis.body[-1]
        last.bias.zero_()
        peak = g(torch.rand(256, d_t, generator=torch.Generator().manual_seed(1)) * 2 - 1).abs().max()
        last.weight.mul_(0.7 / peak)
        model.generator_ema.module.load_state_dict(g.state_dict())
    return model


def save_checkpoint(model: GANZ, path: Path) -> str:
    """A checkpoint as Lightning writes it (state_dict + hyper_parameters), without a Trainer."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return str(path)


def generated_images(model: GANZ, count: int, seed: int = 2) -> torch.Tensor:
    """``count`` images G(z), z ~ U[-1, 1]: they lie in the range of G."""
    z = torch.rand(count, D_T, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        return model.generator_ema.module(z)
