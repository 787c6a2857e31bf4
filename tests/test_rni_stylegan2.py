"""RNIStyleGAN2 through train.py: every injection mode, the DCGAN backbone, the metrics and inversion."""

import glob
import json
from pathlib import Path

import pytest
import torch
import yaml

from evaluation.inversion import autocorrelation_penalty, invert, load_images
from lightning_modules.rni_stylegan2 import RNIStyleGAN2
from tools.__main__ import main as tools_main
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "rni" / "digits_stylegan2.yaml")
TINY = ["--model.init_args.channel_base=128", "--model.init_args.channel_max=16", "--model.init_args.w_dim=16",
        "--model.init_args.noise.dim=16"]  # fmt: skip


def _callbacks(tmp_path, space="w", extra=()):
    cfg = {
        "trainer": {
            "callbacks": [
                {
                    "class_path": "callbacks.ConditionNumber",
                    "init_args": {"num_samples": 40, "batch_size": 20, "space": space},
                },
                *extra,
            ]
        }
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "callbacks.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _args(tmp_path, *extra, space="w", callbacks=()):
    return [
        "fit", "-c", CONFIG, "-c", _callbacks(tmp_path, space, callbacks),
        f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--data.init_args.batch_size=8", "--trainer.log_every_n_steps=1", *TINY, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("injection", ["none", "eni", "rni"])
def test_fit_each_injection_mode(tmp_path, injection):
    # Two iterations: the first applies lazy R1 and the path-length penalty (iteration 0).
    cli = main(
        _args(
            tmp_path,
            f"--model.init_args.noise_injection={injection}",
            "--trainer.max_steps=4",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.limit_train_batches=2",
        )
    )
    model = cli.model
    assert cli.trainer.global_step == 4 and model.d_steps == 2
    assert float(model.path_length.pl_mean) > 0  # the PL regulariser ran and moved its target
    kinds = {layer.kind for layer in model.injection_layers()}
    assert kinds == {injection}
    logged = cli.trainer.callback_metrics
    assert {"metrics/mc", "metrics/ttmc", "train/r1_penalty", "train/pl_penalty"} <= set(logged)
    assert 0 < float(logged["metrics/mc"]) <= float(logged["metrics/ttmc"])
    (cond,) = [cb for cb in cli.trainer.callbacks if type(cb).__name__ == "ConditionNumber"]
    assert cond.values.shape == (40,)  # num_samples pairs, gathered from both batches
    assert float(logged["metrics/ttmc"]) == pytest.approx(float(cond.values.max()))  # top 2% of 40 = 1 value
    # checkpoint round trip keeps the options and the iteration count
    ckpt = glob.glob(f"{tmp_path}/**/last.ckpt", recursive=True)[0]
    loaded = RNIStyleGAN2.load_from_checkpoint(ckpt, map_location="cpu")
    assert loaded.hparams.noise_injection == injection and loaded.d_steps == 2
    z = torch.randn(2, 16)
    torch.testing.assert_close(loaded.generate(z, noise_mode="const"), model.generate(z, noise_mode="const"))


def test_dcgan_backbone_with_rni_and_z_space_condition_number(tmp_path):
    cli = main(
        _args(
            tmp_path,
            "--model.init_args.backbone=dcgan",
            "--model.init_args.dcgan_width=8",
            "--model.init_args.pl_weight=0",
            "--model.init_args.r1_gamma=0",
            "--trainer.fast_dev_run=true",
            space="z",
        )
    )
    assert cli.trainer.global_step == 2
    assert len(cli.model.injection_layers()) == 3  # after the 4, 8, 16 px blocks of a 32 px DCGAN
    assert "metrics/mc" in cli.trainer.callback_metrics
    with pytest.raises(ValueError, match="backbone stylegan2"):
        cli.model.mapping(torch.randn(1, 16))


def test_dcgan_with_path_length_is_a_config_error():
    with pytest.raises(ValueError, match="pl_weight"):
        RNIStyleGAN2(backbone="dcgan", pl_weight=2.0)


def test_ppl_in_w_space_through_generative_metrics(tmp_path):
    from callbacks.generative_metrics import GenerativeMetrics

    model = RNIStyleGAN2(resolution=16, channels=1, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
                         noise={"dim": 8})  # fmt: skip
    metrics = GenerativeMetrics(num_samples=4, ppl_samples=16, ppl_space="w", precision_recall=False, batch_size=8)
    metrics.extractor = torch.nn.Flatten()
    metrics._ppl_distance = None
    from evaluation.ppl import FeatureDistance

    metrics._ppl_distance = FeatureDistance(torch.nn.Flatten())
    value = metrics.perceptual_path_length(model)
    again = metrics.perceptual_path_length(model)
    assert value > 0 and value == again  # const noise along the path: deterministic
    metrics.ppl_crop = True  # the same pairs, measured on the face crop's 8 x 8 of 16 x 16 pixels
    assert 0 < metrics.perceptual_path_length(model) < value


def test_ppl_with_noise_redrawn_per_batch():
    from callbacks.generative_metrics import GenerativeMetrics
    from evaluation.ppl import FeatureDistance

    torch.manual_seed(0)
    model = RNIStyleGAN2(resolution=16, channels=1, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
                         noise={"dim": 8}, noise_injection="eni")  # fmt: skip
    layers = model.injection_layers(ema=True)
    with torch.no_grad():
        for layer in layers:
            layer.strength.fill_(0.5)
    own = [layer.noise_const.clone() for layer in layers]
    seen = []
    layers[0].register_forward_pre_hook(lambda m, args: seen.append(m.noise_const.clone()))
    kw = dict(num_samples=4, ppl_samples=16, ppl_space="w", precision_recall=False, batch_size=8)
    const = GenerativeMetrics(**kw)
    per_batch = GenerativeMetrics(**kw, ppl_noise_mode="per_batch")
    for m in (const, per_batch):
        m.extractor, m._ppl_distance = torch.nn.Flatten(), FeatureDistance(torch.nn.Flatten())
    fixed = const.perceptual_path_length(model)
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])  # const: one map for both batches of 8 pairs
    seen.clear()
    value = per_batch.perceptual_path_length(model)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], own[0])
    assert value != fixed and value == per_batch.perceptual_path_length(model)  # seeded
    for layer, before in zip(layers, own):
        assert torch.equal(layer.noise_const, before)  # restored


def test_inversion_recovers_a_generated_image(tmp_path):
    torch.manual_seed(0)
    model = RNIStyleGAN2(resolution=16, channels=1, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
                         noise={"dim": 8}, noise_injection="eni")  # fmt: skip
    model.eval()
    with torch.no_grad():
        ws = model.mapping(torch.randn(2, 8))
        target = model.synthesize(ws, noise_mode="const").clamp(-1, 1)
    result = invert(model, target, space="w_plus", steps=100, lr=0.1)
    assert result.images.shape == target.shape
    assert float(result.losses[-1]) < 0.1 * float(result.losses[0])
    assert float(result.psnr.min()) > 25  # it lies in the range of G
    noisy = invert(model, target, space="w_plus", steps=5, optimize_noise=True)
    assert len(noisy.noises) == len(model.injection_layers())
    for n in noisy.noises:  # renormalised after every step
        torch.testing.assert_close(n.mean(dim=[1, 2, 3]), torch.zeros(2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="space"):
        invert(model, target, space="x")


def test_autocorrelation_penalty_is_zero_for_white_and_large_for_smooth_noise():
    torch.manual_seed(0)
    white = [torch.randn(1, 1, 64, 64)]
    smooth = [torch.ones(1, 1, 64, 64)]
    assert float(autocorrelation_penalty(white)) < 1e-3
    assert float(autocorrelation_penalty(smooth)) > 1


def test_inversion_cli_over_a_folder(tmp_path, capsys):
    from torchvision.utils import save_image

    model = RNIStyleGAN2(resolution=16, channels=1, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
                         noise={"dim": 8})  # fmt: skip
    import lightning.pytorch as pl

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        save_image(torch.rand(3, 40, 32), folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    images, names = load_images(str(folder), 16, 1)
    assert images.shape == (3, 1, 16, 16) and names == ["img0.png", "img1.png", "img2.png"]
    out = tmp_path / "out"
    assert tools_main(["invert", "--ckpt", str(ckpt), "--images", str(folder), "--out", str(out), "--steps", "3",
                       "--perceptual", "none", "--batch-size", "2"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and summary["perceptual"] == "none"
    rows = (out / "inversion.csv").read_text().splitlines()
    assert rows[0] == "image,psnr_db,ssim,perceptual" and len(rows) == 4 and rows[1].endswith(",none")
    # Image2StyleGAN's VGG-16 loss from a weights file (random weights here), named in every output.
    from torchvision.models.vgg import cfgs, make_layers

    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, tmp_path / "vgg16.pth")
    assert tools_main(["invert", "--ckpt", str(ckpt), "--images", str(folder), "--out", str(out), "--steps", "2",
                       "--vgg16-path", str(tmp_path / "vgg16.pth"), "--limit", "1"]) == 0  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["perceptual"] == "vgg16-image2stylegan"
    assert (out / "inversion.csv").read_text().splitlines()[1].endswith(",vgg16-image2stylegan")
    assert tools_main(["invert", "--ckpt", str(ckpt), "--images", str(folder), "--out", str(out),
                       "--perceptual", "vgg16", "--vgg16-path", str(tmp_path / "none.pth")]) == 2  # fmt: skip
    assert "VGG-16 weights not found" in capsys.readouterr().err
    assert (out / "grid.png").stat().st_size > 0 and (out / "latents.pt").exists()
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_images(str(tmp_path / "missing"), 16, 1)


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_ddp_fit_with_r1_and_path_length_and_gathered_condition_numbers(tmp_path):
    """2 CPU processes (gloo): lazy R1 / path length under DDP, and MC/TTMC split over the ranks equal
    the single-process values of the same checkpoint."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fit = _args(tmp_path / "fit", "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2",
                "--trainer.max_steps=4", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
                "--trainer.check_val_every_n_epoch=1")  # fmt: skip
    proc = subprocess.run([sys.executable, "train.py", *fit], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next((tmp_path / "fit").rglob("last.ckpt"))
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    # 2 iterations of the global batch 8 (4 images on each process)
    assert saved["global_step"] == 4 and saved["d_steps"] == 2 and saved["images_seen"] == 2 * 8
    test_args = ["--ckpt_path", str(ckpt), "--trainer.limit_test_batches=1"]
    ddp_test = _args(tmp_path / "ddp", "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2",
                     *test_args)  # fmt: skip
    ddp_test[0] = "test"
    proc = subprocess.run([sys.executable, "train.py", *ddp_test], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = _args(tmp_path / "single", *test_args)
    single[0] = "test"
    cli = main(single)
    ddp_values = _events(next((tmp_path / "ddp").rglob("version_0")))
    for key in ("metrics/mc", "metrics/ttmc"):
        # the same pairs; float32 kernels differ between 1 and 2 threads in the last digits
        assert ddp_values[key][-1] == pytest.approx(float(cli.trainer.callback_metrics[key]), rel=1e-4)
