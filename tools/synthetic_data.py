"""``python -m tools synthetic-data KIND PATH``: write a small synthetic dataset in KIND's real format.

(Formerly ``python -m datamodules.synthetic``, which still works for one release.)
"""

from __future__ import annotations

import argparse
from typing import Callable

from core.errors import UserError
from datamodules import synthetic as s

# kind -> (what PATH is, writer(path, count, size))
KINDS: dict[str, tuple[str, Callable[[str, int, int], object]]] = {
    "image-folder": (
        "a folder (dataset_tool layout + dataset.json labels)",
        lambda p, n, r: s.write_image_folder(p, n, r, labels=True),
    ),
    "ffhq-zip": ("a .zip as dataset_tool.py writes it", lambda p, n, r: s.write_image_zip(p, n, r, labels=True)),
    "cifar10": (
        "the root holding cifar-10-batches-py/ (COUNT images per batch file)",
        lambda p, n, r: s.write_cifar10(p, per_batch=n),
    ),
    "mnist": (
        "the root holding MNIST/raw/ (COUNT training images, COUNT/5 test)",
        lambda p, n, r: s.write_mnist(p, n, max(1, n // 5)),
    ),
    "celeba": ("the root holding celeba/ (torchvision layout)", lambda p, n, r: s.write_celeba(p, n)),
    "lsun": ("the root holding church_outdoor_train_lmdb/", lambda p, n, r: s.write_lsun(p, "church_outdoor", n)),
    "pix2pix": (
        "a pix2pix dataset (train/ val/ test/ of side-by-side A|B JPEGs)",
        lambda p, n, r: s.write_pix2pix(p, n, r),
    ),
}


def add_command(subparsers, name: str, help: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=help,
        description="Write a small synthetic dataset in a real dataset's on-disk format.",
        epilog="kinds:\n" + "\n".join(f"  {k:13s} PATH is {what}" for k, (what, _) in KINDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("path", help="where to write it (see the kinds below)")
    parser.add_argument("--count", type=int, default=100, help="number of images (per split/batch where noted)")
    parser.add_argument("--size", type=int, default=64, help="image side, for image-folder, ffhq-zip and pix2pix")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.count < 1 or args.size < 4:
        raise UserError(f"--count must be >= 1 and --size >= 4, got {args.count} and {args.size}")
    KINDS[args.kind][1](args.path, args.count, args.size)
    print(f"wrote a synthetic {args.kind} dataset ({args.count} images) to {args.path}")
    return 0
