"""CelebADataModule on tiny CelebAs in the real layout (datamodules.synthetic.celeba)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from datamodules.base import DatasetNotFoundError
from datamodules.celeba import CelebADataModule
from datamodules.encoded import CorruptImageError, decode_image
from datamodules.synthetic.celeba import CELEBA_ATTRIBUTES, write_celeba
from datamodules.synthetic.images import encode

SMALL = (44, 54)  # width x height, the aspect of the real 178 x 218
COUNT = 60
URL = "mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def small(root, **kwargs) -> CelebADataModule:
    kwargs = {"resolution": 16, "center_crop": 28, "batch_size": 4, **kwargs}
    return CelebADataModule(str(root), **kwargs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_folder")
    write_celeba(str(root), COUNT, size=SMALL)
    return root


@pytest.fixture(scope="module")
def zipped(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_zip")
    write_celeba(str(root), COUNT, size=SMALL, zipped=True)
    return root


def partition_sizes(root) -> list[int]:
    with open(os.path.join(root, "celeba", "list_eval_partition.txt")) as f:
        codes = [int(line.split()[1]) for line in f if line.strip()]
    return [codes.count(c) for c in (0, 1, 2)]


def names_of(dataset) -> list[str]:
    raw = dataset.raw
    return [raw.source.files[i] for i in raw.indices]


def test_shapes_range_and_official_splits(folder):
    dm = small(folder)
    dm.setup("fit")
    sizes = partition_sizes(folder)
    assert sizes == [48, 6, 6]  # 162,770 / 19,867 / 19,962 of 202,599, scaled
    assert [len(dm.train_set), len(dm.val_set), len(dm.test_set)] == sizes
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert labels.tolist() == [-1] * 4
    assert dm.image_shape == (3, 16, 16) and dm.num_classes is None
    # the partition file is followed: val holds the files marked 1
    assert names_of(dm.val_set) == [f"{i:06d}.jpg" for i in range(49, 55)]


def test_root_may_be_the_celeba_folder(folder):
    dm = small(os.path.join(folder, "celeba"))
    dm.setup()
    assert len(dm.train_set) == 48


def test_default_center_crop_140_of_real_sized_images(tmp_path):
    write_celeba(str(tmp_path), 3, attrs=False, identities=False)  # real size, 178 x 218
    # 000001.jpg: a green 150 x 150 square in the middle, blue around it.
    image = np.zeros((218, 178, 3), np.uint8)
    image[..., 2] = 220
    top, left = (218 - 150) // 2, (178 - 150) // 2
    image[top : top + 150, left : left + 150] = (30, 200, 40)
    data = encode(image, "jpg")
    with open(os.path.join(tmp_path, "celeba", "img_align_celeba", "000001.jpg"), "wb") as f:
        f.write(data)

    dm = CelebADataModule(str(tmp_path), batch_size=1)
    assert dm.center_crop == 140 and dm.resolution == 64
    dm.setup()
    out, _ = dm.train_set[0]
    expected = TF.resize(TF.center_crop(decode_image(data), [140, 140]), [64, 64], antialias=True)
    assert torch.equal(out, expected.float() / 127.5 - 1)
    blue, green = (out[2] + 1) * 127.5, (out[1] + 1) * 127.5
    assert blue.max() < 80 and green.min() > 150  # only the green square is left

    whole = CelebADataModule(str(tmp_path), center_crop=None, batch_size=1)
    whole.setup()
    border = (whole.train_set[0][0][2] + 1) * 127.5
    assert border[:, 0].mean() > 150  # the 178 x 178 crop keeps the blue sides


def test_attribute_labels_match_the_file(folder):
    dm = small(folder, target="attr")
    dm.setup()
    assert dm.attr_names == list(CELEBA_ATTRIBUTES)
    with open(os.path.join(folder, "celeba", "list_attr_celeba.txt")) as f:
        lines = f.read().splitlines()
    assert lines[0] == str(COUNT) and lines[1].split() == list(CELEBA_ATTRIBUTES)
    table = {row.split()[0]: [int(v) for v in row.split()[1:]] for row in lines[2:]}
    for dataset in (dm.val_set, dm.test_set):
        for k, name in enumerate(names_of(dataset)):
            _, attr = dataset[k]
            assert attr.dtype == torch.long and attr.shape == (40,)
            assert attr.tolist() == [(v + 1) // 2 for v in table[name]]
    _, labels = next(iter(dm.val_dataloader()))
    assert labels.shape == (4, 40)


def test_identity_labels(folder):
    dm = small(folder, target="identity")
    dm.setup()
    assert dm.num_classes == 10_177
    with open(os.path.join(folder, "celeba", "identity_CelebA.txt")) as f:
        table = dict(line.split() for line in f if line.strip())
    names = names_of(dm.test_set)
    assert [dm.test_set[k][1] for k in range(len(names))] == [int(table[n]) - 1 for n in names]


def test_zip_gives_the_same_data_as_the_folder(folder, zipped):
    a, b = small(folder, target="attr"), small(zipped, target="attr")
    a.setup()
    b.setup()
    assert b.source.location.endswith("img_align_celeba.zip")
    for split in ("train_set", "val_set", "test_set"):
        x, y = getattr(a, split), getattr(b, split)
        assert len(x) == len(y)
        for k in range(0, len(x), 5):
            assert torch.equal(x[k][0], y[k][0]) and torch.equal(x[k][1], y[k][1])


def test_missing_data_names_directory_files_and_source(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        small(tmp_path).setup()
    text = str(info.value)
    for part in (str(tmp_path), "list_eval_partition.txt", "img_align_celeba", URL):
        assert part in text
    with pytest.raises(DatasetNotFoundError, match="list_attr_celeba.txt"):
        small(tmp_path, target="attr").prepare_data()


def test_missing_partition_file(tmp_path):
    write_celeba(str(tmp_path), 5, size=SMALL)
    os.remove(os.path.join(tmp_path, "celeba", "list_eval_partition.txt"))
    with pytest.raises(DatasetNotFoundError, match=r"Missing: .*list_eval_partition\.txt"):
        small(tmp_path).setup()


def test_listed_image_missing_is_an_error_or_skipped(tmp_path):
    write_celeba(str(tmp_path), 20, size=SMALL)
    os.remove(os.path.join(tmp_path, "celeba", "img_align_celeba", "000003.jpg"))
    with pytest.raises(DatasetNotFoundError, match="000003.jpg"):
        small(tmp_path).setup()
    dm = small(tmp_path, skip_corrupt=True)
    with pytest.warns(UserWarning, match="000003.jpg"):
        dm.setup()
    assert len(dm.train_set) == 16 - 1 and "000003.jpg" not in names_of(dm.train_set)


def test_corrupt_jpeg_is_an_error_or_skipped(tmp_path):
    write_celeba(str(tmp_path), 20, size=SMALL)
    folder = os.path.join(tmp_path, "celeba", "img_align_celeba")
    with open(os.path.join(folder, "000002.jpg"), "wb") as f:
        f.write(b"this is not a jpeg")
    with open(os.path.join(folder, "000005.jpg"), "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "000005.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])  # truncated: the header check passes, decoding fails
    with pytest.raises(CorruptImageError, match="000002.jpg") as info:
        small(tmp_path).setup()
    assert "000005.jpg" not in str(info.value)
    with pytest.raises(CorruptImageError, match=r"000002\.jpg(.|\n)*000005\.jpg"):
        small(tmp_path, verify="full").setup()
    dm = small(tmp_path, verify="full", skip_corrupt=True)
    with pytest.warns(UserWarning, match="2 unreadable"):
        dm.setup()
    assert len(dm.train_set) == 14


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise RuntimeError("Too many users have viewed or downloaded this file recently")

    monkeypatch.setattr(torchvision.datasets, "CelebA", refuse)
    with pytest.raises(DatasetNotFoundError, match="Google Drive") as info:
        small(tmp_path, download=True).prepare_data()
    assert URL in str(info.value) and os.path.join(str(tmp_path), "celeba") in str(info.value)


def test_cli_sees_the_shared_arguments():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(CelebADataModule, "data")
    config = parser.parse_args(["--data.root", "/data", "--data.target", "attr"]).data
    assert config.center_crop == 140 and config.resolution == 64 and config.target == "attr"
    for name in ("verify", "skip_corrupt", "batch_size", "hflip", "num_workers", "seed", "channels", "download"):
        assert name in config


def test_malformed_annotation_file_is_named(tmp_path):
    write_celeba(str(tmp_path), 5, size=SMALL)
    path = os.path.join(tmp_path, "celeba", "list_attr_celeba.txt")
    with open(path) as f:
        lines = f.read().splitlines()
    lines[3] = lines[3].replace(" 1", " yes", 1).replace("-1", "no", 1)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="list_attr_celeba.txt"):
        small(tmp_path, target="attr").setup()
