"""The shared DataModule recipe (datamodules/base.py, encoded.py) on image folders, zips and FFHQ."""

import os
import warnings

import numpy as np
import pytest
import torch

from datamodules import CorruptImageError, DatasetNotFoundError, FFHQDataModule, ImageFolderDataModule
from datamodules.base import ImageTransform, split_indices, stratified_split
from datamodules.encoded import FolderSource, decode_image, find_corrupt
from datamodules.synthetic import encode, synthetic_images, write_image_folder, write_image_zip
from train import main


def _dm(root, **kwargs):
    kwargs = {"resolution": 16, "batch_size": 4, **kwargs}
    dm = ImageFolderDataModule(root, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _all(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))]), [dataset[i][1] for i in range(len(dataset))]


# ---------------------------------------------------------------------------- transform
def test_transform_scales_uint8_exactly_to_minus_one_one():
    image = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    out = ImageTransform(16)(image)
    assert out.dtype == torch.float32
    assert torch.equal(out, image.float() / 127.5 - 1)
    assert out.min() == -1 and out.max() == 1


def test_transform_center_crops_non_square_to_the_short_side_then_resizes():
    image = torch.zeros(3, 20, 40, dtype=torch.uint8)
    image[:, :, 10:30] = 255  # the central 20x20 square is white, the sides black
    out = ImageTransform(10)(image)
    assert out.shape == (3, 10, 10) and torch.all(out == 1)
    # An explicit crop of 10 out of a 20x20 image, no resize.
    image = torch.zeros(1, 20, 20, dtype=torch.uint8)
    image[:, 5:15, 5:15] = 200
    assert torch.all(ImageTransform(10, center_crop=10)(image) == 200 / 127.5 - 1)


def test_transform_crop_larger_than_image_names_the_key():
    with pytest.raises(ValueError, match="center_crop=64"):
        ImageTransform(32, center_crop=64)(torch.zeros(3, 32, 32, dtype=torch.uint8))


def test_transform_channels_grey_and_rgb():
    rgb = torch.zeros(3, 4, 4, dtype=torch.uint8)
    rgb[0] = 255  # pure red: luma 0.299 * 255
    grey = ImageTransform(4, channels=1)(rgb)
    assert grey.shape == (1, 4, 4)
    assert grey[0, 0, 0].item() == pytest.approx(round(0.299 * 255) / 127.5 - 1, abs=1 / 127.5)
    repeated = ImageTransform(4, channels=3)(torch.full((1, 4, 4), 50, dtype=torch.uint8))
    assert repeated.shape == (3, 4, 4) and torch.all(repeated == repeated[0])
    rgba = torch.full((4, 4, 4), 7, dtype=torch.uint8)
    assert ImageTransform(4)(rgba).shape == (3, 4, 4)


def test_transform_hflip_flips_about_half_the_time():
    image = torch.zeros(1, 2, 2, dtype=torch.uint8)
    image[:, :, 0] = 255
    torch.manual_seed(0)
    flipped = sum(bool(ImageTransform(2, hflip=True)(image)[0, 0, 1] == 1) for _ in range(400))
    assert 150 < flipped < 250
    assert ImageTransform(2, hflip=False)(image)[0, 0, 0] == 1


# ---------------------------------------------------------------------------- splits
def test_split_indices_partition_and_determinism():
    a = split_indices(100, (0.1, 0.2), seed=3)
    assert [len(p) for p in a] == [70, 10, 20]
    assert torch.equal(torch.sort(torch.cat(a)).values, torch.arange(100))
    assert all(torch.equal(x, y) for x, y in zip(a, split_indices(100, (0.1, 0.2), seed=3)))
    assert not torch.equal(a[1], split_indices(100, (0.1, 0.2), seed=4)[1])


def test_stratified_split_keeps_class_shares():
    labels = torch.arange(200) % 4
    train, val = stratified_split(labels, (0.25,), seed=0)
    assert torch.bincount(labels[val]).tolist() == [12, 12, 12, 12] or torch.bincount(labels[val]).tolist() == [
        13,
        13,
        13,
        13,
    ]
    assert len(train) + len(val) == 200


# ---------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_decode_round_trips_lossless_formats(fmt):
    images, _ = synthetic_images(2, 12, 10, seed=1)
    data = encode(images[0], fmt) if fmt == "png" else None
    if fmt == "webp":
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(images[0]).save(buffer, "WEBP", lossless=True)
        data = buffer.getvalue()
    decoded = decode_image(data, channels=3)
    assert decoded.shape == (3, 12, 10)
    assert torch.equal(decoded, torch.from_numpy(images[0]).permute(2, 0, 1))


def test_decode_16bit_png_and_bmp_fallback():
    import io

    from PIL import Image

    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, "PNG")
    out = decode_image(buffer.getvalue(), channels=1)
    assert out.dtype == torch.uint8 and torch.equal(out[0], torch.from_numpy((wide >> 8).astype(np.uint8)))
    buffer = io.BytesIO()
    Image.fromarray(np.full((5, 6, 3), 9, np.uint8)).save(buffer, "BMP")
    assert torch.all(decode_image(buffer.getvalue()) == 9)
    with pytest.raises(CorruptImageError):
        decode_image(b"definitely not an image")


# ---------------------------------------------------------------------------- folder / zip / FFHQ
def test_folder_and_zip_give_the_same_images_and_labels(tmp_path):
    write_image_folder(str(tmp_path / "folder"), 30, size=16, labels=True)
    write_image_zip(str(tmp_path / "data.zip"), 30, size=16, labels=True)
    a = _dm(str(tmp_path / "folder"), use_labels=True)
    b = _dm(str(tmp_path / "data.zip"), use_labels=True)
    for split in ("train_set", "val_set", "test_set"):
        xa, ya = _all(getattr(a, split))
        xb, yb = _all(getattr(b, split))
        assert torch.equal(xa, xb) and ya == yb
    assert a.num_classes == 10 and len(a.train_set) + len(a.val_set) + len(a.test_set) == 30
    # The pixels are the written ones, scaled to [-1, 1].
    images, labels = synthetic_images(30, 16)
    first = int(a.train_set.raw.indices[0])
    x, y = a.train_set[0]
    assert torch.equal(x, torch.from_numpy(images[first]).permute(2, 0, 1).float() / 127.5 - 1)
    assert y == labels[first]


def test_unlabelled_folder_yields_minus_one_and_batches(tmp_path):
    write_image_folder(str(tmp_path), 12, size=16)
    dm = _dm(str(tmp_path), val_fraction=0.25, test_fraction=0.0)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1
    assert torch.all(y == -1) and dm.num_classes is None
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (9, 3, 0)
    with pytest.raises(ValueError, match="test split is empty"):
        dm.test_dataloader()


def test_split_is_deterministic_under_the_seed(tmp_path):
    write_image_folder(str(tmp_path), 40, size=8)
    idx = lambda dm: dm.val_set.raw.indices  # noqa: E731
    assert idx(_dm(str(tmp_path), seed=1)) == idx(_dm(str(tmp_path), seed=1))
    assert idx(_dm(str(tmp_path), seed=1)) != idx(_dm(str(tmp_path), seed=2))


def test_images_of_another_size_are_resized_and_grey_conversion(tmp_path):
    write_image_folder(str(tmp_path), 8, size=64)
    dm = _dm(str(tmp_path), channels=1, val_fraction=0, test_fraction=0)
    assert dm.image_shape == (1, 16, 16) and dm.train_set[0][0].shape == (1, 16, 16)


def test_empty_val_split_means_no_validation(tmp_path):
    write_image_folder(str(tmp_path), 8, size=8)
    dm = _dm(str(tmp_path), val_fraction=0, test_fraction=0)
    assert dm.val_dataloader() == []


def test_train_split_smaller_than_a_batch_is_an_error(tmp_path):
    write_image_folder(str(tmp_path), 6, size=8)
    dm = _dm(str(tmp_path), batch_size=16, val_fraction=0, test_fraction=0)
    with pytest.raises(ValueError, match="batch_size=16"):
        dm.train_dataloader()


def test_workers_load_zip_in_their_own_process(tmp_path):
    write_image_zip(str(tmp_path / "d.zip"), 24, size=8)
    dm = _dm(str(tmp_path / "d.zip"), num_workers=2, batch_size=5, val_fraction=0, test_fraction=0, drop_last=False)
    assert sum(len(x) for x, _ in dm.train_dataloader()) == 24


def test_missing_dataset_error_names_directory_files_and_source(tmp_path):
    dm = FFHQDataModule(str(tmp_path / "ffhq" / "images1024x1024"), resolution=64)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / "ffhq" / "images1024x1024") in message
    assert "images1024x1024" in message and "dataset_tool.py" in message
    assert "github.com/NVlabs/ffhq-dataset" in message and "data.init_args.root" in message
    with pytest.raises(DatasetNotFoundError):
        dm.setup("fit")  # setup checks too (it runs on every process; prepare_data may not)


def test_not_a_zip_is_reported(tmp_path):
    (tmp_path / "d.zip").write_bytes(b"junk")
    with pytest.raises(DatasetNotFoundError, match="not a readable zip"):
        ImageFolderDataModule(str(tmp_path / "d.zip"), resolution=8).setup()


def test_ffhq_resolution_must_be_a_power_of_two(tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        FFHQDataModule(str(tmp_path), resolution=48)


def test_labels_need_dataset_json(tmp_path):
    write_image_folder(str(tmp_path), 4, size=8)
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        _dm(str(tmp_path), use_labels=True)


# ---------------------------------------------------------------------------- corrupt files
def _corrupt(tmp_path):
    names = write_image_folder(str(tmp_path), 20, size=8)
    (tmp_path / names[3]).write_bytes(b"not a png")
    data = (tmp_path / names[7]).read_bytes()
    (tmp_path / names[7]).write_bytes(data[: len(data) // 2])  # truncated
    return names


def test_corrupt_files_fail_setup_with_their_list(tmp_path):
    names = _corrupt(tmp_path)
    with pytest.raises(CorruptImageError) as err:
        _dm(str(tmp_path))
    message = str(err.value)
    assert "2 unreadable" in message and names[3] in message and names[7] in message and "skip_corrupt" in message


def test_skip_corrupt_leaves_them_out_with_a_warning(tmp_path):
    names = _corrupt(tmp_path)
    with pytest.warns(UserWarning, match="leaving out 2 unreadable"):
        dm = _dm(str(tmp_path), skip_corrupt=True, val_fraction=0, test_fraction=0)
    assert len(dm.train_set) == 18
    assert not {3, 7} & set(dm.train_set.raw.indices)
    source = FolderSource(str(tmp_path))
    assert set(find_corrupt(source, "full")) == {3, 7} and source.name(3) == names[3]


def test_unverified_corrupt_file_in_a_worker_names_the_file_or_is_skipped(tmp_path):
    _corrupt(tmp_path)
    common = dict(verify="none", val_fraction=0, test_fraction=0, batch_size=20, drop_last=False, num_workers=1)
    dm = _dm(str(tmp_path), **common)
    with pytest.raises(Exception, match="img00000003.png|img00000007.png"):
        list(dm.train_dataloader())
    dm = _dm(str(tmp_path), skip_corrupt=True, **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((x, _),) = list(dm.train_dataloader())
    assert x.shape[0] == 20 and torch.isfinite(x).all()  # the two bad ones were replaced by readable images


# ---------------------------------------------------------------------------- through train.py
def test_train_cli_fits_on_an_ffhq_zip(tmp_path):
    write_image_zip(str(tmp_path / "ffhq-16x16.zip"), 40, size=16)
    cli = main(
        [
            "fit",
            "--model=lightning_modules.NoiseDimGAN",
            "--model.init_args.resolution=16",
            "--model.init_args.g_width=8",
            "--model.init_args.d_width=8",
            "--model.init_args.noise.dim=8",
            "--data=datamodules.FFHQDataModule",
            f"--data.init_args.root={tmp_path / 'ffhq-16x16.zip'}",
            "--data.init_args.resolution=16",
            "--data.init_args.batch_size=8",
            "--data.init_args.val_fraction=0.2",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.max_steps=4",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]
    )
    assert cli.trainer.global_step == 4
    assert cli.datamodule.image_shape == (3, 16, 16) and len(cli.datamodule.val_set) == 8


def test_train_cli_missing_data_fails_before_training(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ffhq"):
        main(
            [
                "fit",
                "--model=lightning_modules.NoiseDimGAN",
                "--data=datamodules.FFHQDataModule",
                f"--data.init_args.root={tmp_path / 'ffhq'}",
                "--data.init_args.resolution=32",
                f"--trainer.default_root_dir={tmp_path}",
                "--trainer.logger=false",
            ]
        )
    assert not os.path.exists(tmp_path / "checkpoints")


def test_unaugmented_split_never_flips(tmp_path):
    write_image_folder(str(tmp_path), 8, size=8)
    dm = _dm(str(tmp_path), resolution=8, hflip=True, val_fraction=0, test_fraction=0)
    images, _ = synthetic_images(8, 8)
    plain = dm.unaugmented("train")
    expected = torch.from_numpy(images[plain.raw.indices[0]]).permute(2, 0, 1).float() / 127.5 - 1
    torch.manual_seed(0)
    assert all(torch.equal(plain[0][0], expected) for _ in range(20))
    assert any(not torch.equal(dm.train_set[0][0], expected) for _ in range(20))  # the training split flips
