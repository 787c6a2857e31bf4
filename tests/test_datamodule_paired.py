"""Paired data for image-to-image translation: degradations, PairedI2IDataModule, AlignedPairsDataModule."""

import os
import shutil

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from datamodules import DatasetNotFoundError, DigitsDataModule, ImageFolderDataModule
from datamodules.degradations import DEGRADATIONS, blur_kernel_size, build_degradation, downsample, edges, grey, luma
from datamodules.paired import AlignedPairsDataModule, PairedI2IDataModule
from datamodules.synthetic import write_image_folder
from datamodules.synthetic.paired import write_pix2pix


def _extreme_images(n=2, c=3, size=16):
    """Random +-1 pixels (worst case for bicubic overshoot) and a smooth random image."""
    g = torch.Generator().manual_seed(0)
    sharp = torch.randint(0, 2, (n, c, size, size), generator=g).float() * 2 - 1
    smooth = torch.nn.functional.interpolate(torch.rand(n, c, 4, 4, generator=g) * 2 - 1, size=size, mode="bilinear")
    return torch.cat([sharp, smooth])


# ---------------------------------------------------------------------------- degradations
@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_degradation_keeps_shape_and_range_batched_or_not(name, channels):
    images = _extreme_images(c=channels)
    degradation = build_degradation(name)
    out = degradation(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= -1 and out.max() <= 1
    single = torch.stack([degradation(image) for image in images])
    assert torch.allclose(out, single, atol=1e-6)  # per-image, whether batched or not


def test_none_is_the_identity_on_a_copy():
    images = _extreme_images()
    out = build_degradation("none")(images)
    assert torch.equal(out, images) and out.data_ptr() != images.data_ptr()


def test_downsample_area_nearest_keeps_block_constant_images_and_wipes_a_checkerboard():
    k = 4
    low = torch.randint(-64, 65, (2, 3, 4, 4)) / 64.0  # dyadic levels: block means are exact in float
    blocks = low.repeat_interleave(k, -2).repeat_interleave(k, -1)  # constant k x k blocks
    assert torch.equal(downsample(blocks, k, down_mode="area", up_mode="nearest"), blocks)
    uint8_levels = (torch.randint(0, 256, (2, 3, 4, 4)) / 127.5 - 1).repeat_interleave(k, -2).repeat_interleave(k, -1)
    assert torch.allclose(downsample(uint8_levels, k, down_mode="area", up_mode="nearest"), uint8_levels, atol=1e-6)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1  # period 2
    checker = checker.expand(1, 3, 16, 16)
    assert downsample(checker, 2, down_mode="area", up_mode="nearest").abs().max() < 1e-6
    # The antialiased bicubic default also removes it (up to rounding, away from the borders).
    assert downsample(checker, 2)[..., 4:-4, 4:-4].abs().max() < 1e-4


def test_downsample_keeps_a_smooth_image_and_loses_detail():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.8 * torch.sin(torch.pi * (xx + 0.5 * yy)))[None].expand(3, 32, 32)
    assert (downsample(smooth, 4) - smooth).abs().mean() < 0.02
    noise = _extreme_images()[:2]
    assert (downsample(noise, 4) - noise).abs().mean() > 0.5
    for up in ("bicubic", "bilinear", "nearest"):
        assert downsample(smooth, 4, up_mode=up).shape == smooth.shape
    with pytest.raises(ValueError, match="not a multiple of the scale 3"):
        downsample(smooth, 3)


def test_blur_formula_and_kernel():
    assert blur_kernel_size(1.0) == 7 and blur_kernel_size(2.0) == 13 and blur_kernel_size(0.5) == 5
    flat = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(build_degradation("blur", sigma=2.0)(flat), flat, atol=1e-6)
    delta = torch.zeros(1, 33, 33)
    delta[0, 16, 16] = 1
    out = build_degradation("blur", sigma=1.5)(delta)
    assert out.sum() == pytest.approx(1.0, abs=1e-5) and out.max() < 0.1 and out[0, 16, 16] == out.max()
    assert build_degradation("blur", sigma=5.0)(torch.rand(3, 4, 4)).shape == (3, 4, 4)  # kernel cut to fit


def test_grey_channels_are_equal_to_the_luma():
    images = _extreme_images()
    out = grey(images)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    r, g, b = images.unbind(1)
    assert torch.allclose(out[:, 0], 0.2989 * r + 0.587 * g + 0.114 * b, atol=1e-4)
    single = images[:, :1]
    assert torch.equal(grey(single), single) and torch.equal(luma(single), single)


def test_edges_of_a_flat_image_are_white_and_of_a_step_a_dark_line():
    assert torch.equal(edges(torch.full((3, 16, 16), -0.4)), torch.ones(3, 16, 16))
    step = torch.full((3, 16, 16), -1.0)
    step[..., 8:] = 1.0
    for threshold in (None, 0.5):
        out = edges(step, threshold)
        assert torch.all(out[..., 7:9] == -1)  # the Sobel kernel sees the step from both columns
        assert torch.all(out[..., :7] == 1) and torch.all(out[..., 9:] == 1)
    binary = edges(_extreme_images(), threshold=0.3)
    assert set(binary.unique().tolist()) <= {-1.0, 1.0}
    # Per-image normalisation: contrast does not matter.
    assert torch.allclose(edges(step * 0.1), edges(step), atol=1e-6)


def test_build_degradation_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match="choose one of downsample, blur"):
        build_degradation("jpeg")
    with pytest.raises(ValueError, match="'blur' takes sigma, got scale"):
        build_degradation("blur", scale=2)
    with pytest.raises(ValueError, match="threshold"):
        build_degradation("edges", threshold=1.5)
    expected = "Downsample(scale=2, down_mode='bicubic', up_mode='bicubic')"
    assert repr(build_degradation("downsample", scale=2)) == expected


# ---------------------------------------------------------------------------- PairedI2IDataModule
def test_paired_over_digits_targets_are_the_digits_and_inputs_their_degradation():
    source = DigitsDataModule(resolution=32, batch_size=16)
    dm = PairedI2IDataModule(source, degradation="downsample", scale=4)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.image_shape == dm.input_shape == (1, 32, 32) and dm.batch_size == 16
    batch = next(iter(dm.val_dataloader()))  # not shuffled: the first 16 validation digits
    assert len(batch) == 2  # (input, target): labels dropped
    x, y = batch
    assert torch.equal(y, source.val_set.tensors[0][:16])
    assert torch.equal(x, downsample(y, 4)) and not torch.equal(x, y)
    train = list(dm.train_dataloader())
    assert all(len(x) == 16 for x, _ in train) and len(train) == len(source.train_set) // 16  # the source's drop_last
    assert source.train_set is not dm.train_set and source.train_set.tensors[0].shape[1:] == (1, 32, 32)  # restored
    dm.batch_size = 8
    assert source.batch_size == 8 and len(next(iter(dm.test_dataloader()))[0]) == 8


def test_paired_over_an_image_folder_with_flips(tmp_path):
    write_image_folder(str(tmp_path), 24, size=16)
    source = ImageFolderDataModule(str(tmp_path), resolution=16, batch_size=4, hflip=True, val_fraction=0.25)
    dm = PairedI2IDataModule(source, degradation="grey")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.image_shape == (3, 16, 16)
    for x, y in dm.train_dataloader():
        assert x.shape == y.shape == (4, 3, 16, 16)
        assert torch.equal(x, grey(y))  # degraded after the source's flip: always aligned
    x, y = next(iter(dm.val_dataloader()))
    assert torch.equal(y, torch.stack([source.val_set[i][0] for i in range(len(y))]))


def test_paired_checks_its_arguments_and_the_scale():
    with pytest.raises(TypeError, match="LightningDataModule"):
        PairedI2IDataModule(object())
    with pytest.raises(ValueError, match="choose one of"):
        PairedI2IDataModule(DigitsDataModule(), degradation="jpeg")
    dm = PairedI2IDataModule(DigitsDataModule(resolution=32), scale=3)
    with pytest.raises(ValueError, match="not a multiple of the scale 3"):
        dm.setup("fit")
    with pytest.raises(RuntimeError, match="setup"):
        PairedI2IDataModule(DigitsDataModule()).train_dataloader()


class _PairProbe(LightningModule):
    """Checks what a model sees through the Trainer: pairs, and trainer.datamodule's shapes."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Conv2d(1, 1, 1)
        self.seen = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        assert self.trainer.datamodule.image_shape == self.trainer.datamodule.input_shape == tuple(y.shape[1:])
        self.seen.append((x, y))
        return (self.layer(x) - y).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
def test_paired_under_a_trainer_forwards_prepare_data_and_setup(tmp_path):
    source = DigitsDataModule(resolution=16, batch_size=8)
    dm = PairedI2IDataModule(source, degradation="blur", blur_sigma=1.0)
    model = _PairProbe()
    trainer = Trainer(
        fast_dev_run=2,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    assert source.train_set is not None and source.trainer is trainer
    assert len(model.seen) == 2
    for x, y in model.seen:
        assert torch.allclose(x, build_degradation("blur", sigma=1.0)(y))


def test_cli_accepts_a_nested_source(capsys):
    from train import main

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--print_config",
                "--data",
                "datamodules.paired.PairedI2IDataModule",
                "--data.source",
                "datamodules.DigitsDataModule",
                "--data.source.init_args.batch_size",
                "8",
                "--data.degradation",
                "edges",
                "--model",
                "lightning_modules.NoiseDimGAN",
            ]
        )
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "class_path: datamodules.DigitsDataModule" in out and "batch_size: 8" in out and "degradation: edges" in out


# ---------------------------------------------------------------------------- AlignedPairsDataModule
def _aligned(root, **kwargs):
    kwargs = {"resolution": 16, "batch_size": 4, "hflip": False, **kwargs}
    dm = AlignedPairsDataModule(str(root), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _items(dataset):
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


@pytest.mark.parametrize("layout", ["side_by_side", "folders"])
def test_aligned_pairs_both_layouts_splits_and_direction(tmp_path, layout):
    write_pix2pix(str(tmp_path), {"train": 8, "val": 3, "test": 2}, size=16, layout=layout)
    ext = ".jpg" if layout == "side_by_side" else ".png"
    assert os.path.exists(tmp_path / "train" / ("1" + ext if layout == "side_by_side" else "A/1.png"))
    dm = _aligned(tmp_path, layout=layout)
    assert [len(dm.train_set), len(dm.val_set), len(dm.test_set)] == [8, 3, 2]
    assert dm.image_shape == dm.input_shape == (3, 16, 16)
    x, y = _items(dm.train_set)
    # A = 255 - B: in [-1, 1] the input is minus the target (JPEG: up to its error).
    tolerance = 0.25 if layout == "side_by_side" else 1e-6
    assert (x + y).abs().max() <= tolerance and (x + y).abs().mean() < 0.03
    assert (x - y).abs().mean() > 0.1
    bx, by = _items(_aligned(tmp_path, layout=layout, direction="BtoA").train_set)
    assert torch.equal(bx, y) and torch.equal(by, x)
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == yb.shape == (4, 3, 16, 16)
    grey_dm = _aligned(tmp_path, layout=layout, channels=1, resolution=8)
    assert grey_dm.train_set[0][0].shape == grey_dm.train_set[0][1].shape == (1, 8, 8)


def test_aligned_pairs_are_flipped_together(tmp_path):
    write_pix2pix(str(tmp_path), {"train": 4}, size=16, layout="folders")
    reference = _items(_aligned(tmp_path, layout="folders").train_set)[1]
    dm = _aligned(tmp_path, layout="folders", hflip=True)
    torch.manual_seed(0)
    flipped = kept = 0
    for _ in range(16):
        for i in range(len(dm.train_set)):
            x, y = dm.train_set[i]
            assert torch.allclose(x, -y, atol=1e-6)  # the same flip on both, every time
            if torch.equal(y, reference[i]):
                kept += 1
            else:
                assert torch.equal(y, reference[i].flip(-1))
                flipped += 1
    assert flipped > 10 and kept > 10
    assert not dm.val_set.transform.hflip and not dm.test_set.transform.hflip  # training only


def test_aligned_pairs_test_folder_and_missing_splits(tmp_path):
    write_pix2pix(str(tmp_path), {"train": 4, "val": 2}, size=16)  # like edges2shoes: no test/
    dm = _aligned(tmp_path)
    assert len(dm.test_set) == 0 and len(dm.val_set) == 2
    dm = _aligned(tmp_path, test_folder="val")
    assert len(dm.test_set) == 2 and torch.equal(dm.test_set[0][1], dm.val_set[0][1])
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        _aligned(tmp_path, test_folder="nowhere")


def test_aligned_pairs_missing_data_names_directory_layout_and_source(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        _aligned(tmp_path / "facades")
    message = str(info.value)
    assert str(tmp_path / "facades") in message and "side by side" in message
    assert "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/" in message
    write_pix2pix(str(tmp_path / "pairs"), {"train": 2}, size=16, layout="folders")
    shutil.rmtree(tmp_path / "pairs" / "train" / "B")
    with pytest.raises(DatasetNotFoundError, match=r"train.B.*train/A/ and train/B/"):
        _aligned(tmp_path / "pairs", layout="folders")


def test_aligned_pairs_unmatched_names_are_listed(tmp_path):
    write_pix2pix(str(tmp_path), {"train": 3}, size=16, layout="folders")
    os.rename(tmp_path / "train" / "B" / "2.png", tmp_path / "train" / "B" / "two.png")
    with pytest.raises(ValueError, match=r"1 only in .*A: 2\.png; 1 only in .*B: two\.png"):
        _aligned(tmp_path, layout="folders")


def test_aligned_pairs_skip_corrupt_keeps_pairs_aligned(tmp_path):
    write_pix2pix(str(tmp_path), {"train": 4}, size=16, layout="folders")
    (tmp_path / "train" / "B" / "2.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="2.png"):
        _aligned(tmp_path, layout="folders")
    with pytest.warns(UserWarning, match="2.png"):
        dm = _aligned(tmp_path, layout="folders", skip_corrupt=True)
    x, y = _items(dm.train_set)
    assert len(x) == 3 and torch.allclose(x, -y, atol=1e-6)
