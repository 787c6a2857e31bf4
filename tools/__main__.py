"""``python -m tools <command> [options]``: every command line besides training and analysis.

    python train.py fit|validate|test|predict -c CONFIG   train and evaluate (LightningCLI)
    python -m analysis <command>                         the information-theoretic tools
    python -m tools <command>                            everything else, below

Run ``python -m tools <command> --help`` for a command's options.  The sweeps pass the
arguments after ``--`` to every ``train.py`` call.  A user error (a missing file, a bad
option) prints one line, ``error: ...``, and exits with status 2; ``--debug`` (or
``NOISE_GANS_DEBUG=1``) also shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from core.errors import ArgumentParser, UserError, call_cli

#: command -> (module defining add_command(subparsers, name, help), one line of --help).
#: Only the module of the command that runs is imported.
COMMANDS = {
    "ganz": (
        "tools.ganz",
        "GANZ as a codec: compress | decompress | rd (rate-distortion) | cs (compressive sensing) | dt-sweep (Fig. 2)",
    ),
    "invert": ("tools.invert", "GAN inversion of a folder of images through an RNIStyleGAN2 checkpoint"),
    "sweep-noise-dim": (
        "tools.sweep_noise_dim",
        "NoiseDimGAN over the noise entropy in bits (n, formats, b-bit noise), capacities and seeds: FID/KID vs eps",
    ),
    "sweep-i2i": ("tools.sweep_i2i", "NoisyI2I over training-noise levels sigma_t^2: robustness curves"),
    "rni-compare": ("tools.rni_compare", "RNIStyleGAN2 with each noise injection: FID/KID, PPL, MC/TTMC, inversion"),
    "rni-tables": ("tools.rni_tables", "the RNI paper's Tables 1 (PPL, FID) and 2 (MC, TTMC) from runs, mean ± std"),
    "known-source": ("tools.known_source", "the divergence-entropy trade-off on a source of known entropy"),
    "de-gan-metrics": ("tools.de_gan_metrics", "DE-GAN's accuracy-of-samples table and Fig. 6 from several runs"),
    "nvlabs-convert": (
        "tools.nvlabs_convert",
        "an NVlabs StyleGAN2-ADA network pickle or state dict as an RNIStyleGAN2 checkpoint (runs none of its code)",
    ),
    "reproduce": ("tools.reproduce", "a paper's headline experiment on real data: every stage, resumable, a manifest"),
    "synthetic-data": ("tools.synthetic_data", "write a small synthetic dataset in a real dataset's on-disk format"),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s sub-parser is complete (the others are listed in --help)."""
    parser = ArgumentParser(
        prog="python -m tools", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (module, help) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_command(subparsers, name, help)
        else:
            subparsers.add_parser(name, help=help)
    return parser


def split_train_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the command's own arguments, those after ``--`` for every train.py call)."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def _run(argv: Optional[Sequence[str]]) -> int:
    argv, train_args = split_train_args(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    if train_args and not getattr(args, "takes_train_args", False):
        raise UserError(f"`python -m tools {args.command}` takes no train.py arguments (after --): {train_args}")
    args.train_args = train_args
    return args.run(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The exit status: 0, or 2 after a user error (printed as ``error: ...`` on stderr)."""
    return call_cli(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
