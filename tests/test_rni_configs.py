"""Every configs/rni/ file parses as LightningCLI parses it; the Table 1 rows differ only where they should."""

from pathlib import Path

import pytest
import yaml

from lightning_modules.rni_stylegan2 import RNIStyleGAN2
from train import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rni"
ALL = sorted(p.name for p in CONFIGS.glob("*.yaml"))
# Table 1 / Table 2 rows: (noise_injection, pl_weight)
ROWS = {"plain": ("none", 0.0), "eni": ("eni", 0.0), "rni_nopl": ("rni", 0.0), "rni": ("rni", 2.0),
        "stylegan2": ("eni", 2.0)}  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_config_parses_and_builds(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(CONFIGS / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    model = printed["model"]["init_args"]
    assert printed["model"]["class_path"].endswith("RNIStyleGAN2")
    # The model builds (widths shrunk: only the wiring is checked here).
    small = dict(model, channel_base=64, channel_max=8, w_dim=8, dcgan_width=4, noise=dict(model["noise"], dim=8))
    net = RNIStyleGAN2(**small)
    assert net.hparams.noise_injection == model["noise_injection"]


@pytest.mark.parametrize("dataset", ["ffhq128", "lsun_church128"])
def test_table1_rows_differ_only_in_injection_and_path_length(dataset):
    configs = {row: yaml.safe_load((CONFIGS / f"{dataset}_{row}.yaml").read_text()) for row in ROWS}
    base = configs["stylegan2"]["model"]["init_args"]
    for row, (injection, pl_weight) in ROWS.items():
        args = configs[row]["model"]["init_args"]
        assert args["noise_injection"] == injection and args["pl_weight"] == pl_weight
        assert {k: v for k, v in args.items() if k not in ("noise_injection", "pl_weight")} == {
            k: v for k, v in base.items() if k not in ("noise_injection", "pl_weight")
        }
        assert configs[row]["data"] == configs["stylegan2"]["data"]
    assert base["lr"] == 0.002 and base["betas"] == [0.0, 0.99] and base["channel_base"] == 16384
    assert configs["stylegan2"]["data"]["init_args"]["batch_size"] == 32


def test_every_config_is_covered():
    datasets = {"ffhq128", "lsun_church128"}
    expected = {f"{d}_{row}.yaml" for d in datasets for row in ROWS}
    expected |= {f"{d}_dcgan_{i}.yaml" for d in ("ffhq64", "lsun_church64", "cifar10") for i in ("none", "eni", "rni")}
    expected |= {"digits_stylegan2.yaml", "digits_dcgan.yaml"}
    assert set(ALL) == expected


@pytest.mark.parametrize("name", ALL)
def test_faces_are_cropped_and_noise_is_redrawn_per_batch(name):
    config = yaml.safe_load((CONFIGS / name).read_text())
    callbacks = {cb["class_path"]: cb["init_args"] for cb in config["trainer"]["callbacks"]}
    face = name.startswith("ffhq")  # StyleGAN's PPL crops faces only (ppl2_wend for LSUN has no crop)
    condition = callbacks["callbacks.ConditionNumber"]
    assert condition["noise_mode"] == "per_batch" and condition.get("crop", False) == face
    metrics = callbacks.get("callbacks.GenerativeMetrics", {})
    if metrics.get("ppl_samples"):
        assert metrics.get("ppl_crop", False) == face and metrics["ppl_noise_mode"] == "per_batch"


def test_config_rows_are_the_rows_of_rni_tables():
    from tools.rni_tables import ROWS as TABLE_ROWS

    assert set(TABLE_ROWS["stylegan2"]) == set(ROWS)
    assert [row for row, label in TABLE_ROWS["stylegan2"].items() if label is None] == ["eni"]  # the project's ablation
    assert set(TABLE_ROWS["dcgan"]) == {"none", "eni", "rni"}
