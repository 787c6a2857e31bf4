"""Every preset in configs/data/ parses as LightningCLI parses it and loads its dataset's real format."""

from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule

from datamodules.synthetic import write_celeba, write_cifar10, write_image_zip, write_lsun, write_mnist, write_pix2pix

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"

# preset -> (writer of a tiny copy under a root, the root key, expected image shape)
PRESETS = {
    "mnist32.yaml": (lambda r: write_mnist(r, 20, 10), "root", (1, 32, 32)),
    "cifar10.yaml": (lambda r: write_cifar10(r, per_batch=4), "root", (3, 32, 32)),
    "celeba64.yaml": (lambda r: write_celeba(r, 30), "root", (3, 64, 64)),
    "celeba128.yaml": (lambda r: write_celeba(r, 30), "root", (3, 128, 128)),
    "ffhq256.yaml": (lambda r: write_image_zip(f"{r}/ffhq.zip", 6, size=128), "root=zip", (3, 256, 256)),
    "lsun_church256.yaml": (lambda r: write_lsun(r, "church_outdoor", 8), "root", (3, 256, 256)),
    "celeba64_sr4.yaml": (lambda r: write_celeba(r, 30), "source.init_args.root", (3, 64, 64)),
    "celeba64_sketch.yaml": (lambda r: write_celeba(r, 30), "source.init_args.root", (3, 64, 64)),
    "facades.yaml": (lambda r: write_pix2pix(r, 3, size=32), "root", (3, 256, 256)),
}


def test_every_preset_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_loads_its_format(preset, tmp_path):
    write, key, shape = PRESETS[preset]
    write(str(tmp_path))
    root = str(tmp_path / "ffhq.zip") if key == "root=zip" else str(tmp_path)
    key = "root" if key == "root=zip" else key
    prefix = "source.init_args." if key.startswith("source") else ""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    config = parser.parse_args(
        [
            "--data",
            str(CONFIGS / preset),
            f"--data.init_args.{key}={root}",
            f"--data.init_args.{prefix}batch_size=2",
            f"--data.init_args.{prefix}num_workers=0",
        ]
    )
    dm = parser.instantiate_classes(config).data
    dm.prepare_data()
    dm.setup("fit")
    assert tuple(dm.image_shape) == shape
    first, second = next(iter(dm.train_dataloader()))
    assert first.shape == (2, *shape) and first.dtype == torch.float32
    assert -1 <= first.min() and first.max() <= 1
    if "sr4" in preset or "sketch" in preset or "facades" in preset:
        assert second.shape == first.shape  # (input, target) pairs
