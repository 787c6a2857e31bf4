"""``data.init_args.batch_size`` is the global batch: split over the DDP processes, so a config
trains with the paper's minibatch, images per step, kimg and EMA half-life on 1 process or 8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from core.errors import UserError
from datamodules.base import process_batch_size
from datamodules.digits import DigitsDataModule
from datamodules.paired import PairedI2IDataModule

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("batch, world, share", [(32, 1, 32), (32, 2, 16), (64, 8, 8), (50, 5, 10), (1, 1, 1)])
def test_the_global_batch_splits_evenly(batch, world, share):
    assert process_batch_size(batch, world) == share


@pytest.mark.parametrize("batch, world", [(12, 8), (7, 2), (1, 2)])
def test_a_batch_that_does_not_divide_is_an_error_naming_the_key(batch, world):
    with pytest.raises(UserError, match=rf"data.init_args.batch_size={batch} is the global batch .* {world} processes"):
        process_batch_size(batch, world)


def _with_world(datamodule, world_size: int):
    datamodule.trainer = SimpleNamespace(world_size=world_size)  # what Lightning sets before the loaders
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("world", [1, 2, 4])
def test_every_loader_yields_the_process_share(world):
    dm = _with_world(DigitsDataModule(resolution=8, batch_size=16), world)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        assert next(iter(loader))[0].shape[0] == 16 // world


def test_paired_data_split_the_source_batch():
    source = DigitsDataModule(resolution=16, batch_size=8)
    dm = _with_world(PairedI2IDataModule(source=source, degradation="downsample", scale=4), 2)
    assert dm.batch_size == 8 and next(iter(dm.train_dataloader()))[0].shape[0] == 4


def test_a_loader_refuses_a_batch_the_processes_cannot_share():
    dm = _with_world(DigitsDataModule(resolution=8, batch_size=6), 4)
    with pytest.raises(UserError, match="batch_size=6"):
        dm.train_dataloader()


@pytest.mark.slow
def test_one_and_two_processes_train_with_the_same_global_batch(tmp_path):
    """2 CPU processes load half the batch each; images per step, kimg and the EMA decay equal 1 process's."""

    def fit(devices: int):
        out = tmp_path / f"d{devices}"
        cmd = [
            sys.executable, "train.py", "fit", "-c", "configs/noise_dim/digits_demo.yaml",
            f"--trainer.logger.init_args.save_dir={out}", f"--trainer.default_root_dir={out}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--model.init_args.g_width=4", "--model.init_args.d_width=4", "--model.init_args.ema_kimg=0.1",
            "--data.init_args.batch_size=8", "--trainer.accelerator=cpu", f"--trainer.devices={devices}",
            "--trainer.max_steps=6", "--trainer.limit_val_batches=0", "--trainer.callbacks=[]",
            "--trainer.callbacks+=_ddp_probe.BatchProbe", f"--trainer.callbacks.out_dir={out / 'probe'}",
            *(["--trainer.strategy=ddp"] if devices > 1 else []),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [torch.load(out / "probe" / f"batches{r}.pt") for r in range(devices)]

    (one,), two = fit(1), fit(2)
    assert set(one["sizes"]) == {8} and all(set(rank["sizes"]) == {4} for rank in two)
    for rank in two:
        assert rank["world_size"] == 2
        assert rank["images_seen"] == one["images_seen"] == 8 * len(one["sizes"])
        assert rank["global_step"] == one["global_step"]
        assert rank["ema_beta"] == pytest.approx(one["ema_beta"], abs=0)


@pytest.mark.slow
def test_train_py_names_the_key_when_the_batch_does_not_divide(tmp_path):
    """A 2-process run with an odd global batch stops with one line naming data.init_args.batch_size."""
    cmd = [
        sys.executable, "train.py", "fit", "-c", "configs/noise_dim/digits_demo.yaml",
        f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
        "--data.init_args.batch_size=7", "--trainer.accelerator=cpu", "--trainer.devices=2",
        "--trainer.strategy=ddp", "--trainer.max_steps=1", "--trainer.callbacks=[]",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: data.init_args.batch_size=7 is the global batch" in proc.stderr
    assert "Traceback" not in proc.stderr
