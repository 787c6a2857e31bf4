"""GANZ's fit stage: BEGAN's networks (GANZ Fig. 6), the k_t controller, M, checkpoints, configs, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from ganz_fixtures import RES, tiny_ganz
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.ganz import GANZ
from lightning_modules.nets.began import BEGANAutoEncoder, BEGANEncoder, BEGANGenerator, began_repeat
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "ganz"
pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


# ---------------------------------------------------------------------------------------------- networks
def test_began_networks_at_128_follow_the_paper():
    assert [began_repeat(r) for r in (8, 32, 64, 128)] == [1, 3, 4, 5]
    g = BEGANGenerator(64, 128, 3, n=4)
    assert (g.h0.in_features, g.h0.out_features) == (64, 4 * 8 * 8)  # h0: d_t -> n x 8 x 8 (Fig. 6)
    convs = [m for m in g.synthesis.modules() if isinstance(m, torch.nn.Conv2d)]
    ups = [m for m in g.synthesis.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(convs) == 2 * 5 + 1 and len(ups) == 4 and all(u.mode == "nearest" for u in ups)
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.ELU) for m in g.modules()) == 10
    encoder = BEGANEncoder(64, 128, 3, n=4)
    widths = [m.out_channels for m in encoder.features if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert widths == [8, 12, 16, 20]  # channels grow linearly at each sub-sampling: 2n, 3n, 4n, 5n
    x = torch.randn(2, 3, 128, 128)
    assert g(torch.rand(2, 64)).shape == x.shape
    assert BEGANAutoEncoder(64, 128, 3, n=4)(x).shape == x.shape
    with pytest.raises(ValueError, match="power of two"):
        began_repeat(48)


# ---------------------------------------------------------------------------------------------- the BEGAN step
def _loader(n: int = 16, batch: int = 8, seed: int = 0) -> DataLoader:
    images = torch.rand(n, 1, RES, RES, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return DataLoader(TensorDataset(images, torch.zeros(n)), batch_size=batch)


def _fit(model: GANZ, steps: int, root: Path, ckpt_path=None) -> Trainer:
    trainer = Trainer(
        max_steps=steps,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        enable_checkpointing=False,
    )
    trainer.fit(model, _loader(), ckpt_path=ckpt_path)
    return trainer


def test_one_iteration_updates_k_t_and_m_by_began_equations(tmp_path):
    torch.manual_seed(0)
    model = tiny_ganz(k_init=0.5, lambda_k=0.05, gamma=0.7)
    trainer = _fit(model, 2, tmp_path)  # one iteration: a D step and a G step
    logged = {k: float(v) for k, v in trainer.logged_metrics.items()}
    l_real, l_fake_d, loss_g = logged["train/L_real"], logged["train/L_fake"], logged["train/loss_g"]
    assert logged["train/loss_d"] == pytest.approx(l_real - 0.5 * l_fake_d, rel=1e-5)  # L_D = L(x) - k_t L(G(z_D))
    expected_k = min(max(0.5 + 0.05 * (0.7 * l_real - loss_g), 0.0), 1.0)
    assert float(model.k_t) == pytest.approx(expected_k, rel=1e-5)
    assert float(model.k_t) != 0.5
    assert logged["train/M"] == pytest.approx(l_real + abs(0.7 * l_real - loss_g), rel=1e-5)
    assert logged["train/k_t"] == pytest.approx(expected_k, rel=1e-5)


def test_k_t_is_clipped_and_resumes_exactly_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = tiny_ganz(k_init=1.0, lambda_k=100.0, gamma=1.0)
    trainer = _fit(model, 4, tmp_path)
    assert 0.0 <= float(model.k_t) <= 1.0
    path = tmp_path / "ganz.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert float(checkpoint["state_dict"]["k_t"]) == float(model.k_t)
    loaded = GANZ.load_from_checkpoint(path, map_location="cpu")
    assert torch.equal(loaded.k_t, model.k_t) and loaded.images_seen == model.images_seen == 16
    # Resuming continues the controller from the saved k_t, not from k_init.
    resumed = tiny_ganz(k_init=0.0, lambda_k=0.0, gamma=1.0)
    _fit(resumed, 6, tmp_path / "resume", ckpt_path=str(path))
    assert float(resumed.k_t) == float(model.k_t)


def test_lr_decay_halves_both_rates(tmp_path):
    model = tiny_ganz(lr_decay_every=2, lr_g=1e-3, lr_d=1e-3)
    _fit(model, 8, tmp_path)  # 4 iterations: halved twice
    for opt in model.optimizers():
        assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)


# ---------------------------------------------------------------------------------------------- configs and CLI
@pytest.mark.parametrize("d_t", [64, 128, 256, 512])
def test_celeba_configs_differ_only_in_d_t(d_t):
    config = yaml.safe_load((CONFIGS / f"celeba128_dt{d_t}.yaml").read_text())
    reference = yaml.safe_load((CONFIGS / "celeba128_dt64.yaml").read_text())
    model = config["model"]["init_args"]
    assert model["noise"]["dim"] == d_t and model["noise"]["distribution"] == "uniform"
    assert (model["resolution"], model["channels"], model["n_filters"]) == (128, 3, 128)
    assert (model["gamma"], model["lambda_k"], model["lr_g"], model["lr_d"]) == (0.5, 0.001, 1e-4, 1e-4)
    assert config["data"]["class_path"] == "datamodules.CelebADataModule"
    assert config["data"]["init_args"]["resolution"] == 128
    assert config["trainer"]["logger"]["init_args"]["name"] == f"ganz/celeba128_dt{d_t}"
    for c in (config, reference):
        c["model"]["init_args"]["noise"].pop("dim")
        c["trainer"]["logger"]["init_args"].pop("name")
    assert config == reference
    GANZ(**{**model, "n_filters": 4, "noise": {**model["noise"], "dim": d_t}})  # every key is an argument


def test_cli_fit_digits_config_logs_began_scalars(tmp_path):
    cli = main(
        [
            "fit",
            "-c",
            str(CONFIGS / "digits.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.max_steps=6",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.log_every_n_steps=1",
            "--model.init_args.n_filters=4",
        ]
    )
    assert cli.trainer.global_step == 6
    metrics = cli.trainer.logged_metrics
    assert {"train/loss_d", "train/loss_g", "train/k_t", "train/M", "val/M", "val/L_real"} <= set(metrics)
    run = Path(cli.trainer.log_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file() and list((run / "samples").glob("*.png"))
    assert cli.model.noise.dim == 16 and cli.model.generator.h0.in_features == 16
