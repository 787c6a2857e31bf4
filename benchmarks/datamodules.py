"""Images per second of each DataModule's train loader, with 0 and 2 worker processes.

    python benchmarks/datamodules.py [--count 4000] [--resolution 64] [--batch-size 64] [--only ffhq-zip lsun]

Each dataset is first written in its real on-disk format by ``datamodules.synthetic``
(``--count`` images, in a temporary directory; the write time is not counted), then its
train loader is read for ``--seconds`` per setting (at least one full pass of
``--min-batches`` batches, after one warm-up batch that also starts the workers).  The
baseline, measured in the same run, is a ``DataLoader`` over an in-memory
``TensorDataset`` of float images of the same shape: the cost of batching alone.  The table
gives img/s, the ratio to that baseline, and the speed-up of 2 workers over 0.  Default
run: about 2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from analysis.cli import format_table  # noqa: E402
from datamodules import (  # noqa: E402
    CelebADataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    FFHQDataModule,
    LSUNDataModule,
    MNISTDataModule,
    PairedI2IDataModule,
)
from datamodules.synthetic import (  # noqa: E402
    write_celeba,
    write_cifar10,
    write_image_folder,
    write_image_zip,
    write_lsun,
    write_mnist,
)


def _cases(tmp: str, count: int, res: int) -> dict[str, tuple[Callable[[], object], Callable[[dict], object]]]:
    """name -> (writer, factory of the DataModule from the loader arguments)."""
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    per_batch = max(1, count // 5)
    return {
        "digits (in memory)": (lambda: None, lambda kw: DigitsDataModule(resolution=32, **kw)),
        "cifar10 (pickle)": (
            lambda: write_cifar10(p("cifar10"), per_batch=per_batch),
            lambda kw: CIFAR10DataModule(p("cifar10"), **kw),
        ),
        "mnist (idx.gz)": (
            lambda: write_mnist(p("mnist"), train_count=count, test_count=100, gzip=True),
            lambda kw: MNISTDataModule(p("mnist"), **kw),
        ),
        f"celeba (jpg, crop 140 -> {res})": (
            lambda: write_celeba(p("celeba"), count),
            lambda kw: CelebADataModule(p("celeba"), resolution=res, **kw),
        ),
        f"ffhq folder (png {res})": (
            lambda: write_image_folder(p("ffhq"), count, size=res),
            lambda kw: FFHQDataModule(p("ffhq"), resolution=res, **kw),
        ),
        f"ffhq zip (png {res})": (
            lambda: write_image_zip(p("ffhq.zip"), count, size=res),
            lambda kw: FFHQDataModule(p("ffhq.zip"), resolution=res, **kw),
        ),
        f"lsun lmdb (webp -> {res})": (
            lambda: write_lsun(p("lsun"), "church_outdoor", count),
            lambda kw: LSUNDataModule(p("lsun"), resolution=res, **kw),
        ),
        f"paired x4 over ffhq zip ({res})": (
            lambda: write_image_zip(p("paired.zip"), count, size=res),
            lambda kw: PairedI2IDataModule(
                source=FFHQDataModule(p("paired.zip"), resolution=res, **kw), degradation="downsample", scale=4
            ),
        ),
    }


def _rate(loader, seconds: float, min_batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # warm-up: starts the workers, opens files
    images, batches, start = 0, 0, time.perf_counter()
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        images += len(batch[0])
        batches += 1
        elapsed = time.perf_counter() - start
        if batches >= min_batches and elapsed >= seconds:
            return images / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000, help="images per synthetic dataset")
    parser.add_argument("--resolution", type=int, default=64, help="stored and loaded side of the face/scene sets")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--seconds", type=float, default=4.0, help="time per measurement")
    parser.add_argument("--min-batches", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of the case names to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # loader workers are processes; keep the main process from oversubscribing

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(tmp, args.count, args.resolution)
        for name, (write, make) in cases.items():
            if args.only and not any(s in name for s in args.only):
                continue
            start = time.perf_counter()
            write()
            write_s = time.perf_counter() - start
            rates = {}
            shape = None
            for workers in args.workers:
                kwargs = dict(batch_size=args.batch_size, num_workers=workers, seed=0)
                dm = make(kwargs)
                dm.prepare_data()
                dm.setup("fit")
                shape = tuple(dm.image_shape)
                rates[workers] = _rate(dm.train_dataloader(), args.seconds, args.min_batches)
            baseline_set = TensorDataset(torch.zeros(2048, *shape), torch.zeros(2048, dtype=torch.long))
            baseline = _rate(
                DataLoader(baseline_set, batch_size=args.batch_size, shuffle=True, drop_last=True),
                args.seconds / 2,
                args.min_batches,
            )
            row = {"dataset": name, "shape": "x".join(map(str, shape)), "write_s": write_s}
            for workers, rate in rates.items():
                row[f"img/s w={workers}"] = rate
                row[f"vs mem w={workers}"] = rate / baseline
            if 0 in rates and len(rates) > 1:
                other = max(w for w in rates if w)
                row[f"w={other}/w=0"] = rates[other] / rates[0]
            row["in-memory img/s"] = baseline
            rows.append(row)
            print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
    print()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(format_table(columns, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
