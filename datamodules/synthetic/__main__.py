"""``python -m datamodules.synthetic KIND PATH``: write a small synthetic dataset in KIND's real format."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datamodules.synthetic",
        description="Write a small synthetic dataset in a real dataset's on-disk format.",
        epilog="kinds:\n" + "\n".join(f"  {k:13s} PATH is {what}" for k, (what, _) in KINDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("path", help="where to write it (see the kinds below)")
    parser.add_argument("--count", type=int, default=100, help="number of images (per split/batch where noted)")
    parser.add_argument("--size", type=int, default=64, help="image side, for image-folder, ffhq-zip and pix2pix")
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 4:
        parser.error("--count must be >= 1 and --size >= 4")
    KINDS[args.kind][1](args.path, args.count, args.size)
    print(f"wrote a synthetic {args.kind} dataset ({args.count} images) to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
