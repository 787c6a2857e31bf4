"""LSUNDataModule on tiny LSUN categories: real LMDBs in the release's layout, and folders."""

from __future__ import annotations

import os

import lmdb
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from datamodules.base import DatasetNotFoundError
from datamodules.encoded import CorruptImageError, decode_image
from datamodules.lsun import LSUNDataModule
from datamodules.synthetic.images import encode
from datamodules.synthetic.lsun import export_lsun_folder, write_lsun

CAT = "church_outdoor"
COUNT = 40
URL = "https://github.com/fyu/lsun"


def small(root, **kwargs) -> LSUNDataModule:
    kwargs = {"resolution": 16, "batch_size": 4, "val_fraction": 0.1, "test_fraction": 0.1, **kwargs}
    return LSUNDataModule(str(root), **kwargs)


def put(lmdb_path: str, key: bytes, value: bytes) -> None:
    env = lmdb.open(lmdb_path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(key, value)
    env.close()


def items(dataset) -> tuple[torch.Tensor, list[int]]:
    pairs = [dataset[k] for k in range(len(dataset))]
    return torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """church_outdoor_train_lmdb (40 WebPs) and church_outdoor_val_lmdb (6)."""
    root = tmp_path_factory.mktemp("lsun_release")
    write_lsun(str(root), CAT, COUNT)
    write_lsun(str(root), CAT, 6, split="val", seed=1)
    return root


@pytest.fixture(scope="module")
def train_only(tmp_path_factory):
    """The same training LMDB without a val LMDB, plus LSUN's nested and flat exports of it."""
    root = tmp_path_factory.mktemp("lsun_train_only")
    keys = write_lsun(str(root / "db"), CAT, COUNT)
    lmdb_path = str(root / "db" / f"{CAT}_train_lmdb")
    export_lsun_folder(lmdb_path, str(root / "nested" / CAT))
    export_lsun_folder(lmdb_path, str(root / "flat"), flat=True)
    return root, keys


def test_lmdb_shapes_range_and_splits(release):
    dm = small(release)
    dm.setup()
    # the official val LMDB is the test split; val is carved from train
    assert [len(dm.train_set), len(dm.val_set), len(dm.test_set)] == [36, 4, 6]
    assert dm.sources["test"].location.endswith(f"{CAT}_val_lmdb")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and labels.tolist() == [-1] * 4
    key = dm.sources["train"].keys[0]
    assert len(key) == 40 and int(key, 16) >= 0  # hex ids, as in the release


def test_defaults():
    dm = LSUNDataModule("/nowhere")
    assert (dm.category, dm.resolution, dm.center_crop, dm.val_fraction) == (CAT, 64, None, 0.01)


def test_root_may_be_the_lmdb_directory(release):
    dm = small(os.path.join(release, f"{CAT}_train_lmdb"))
    dm.setup()
    assert len(dm.test_set) == 6  # the sibling val LMDB is found


def test_non_square_images_are_center_cropped(tmp_path):
    write_lsun(str(tmp_path), CAT, 4)
    # a 60 x 40 (w x h) image: a green 44 x 40 middle between blue sides
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 2] = 220
    image[:, 8:52] = (30, 200, 40)
    data = encode(image, "webp", quality=95)
    put(str(tmp_path / f"{CAT}_train_lmdb"), b"0" * 40, data)  # sorts first
    dm = small(tmp_path, resolution=20, val_fraction=0, test_fraction=0)
    dm.setup()
    out, _ = dm.train_set[0]
    expected = TF.resize(TF.center_crop(decode_image(data), [40, 40]), [20, 20], antialias=True)
    assert torch.equal(out, expected.float() / 127.5 - 1)
    assert ((out[2] + 1) * 127.5).max() < 90  # the blue sides are cut off


def test_lmdb_and_exported_folders_give_the_same_tensors(train_only):
    root, keys = train_only
    a = small(root / "db", seed=3)
    b = small(root / "nested", seed=3)  # root/<category>/0/0/a/.../<key>.webp
    c = small(root / "flat", seed=3)  # the images directly in root
    for dm in (a, b, c):
        dm.setup()
    assert [os.path.basename(f)[:-5].encode() for f in b.sources["train"].files] == keys
    for split in ("train_set", "val_set", "test_set"):
        x, _ = items(getattr(a, split))
        assert len(x) == {"train_set": 32, "val_set": 4, "test_set": 4}[split]
        assert torch.equal(x, items(getattr(b, split))[0]) and torch.equal(x, items(getattr(c, split))[0])


def test_carved_val_split_is_fixed_by_the_seed(release):
    def val(seed):
        dm = small(release, seed=seed)
        dm.setup()
        return dm.val_set.raw.indices

    assert val(0) == val(0)
    assert val(0) != val(1)


def test_loader_workers_read_the_lmdb(release):
    # setup opens the LMDB in this process; forked workers must reopen it (fork safety)
    dm = small(release, num_workers=2, drop_last=False)
    dm.setup()
    seen = sum(len(x) for x, _ in dm.train_dataloader())
    seen += sum(len(x) for x, _ in dm.test_dataloader())
    assert seen == 36 + 6
    assert sum(len(x) for x, _ in dm.train_dataloader()) == 36  # persistent workers, second epoch


def test_missing_data_names_directory_files_and_source(tmp_path):
    (tmp_path / "bedroom_train_lmdb").mkdir()
    (tmp_path / "bedroom_train_lmdb" / "data.mdb").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError) as info:
        small(tmp_path).setup()
    text = str(info.value)
    for part in (str(tmp_path), f"{CAT}_train_lmdb", "data.mdb", URL, "bedroom_train_lmdb"):
        assert part in text
    (tmp_path / f"{CAT}_train_lmdb.zip").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=f"{CAT}_train_lmdb.zip: unzip"):
        small(tmp_path).prepare_data()


def test_download_points_to_the_lsun_tools(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cannot download(.|\n)*download\.py -c <category>") as info:
        small(tmp_path, download=True).prepare_data()
    assert URL in str(info.value) and "download: true" not in str(info.value)


def test_truncated_lmdb_value_is_an_error_or_skipped(tmp_path):
    keys = write_lsun(str(tmp_path), CAT, 20)
    path = str(tmp_path / f"{CAT}_train_lmdb")
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        value = txn.get(keys[5])
    env.close()
    put(path, keys[5], value[: len(value) // 2])
    with pytest.raises(CorruptImageError, match=keys[5].decode()):
        small(tmp_path).setup()
    dm = small(tmp_path, skip_corrupt=True, val_fraction=0, test_fraction=0)
    with pytest.warns(UserWarning, match=keys[5].decode()):
        dm.setup()
    assert len(dm.train_set) == 19 and 5 not in dm.train_set.raw.indices


def test_garbage_file_in_folder_is_an_error_or_skipped(tmp_path):
    write_lsun(str(tmp_path / "db"), CAT, 12)
    export_lsun_folder(str(tmp_path / "db" / f"{CAT}_train_lmdb"), str(tmp_path / "images" / CAT), flat=True)
    (tmp_path / "images" / CAT / "ffff.webp").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(CorruptImageError, match="ffff.webp"):
        small(tmp_path / "images").setup()
    dm = small(tmp_path / "images", skip_corrupt=True, val_fraction=0, test_fraction=0)
    with pytest.warns(UserWarning, match="ffff.webp"):
        dm.setup()
    assert len(dm.train_set) == 12
