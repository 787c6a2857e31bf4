"""Tiny datasets written in each dataset's real on-disk format, for tests and benchmarks.

Nothing here is a format of our own: each writer produces the files the real dataset is
distributed as (or that the standard tooling makes), filled with small synthetic images
(:func:`synthetic_images`), so the DataModules are exercised on the exact code path real
data takes.  To try a loader without the real data (``python -m tools synthetic-data -h``)::

    python -m tools synthetic-data ffhq-zip data/toy/ffhq-64x64.zip --count 200 --size 64
    python train.py fit -c configs/data/... --data.init_args.root data/toy/ffhq-64x64.zip
"""

from datamodules.synthetic.celeba import CELEBA_ATTRIBUTES, write_celeba
from datamodules.synthetic.cifar10 import write_cifar10
from datamodules.synthetic.images import encode, synthetic_images, write_image_folder, write_image_zip
from datamodules.synthetic.lsun import export_lsun_folder, write_lsun
from datamodules.synthetic.mnist import write_mnist
from datamodules.synthetic.paired import write_pix2pix

__all__ = [
    "CELEBA_ATTRIBUTES",
    "encode",
    "export_lsun_folder",
    "synthetic_images",
    "write_celeba",
    "write_cifar10",
    "write_image_folder",
    "write_image_zip",
    "write_lsun",
    "write_mnist",
    "write_pix2pix",
]
