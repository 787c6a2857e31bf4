"""The embedded digits DataModule."""

import pytest
import torch

from datamodules import DigitsDataModule


def test_split_sizes_range_and_labels():
    dm = DigitsDataModule(resolution=32, batch_size=16)
    dm.setup("fit")
    sizes = [len(dm.train_set), len(dm.val_set), len(dm.test_set)]
    assert sum(sizes) == 1797
    assert sizes[1] == pytest.approx(180, abs=10) and sizes[2] == pytest.approx(180, abs=10)
    images, labels = dm.train_set.tensors
    assert images.shape[1:] == (1, 32, 32) == dm.image_shape
    assert images.min() == -1.0 and images.max() == 1.0
    for part in (dm.train_set, dm.val_set, dm.test_set):
        assert set(part.tensors[1].tolist()) == set(range(10))  # stratified: every class everywhere
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 32, 32) and y.dtype == torch.long


def test_split_is_disjoint_and_deterministic():
    def split(seed):
        dm = DigitsDataModule(seed=seed)
        dm.setup()
        return [torch.cat([t.flatten(1) for t in s.tensors[:1]]) for s in (dm.train_set, dm.val_set, dm.test_set)]

    a, b, c = split(0), split(0), split(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    # No image of the validation split is in the training split.
    train = {tuple(r.tolist()) for r in a[0]}
    assert sum(tuple(r.tolist()) in train for r in a[1]) <= 2  # the data has a couple of exact duplicates


def test_native_resolution_keeps_the_16_grey_levels():
    dm = DigitsDataModule(resolution=8)
    dm.setup()
    levels = torch.unique(dm.train_set.tensors[0])
    assert len(levels) == 17 and torch.allclose(levels, torch.linspace(-1, 1, 17))


def test_training_loader_drops_the_last_partial_batch():
    dm = DigitsDataModule(batch_size=100)
    dm.setup()
    assert all(len(x) == 100 for x, _ in dm.train_dataloader())
    assert sum(len(x) for x, _ in dm.val_dataloader()) == len(dm.val_set)


def test_bad_fractions_name_the_key():
    with pytest.raises(ValueError, match="val_fraction"):
        DigitsDataModule(val_fraction=0.6, test_fraction=0.5)
