"""Every GAN method under plain ``--trainer.strategy ddp`` on 2 CPU processes (gloo), without
``find_unused_parameters``: the run completes, the processes train on different data and noise,
and their weights stay identical (slow: about 20 s per method)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

pytestmark = pytest.mark.slow

CASES = {
    "biggan": ("noise_dim/digits_biggan.yaml", ["--model.init_args.ch=4"]),
    "stylegan2_ada": (
        "noise_dim/digits_stylegan2_ada.yaml",
        ["--model.init_args.ch=2", "--model.init_args.w_dim=8", "--model.init_args.ada_interval=1",
         "--data.init_args.batch_size=8"],
    ),  # fmt: skip
    "ganz": ("ganz/digits.yaml", ["--model.init_args.n_filters=4"]),
    "noisy_i2i": ("i2i/digits_sr8.yaml", ["--model.init_args.g_width=4", "--model.init_args.d_width=4",
                                          "--model.init_args.sigma_t2=0.1"]),  # fmt: skip
    "de_gan": ("de_gan/digits.yaml", ["--model.init_args.g_width=4", "--model.init_args.d_width=4"]),
}


def _common(tmp_path):
    return [
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


def _last_ckpt(folder: Path, config: str, *extra: str) -> str:
    """A short fit of ``config`` in ``folder``; its last checkpoint."""
    cli = main(["fit", "-c", str(CONFIGS / config), *_common(folder), *extra])
    return cli.trainer.checkpoint_callback.last_model_path


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory):
    return _last_ckpt(tmp_path_factory.mktemp("vae"), "de_gan/digits_vae.yaml", "--trainer.max_steps=2",
                      "--trainer.limit_val_batches=0", "--model.init_args.width=4")  # fmt: skip


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    """A digit classifier for BigGAN's GenerativeMetrics (the config's runs/classifier/... exists only where made)."""
    return _last_ckpt(tmp_path_factory.mktemp("classifier"), "classifier/digits.yaml", "--trainer.max_epochs=1",
                      "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1")  # fmt: skip


def _with_classifier(config: Path, ckpt: str, folder: Path) -> Path:
    """A copy of ``config`` whose GenerativeMetrics read the classifier ``ckpt``."""
    cfg = yaml.safe_load(config.read_text())
    for callback in cfg["trainer"]["callbacks"]:
        if callback["class_path"].endswith("GenerativeMetrics"):
            callback["init_args"]["feature_path"] = ckpt
    path = folder / config.name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("method", sorted(CASES))
def test_method_trains_under_plain_ddp(method, tmp_path, request):
    config, extra = CASES[method]
    config = CONFIGS / config
    if method == "biggan":
        config = _with_classifier(config, request.getfixturevalue("classifier_ckpt"), tmp_path)
    if method == "de_gan":
        extra = [*extra, f"--model.init_args.vae_ckpt={request.getfixturevalue('vae_ckpt')}",
                 "--trainer.callbacks=[]"]  # fmt: skip  (its evaluation callback needs a classifier)
    cmd = [
        sys.executable, "train.py", "fit", "-c", str(config), *_common(tmp_path), *extra,
        "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2",
        "--trainer.max_steps=8", "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=0",
        "--trainer.callbacks+=_ddp_probe.RankProbe", f"--trainer.callbacks.out_dir={tmp_path / 'probe'}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "find_unused_parameters" not in proc.stdout + proc.stderr

    ranks = [torch.load(tmp_path / "probe" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert len(ranks[0]["seeds"]) == len(ranks[1]["seeds"]) >= 3
    assert not set(ranks[0]["seeds"]) & set(ranks[1]["seeds"])
    assert ranks[0]["images"] != ranks[1]["images"]
    if ranks[0]["noise"] is not None:
        assert not torch.equal(ranks[0]["noise"], ranks[1]["noise"])
    weights = ranks[0]["parameters"]  # buffers (batch-norm statistics, StyleGAN's w_avg) are per process
    assert any(k.startswith("generator_ema.") for k in weights) or method == "noisy_i2i"
    for key in weights:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key


def test_a_ddp_run_killed_mid_epoch_resumes_exactly(tmp_path):
    """2 processes: killed in epoch 1 after a mid-epoch checkpoint, resumed from last.ckpt, the run ends
    with the same weights (G, D, EMA) as an uninterrupted one, and the same buffers on rank 0 (per-rank
    data shares and noise streams are restored)."""

    def fit(root, *extra):
        cmd = [
            sys.executable, "train.py", "fit", "-c", str(CONFIGS / "noise_dim" / "digits_demo.yaml"), *_common(root),
            "--model.init_args.g_width=8", "--model.init_args.d_width=8", "--model.init_args.ema_kimg=0.2",
            "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2",
            "--trainer.max_steps=22", "--trainer.limit_train_batches=5", "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1", "--checkpoint.every_n_train_steps=4",
            "--trainer.callbacks+=_ddp_probe.RankProbe", f"--trainer.callbacks.out_dir={root / 'probe'}", *extra,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    whole = fit(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = fit(tmp_path / "cut", "--trainer.callbacks+=_ddp_probe.Preempt", "--trainer.callbacks.at=9")
    assert cut.returncode != 0 and "preempted" in cut.stderr
    last = next((tmp_path / "cut").rglob("last.ckpt"))
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 16 and saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == 3
    resumed = fit(tmp_path / "cut", f"--ckpt_path={last}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for rank in (0, 1):
        a = torch.load(tmp_path / "whole" / "probe" / f"rank{rank}.pt", weights_only=False)
        b = torch.load(tmp_path / "cut" / "probe" / f"rank{rank}.pt", weights_only=False)
        assert b["seeds"] == a["seeds"][-len(b["seeds"]):] and b["images"] == a["images"][-len(b["images"]):]
        # Rank 0: everything. Rank 1: the parameters; its buffers (batch-norm statistics) restart from
        # rank 0's, which are what the checkpoint holds.
        keys = a["state"] if rank == 0 else a["parameters"]
        for key in keys:
            torch.testing.assert_close(b["state"][key], a["state"][key], rtol=1e-5, atol=1e-6, msg=f"rank {rank}: {key}")
