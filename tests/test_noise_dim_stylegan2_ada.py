"""NoiseDimGAN with the StyleGAN2-ADA backbone: the configs, a CLI fit with ADA and R1, the knobs."""

from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules.nets.stylegan2 import StyleGAN2Generator
from lightning_modules.noise_dim_gan import NoiseDimGAN
from train import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "noise_dim"
ADA_CONFIGS = ["cifar10_stylegan2_ada.yaml", "lsun_church256_stylegan2_ada.yaml", "lsun_church64_stylegan2_ada.yaml",
               "digits_stylegan2_ada.yaml"]  # fmt: skip


@pytest.mark.parametrize("name", ADA_CONFIGS)
def test_config_parses(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(CONFIGS / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert model["backbone"] == "stylegan2_ada" and model["augment"] == "ada" and model["ada_target"] == 0.6


def test_cifar_config_is_adas_cifar_recipe():
    cfg = yaml.safe_load((CONFIGS / "cifar10_stylegan2_ada.yaml").read_text())
    m = cfg["model"]["init_args"]
    # StyleGAN2-ADA train.py --cfg=cifar: fmaps 1, map 2, mbstd 32, original D, gamma 0.01, lr 0.0025,
    # no path length, no style mixing, ema 500 kimg, ramp 0.05, batch 64.
    assert (m["channel_base"], m["channel_max"], m["mapping_layers"], m["mbstd_group_size"]) == (32768, 512, 2, 32)
    assert (m["d_architecture"], m["r1_gamma"], m["lr_g"], m["lr_d"]) == ("orig", 0.01, 0.0025, 0.0025)
    assert (m["pl_weight"], m["style_mixing_prob"], m["ema_kimg"], m["ema_rampup"]) == (0.0, 0.0, 500.0, 0.05)
    assert m["betas"] == [0.0, 0.99] and cfg["data"]["init_args"]["batch_size"] == 64


def test_fit_with_ada_and_lazy_r1(tmp_path):
    cli = main(
        [
            "fit", "-c", str(CONFIGS / "digits_stylegan2_ada.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--trainer.max_steps=4", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
            "--trainer.log_every_n_steps=1", "--model.init_args.ch=2", "--model.init_args.w_dim=8",
            "--model.init_args.noise.dim=4", "--model.init_args.ada_interval=1", "--model.init_args.ada_kimg=0.1",
            "--data.init_args.batch_size=8",
        ]  # fmt: skip
    )
    model = cli.model
    assert cli.trainer.global_step == 4 and model.d_steps == 2
    logged = cli.trainer.callback_metrics
    assert {"train/r1_penalty", "train/ada_p", "train/ada_rt"} <= set(logged)  # R1 ran, the controller ran
    rt, p = float(logged["train/ada_rt"]), float(logged["train/ada_p"])
    assert -1 <= rt <= 1 and (p > 0) == (rt > 0.6)  # p rises only when D is confident on reals
    assert isinstance(model.generator, StyleGAN2Generator) and model.generator.z_dim == 4
    saved = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert float(saved["state_dict"]["augment_pipe.p"]) == pytest.approx(float(model.augment_pipe.p))


def test_capacity_scales_every_stylegan2_width():
    widths = {}
    for ch in (2, 4):
        gan = NoiseDimGAN(backbone="stylegan2_ada", resolution=16, channels=1, ch=ch, w_dim=8, mapping_layers=1,
                          noise={"dim": 4})  # fmt: skip
        widths[ch] = [b.conv1.weight.shape[0] for b in gan.generator.synthesis.blocks]
    assert widths[2] == [16, 16, 16] and widths[4] == [32, 32, 32]  # min(512 ch / r, 8 ch)


def test_normalize_z_drops_the_radius_of_z():
    torch.manual_seed(0)
    z = torch.randn(3, 1)
    for normalize, same in ((True, True), (False, False)):
        G = StyleGAN2Generator(1, 8, 8, 1, 64, 8, mapping_layers=1, normalize_z=normalize).eval()
        a, b = G(z, noise_mode="const"), G(3 * z, noise_mode="const")
        assert torch.allclose(a, b, atol=1e-5) == same


def test_conditional_stylegan2_is_a_config_error():
    with pytest.raises(ValueError, match="num_classes"):
        NoiseDimGAN(backbone="stylegan2_ada", num_classes=10, resolution=16)
