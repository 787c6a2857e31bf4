"""CIFAR10DataModule on a tiny CIFAR-10 written in the official pickle-batch format."""

import os
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets

from datamodules.base import DatasetNotFoundError
from datamodules.cifar10 import CIFAR10DataModule
from datamodules.encoded import CorruptImageError
from datamodules.synthetic.cifar10 import CIFAR10_CLASSES, write_cifar10

PER_BATCH = 20  # 100 training images (10 per class), 20 test images


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cifar"))
    return root, write_cifar10(root, per_batch=PER_BATCH)


def _dm(root, **kwargs):
    dm = CIFAR10DataModule(root, **{"batch_size": 8, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _scaled(images_hwc):
    return torch.from_numpy(images_hwc).permute(0, 3, 1, 2).float() / 127.5 - 1


def _all(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))]), torch.tensor(
        [dataset[i][1] for i in range(len(dataset))]
    )


def test_batches_shapes_range_and_attributes(cifar):
    root, _ = cifar
    dm = _dm(root)
    assert dm.image_shape == (3, 32, 32) and dm.num_classes == 10 and dm.classes == CIFAR10_CLASSES
    assert not dm.hflip and dm.val_fraction == 0.1
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and labels.dtype == torch.int64


def test_pixels_and_labels_round_trip_exactly(cifar):
    root, written = cifar
    dm = _dm(root, batch_size=7)
    test_images, test_labels = zip(*dm.test_dataloader())  # official test batch, in file order
    assert torch.equal(torch.cat(test_images), _scaled(written["test"][0]))
    assert torch.equal(torch.cat(test_labels), torch.from_numpy(written["test"][1]))
    train_x, train_y = written["train"]
    for part in (dm.train_set, dm.val_set):
        idx = part.raw.indices
        images, labels = _all(part)
        assert torch.equal(images, _scaled(train_x[idx.numpy()]))
        assert torch.equal(labels, torch.from_numpy(train_y[idx.numpy()]))


def test_split_sizes_stratified_and_fixed_by_seed(cifar):
    root, _ = cifar
    dm = _dm(root)
    train, val = dm.train_set.raw.indices, dm.val_set.raw.indices
    assert len(train) + len(val) == 5 * PER_BATCH and len(val) == 10 and len(dm.test_set) == PER_BATCH
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(dm.val_set.raw.labels[val].tolist()) == list(range(10))  # one of each class
    assert torch.equal(_dm(root).val_set.raw.indices, val)
    assert not torch.equal(_dm(root, seed=1).val_set.raw.indices, val)
    dm = _dm(root, val_fraction=0)
    assert len(dm.train_set) == 5 * PER_BATCH and dm.val_dataloader() == []


def test_root_may_be_the_batches_folder_and_keys_may_be_bytes(tmp_path):
    written = write_cifar10(str(tmp_path), per_batch=10, seed=3, bytes_keys=True)
    dm = _dm(os.path.join(str(tmp_path), "cifar-10-batches-py"), batch_size=5)
    assert torch.equal(_all(dm.test_set)[0], _scaled(written["test"][0]))
    assert dm.classes == CIFAR10_CLASSES


def test_other_resolution_and_grey(cifar):
    root, _ = cifar
    dm = _dm(root, resolution=16, channels=1)
    assert dm.image_shape == (1, 16, 16)
    assert next(iter(dm.val_dataloader()))[0].shape == (8, 1, 16, 16)


def test_missing_files_name_root_files_and_source(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("download without download: true")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_download)
    dm = CIFAR10DataModule(str(tmp_path / "nowhere"))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(DatasetNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(tmp_path / "nowhere") in message and "data_batch_1" in message and "test_batch" in message
        assert "batches.meta" in message and "cs.toronto.edu/~kriz/cifar" in message and "download: true" in message


def test_download_only_when_asked_and_missing(tmp_path, monkeypatch):
    calls = []

    def fake_cifar10(root, train=True, download=False, **kwargs):
        calls.append((root, download))
        write_cifar10(root, per_batch=10)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    root = str(tmp_path)
    dm = CIFAR10DataModule(root, download=True, batch_size=4)
    dm.prepare_data()
    assert calls == [(root, True)]
    dm.setup()
    assert len(dm.test_set) == 10
    CIFAR10DataModule(root, download=True).prepare_data()  # complete: no second download
    CIFAR10DataModule(root).prepare_data()
    assert len(calls) == 1


def test_truncated_or_foreign_pickle_is_a_clear_error_in_setup(tmp_path):
    write_cifar10(str(tmp_path), per_batch=10)
    path = os.path.join(str(tmp_path), "cifar-10-batches-py", "data_batch_3")
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(content[: len(content) // 2])
    dm = CIFAR10DataModule(str(tmp_path))
    dm.prepare_data()  # the files are there; reading them is setup's job
    with pytest.raises(CorruptImageError, match="data_batch_3.*truncated or corrupt"):
        dm.setup()
    with open(path, "wb") as f:  # a pickle that would run code is refused, not run
        pickle.dump({"data": os.system}, f, protocol=2)
    with pytest.raises(CorruptImageError, match="data_batch_3.*refusing to load"):
        CIFAR10DataModule(str(tmp_path)).setup()
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((10, 100), np.uint8), "labels": [0] * 10}, f, protocol=2)
    with pytest.raises(CorruptImageError, match=r"data_batch_3.*uint8 array \[n, 3072\]"):
        CIFAR10DataModule(str(tmp_path)).setup()


def test_loader_workers_yield_every_image(cifar):
    root, _ = cifar
    dm = _dm(root, batch_size=6, num_workers=2)
    assert sum(len(x) for x, _ in dm.test_dataloader()) == PER_BATCH
    assert sum(len(x) for x, _ in dm.train_dataloader()) == len(dm.train_set) // 6 * 6


def test_reads_a_python_2_pickle_like_the_real_files(tmp_path):
    # What Python 2 and numpy 1.x wrote in 2009: str as SHORT_BINSTRING (read with
    # encoding="latin1", as torchvision does), arrays through numpy.core.multiarray.
    from datamodules.cifar10 import load_cifar_batch

    raw = bytes([0, 1, 2, 200, 255, 128])
    blob = (
        b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85q\x04"
        b"U\x01b\x87q\x05Rq\x06(K\x01K\x02K\x03\x86q\x07cnumpy\ndtype\nq\x08U\x02u1K\x00K\x01\x87Rq\t"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06" + raw + b"tb"
        b"U\x06labelsq\n]q\x0b(K\x00K\x01eU\x0bbatch_labelU\x10training batch 1u."
    )
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    batch = load_cifar_batch(str(path))
    assert batch["data"].dtype == np.uint8 and batch["data"].tobytes() == raw and batch["data"].shape == (2, 3)
    assert batch["labels"] == [0, 1] and batch["batch_label"] == "training batch 1"
