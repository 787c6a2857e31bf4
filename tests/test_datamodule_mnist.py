"""MNISTDataModule on a tiny MNIST written as official IDX files (plain and gzipped)."""

import gzip
import os

import pytest
import torch
import torchvision.datasets

from datamodules.base import DatasetNotFoundError
from datamodules.encoded import CorruptImageError
from datamodules.mnist import MNISTDataModule
from datamodules.synthetic.mnist import idx_bytes, write_mnist

TRAIN, TEST = 100, 20


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mnist"))
    return root, write_mnist(root, TRAIN, TEST, gzip=True)


def _dm(root, **kwargs):
    dm = MNISTDataModule(root, **{"batch_size": 8, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _all(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))]), torch.tensor(
        [dataset[i][1] for i in range(len(dataset))]
    )


def _scaled(images):
    return torch.from_numpy(images)[:, None].float() / 127.5 - 1


def test_batches_shapes_range_and_attributes(mnist):
    root, _ = mnist
    dm = _dm(root)
    assert dm.image_shape == (1, 28, 28) and dm.num_classes == 10 and dm.classes[3] == "3 - three"
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert images.min() == -1 and images.max() <= 1


def test_round_trip_and_pad_two_gives_lenet_32x32(mnist):
    root, written = mnist
    dm = _dm(root, pad=2, batch_size=7)
    assert dm.resolution == 32 and dm.image_shape == (1, 32, 32)
    images, labels = (torch.cat(t) for t in zip(*dm.test_dataloader()))
    assert images.shape == (TEST, 1, 32, 32)
    border = torch.ones_like(images, dtype=torch.bool)
    border[..., 2:30, 2:30] = False
    assert torch.all(images[border] == -1)
    assert torch.equal(images[..., 2:30, 2:30], _scaled(written["test"][0]))
    assert torch.equal(labels, torch.from_numpy(written["test"][1]))
    idx = dm.val_set.raw.indices.numpy()
    val_images, val_labels = _all(dm.val_set)
    assert torch.equal(val_images[..., 2:30, 2:30], _scaled(written["train"][0][idx]))
    assert torch.equal(val_labels, torch.from_numpy(written["train"][1][idx]))
    assert _dm(root, pad=2, resolution=28).image_shape == (1, 28, 28)  # padded, then resized


def test_split_sizes_stratified_and_fixed_by_seed(mnist):
    root, _ = mnist
    dm = _dm(root)
    train, val = dm.train_set.raw.indices, dm.val_set.raw.indices
    assert len(train) + len(val) == TRAIN and len(val) == 10 and len(dm.test_set) == TEST
    assert not set(train.tolist()) & set(val.tolist())
    assert torch.equal(_dm(root).val_set.raw.indices, val)
    assert not torch.equal(_dm(root, seed=1).val_set.raw.indices, val)


def test_gzipped_plain_and_flat_layouts_read_the_same(mnist, tmp_path):
    root, _ = mnist
    plain = str(tmp_path / "plain")
    write_mnist(plain, TRAIN, TEST, gzip=False)
    assert not any(name.endswith(".gz") for name in os.listdir(os.path.join(plain, "MNIST", "raw")))
    flat = os.path.join(plain, "MNIST", "raw")  # the four files directly in root
    a, b, c = (_dm(r) for r in (root, plain, flat))
    for split in ("train_set", "val_set", "test_set"):
        x, y = _all(getattr(a, split))
        for other in (b, c):
            x2, y2 = _all(getattr(other, split))
            assert torch.equal(x, x2) and torch.equal(y, y2)


def test_fashion_variant(tmp_path):
    written = write_mnist(str(tmp_path), 40, 10, folder="FashionMNIST")
    dm = _dm(str(tmp_path), variant="fashion")
    assert dm.classes[9] == "Ankle boot" and "fashion-mnist" in dm.source_url
    assert torch.equal(_all(dm.test_set)[0], _scaled(written["test"][0]))
    with pytest.raises(DatasetNotFoundError, match="MNIST/raw"):
        _dm(str(tmp_path))  # plain MNIST is not there


def test_missing_files_name_root_files_and_source(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("download without download: true")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_download)
    dm = MNISTDataModule(str(tmp_path / "nowhere"))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(DatasetNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(tmp_path / "nowhere") in message and "download: true" in message
        assert all(n in message for n in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
        assert "yann.lecun.com/exdb/mnist" in message


def test_download_only_when_asked_and_missing(tmp_path, monkeypatch):
    calls = []

    def fake_mnist(root, train=True, download=False, **kwargs):
        calls.append((root, download))
        write_mnist(root, 30, 10)

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    root = str(tmp_path)
    dm = MNISTDataModule(root, download=True, batch_size=4)
    dm.prepare_data()
    assert calls == [(root, True)]
    dm.setup()
    assert len(dm.test_set) == 10
    MNISTDataModule(root, download=True).prepare_data()
    MNISTDataModule(root).prepare_data()
    assert len(calls) == 1


def _raw(root, name):
    return os.path.join(root, "MNIST", "raw", name)


def test_wrong_magic_truncation_and_count_mismatch_are_clear_errors(tmp_path):
    root = str(tmp_path)
    written = write_mnist(root, 30, 10, gzip=False)
    labels = _raw(root, "t10k-labels-idx1-ubyte")
    with open(labels, "wb") as f:  # an images file where the labels should be
        f.write(idx_bytes(written["test"][0], 2051))
    dm = MNISTDataModule(root)
    dm.prepare_data()
    with pytest.raises(
        CorruptImageError, match=r"t10k-labels-idx1-ubyte: not an IDX file of labels.*magic number 2051"
    ):
        dm.setup()
    with open(labels, "wb") as f:  # 9 labels for 10 images
        f.write(idx_bytes(written["test"][1][:9], 2049))
    with pytest.raises(CorruptImageError, match=r"t10k-images-idx3-ubyte holds 10 images but .*t10k-labels.* 9 labels"):
        MNISTDataModule(root).setup()
    images = _raw(root, "train-images-idx3-ubyte")
    with open(images, "rb") as f:
        content = f.read()
    with open(images, "wb") as f:
        f.write(content[:-100])
    with pytest.raises(CorruptImageError, match=r"train-images-idx3-ubyte: the header says 30 x 28 x 28.*truncated"):
        MNISTDataModule(root).setup()
    os.remove(images)
    with open(images + ".gz", "wb") as f:  # a cut-off gzip stream
        f.write(gzip.compress(content)[:50])
    with pytest.raises(CorruptImageError, match=r"train-images-idx3-ubyte.gz: cannot read"):
        MNISTDataModule(root).setup()


def test_loader_workers_yield_every_image(mnist):
    root, _ = mnist
    dm = _dm(root, batch_size=6, num_workers=2, pad=2)
    assert sum(len(x) for x, _ in dm.test_dataloader()) == TEST
