"""Exact resume and per-rank random streams (issue 11, item 4).

A run killed mid-epoch and resumed from ``last.ckpt`` must continue as if it had never
stopped: same global step, weights, EMA, optimiser states, data order and noise, so the
losses after the resume equal the uninterrupted run's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from torch.utils.data import TensorDataset

import train
from callbacks import StepSeed, step_seed
from datamodules.resumable import ResumableLoader, ResumableSampler

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "noise_dim" / "digits_demo.yaml")


# ------------------------------------------------------------------ the sampler and the loader
def test_sampler_deals_a_seeded_permutation_out_to_the_processes():
    data = TensorDataset(torch.arange(10))
    shares = [list(ResumableSampler(data, seed=7, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5
    assert sorted(shares[0] + shares[1]) == list(range(10))  # disjoint, and together every index once
    again = ResumableSampler(data, seed=7, num_replicas=2, rank=0)
    assert list(again) == shares[0]  # a function of (seed, epoch) only
    again.set_epoch(1)
    assert list(again) != shares[0]  # reshuffled every epoch
    assert list(ResumableSampler(data, seed=8, num_replicas=2, rank=0)) != shares[0]


def test_loader_state_resumes_after_the_batches_handed_out():
    data = TensorDataset(torch.arange(20))
    first = ResumableLoader(data, batch_size=3, seed=1, drop_last=True)
    first.sampler.set_epoch(2)
    batches = iter(first)
    seen = [next(batches)[0].tolist() for _ in range(2)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 2, "batch_size": 3, "num_replicas": 1, "seed": 1}
    rest = [b[0].tolist() for b in batches]

    resumed = ResumableLoader(data, batch_size=3, seed=1, drop_last=True)
    resumed.load_state_dict(state)
    batches = iter(resumed)  # Lightning calls iter() before set_epoch() when it resumes
    resumed.sampler.set_epoch(2)
    assert [b[0].tolist() for b in batches] == rest
    assert resumed.state_dict()["batches"] == len(seen) + len(rest) == len(resumed)
    # The next epoch starts from its first batch.
    resumed.sampler.set_epoch(3)
    assert sum(1 for _ in resumed) == len(resumed)


def test_a_saved_state_of_an_earlier_epoch_does_not_skip_batches():
    data = TensorDataset(torch.arange(12))
    loader = ResumableLoader(data, batch_size=4, seed=0)
    loader.load_state_dict({"epoch": 0, "batches": 3, "batch_size": 4, "num_replicas": 1, "seed": 0})
    loader.sampler.set_epoch(1)  # the checkpoint was written at the end of epoch 0
    assert sum(1 for _ in loader) == 3


def test_a_different_batch_size_restarts_the_epoch_with_a_warning():
    loader = ResumableLoader(TensorDataset(torch.arange(12)), batch_size=4, seed=0)
    with pytest.warns(UserWarning, match="restarts from its first batch"):
        loader.load_state_dict({"epoch": 0, "batches": 2, "batch_size": 2, "num_replicas": 1, "seed": 0})
    assert sum(1 for _ in loader) == 3


def test_step_seeds_differ_across_ranks_batches_and_runs():
    seeds = {step_seed(run, rank, batch) for run in (0, 1) for rank in (0, 1, 2) for batch in range(50)}
    assert len(seeds) == 2 * 3 * 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert step_seed(3, 1, 4) == step_seed(3, 1, 4)


def test_step_seed_state_round_trips():
    cb = StepSeed(seed=123)
    restored = StepSeed()
    restored.load_state_dict(cb.state_dict())
    assert restored.seed == 123


# ------------------------------------------------------------------ exact resume, end to end
STYLEGAN2_TINY = [
    "--model.init_args.channel_base=128", "--model.init_args.channel_max=16", "--model.init_args.w_dim=16",
    "--model.init_args.noise.dim=16", "--model.init_args.mapping_layers=1",
]  # fmt: skip

# config, overrides (tiny networks; the config's own callbacks dropped except in the demo).
CASES = {
    # SampleGrid draws noise at every validation: it must not shift training's streams.
    "dcgan": ("noise_dim/digits_demo.yaml", ["--model.init_args.g_width=8", "--model.init_args.d_width=8"]),
    # 2 D steps per G step: d_steps and the position of G steps must survive the resume.
    "biggan": ("noise_dim/digits_biggan.yaml", ["--model.init_args.ch=2", "--model.init_args.shared_dim=8",
                                                "--trainer.callbacks=[]"]),  # fmt: skip
    # ADA's p moves every 3rd iteration (partial r_t sums in the checkpoint), lazy R1 every 4th D step.
    "stylegan2_ada": ("noise_dim/digits_stylegan2_ada.yaml", [
        "--model.init_args.ch=2", "--model.init_args.w_dim=8", "--model.init_args.noise.dim=8",
        "--model.init_args.ada_interval=3", "--model.init_args.ada_kimg=0.05", "--model.init_args.r1_interval=4",
        "--trainer.callbacks=[]"]),  # fmt: skip
    # Riemannian noise injection, style mixing, lazy path length with its running mean.
    "rni_stylegan2": ("rni/digits_stylegan2.yaml", [*STYLEGAN2_TINY, "--model.init_args.pl_interval=2",
                                                    "--trainer.callbacks=[]"]),  # fmt: skip
    # BEGAN's k_t.
    "ganz": ("ganz/digits.yaml", ["--model.init_args.n_filters=4", "--trainer.callbacks=[]"]),
    # pix2pix's dropout and the training noise on the inputs.
    "noisy_i2i": ("i2i/digits_sr8.yaml", ["--model.init_args.g_width=4", "--model.init_args.d_width=4",
                                          "--model.init_args.sigma_t2=0.1", "--trainer.callbacks=[]"]),  # fmt: skip
}


class _Recorder(Callback):
    """The losses of every iteration, by global step."""

    def __init__(self) -> None:
        self.losses: dict[int, dict[str, float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        logged = trainer.callback_metrics
        self.losses[trainer.global_step] = {k: float(v) for k, v in logged.items() if k.startswith("train/")}


class _Preempt(Callback):
    """Dies (like a killed job) at the start of batch ``at`` (counted over the whole run)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.at:
            raise RuntimeError("preempted")  # no checkpoint is written on the way out


def _fit(tmp_path, monkeypatch, config, *extra, callbacks=()):
    monkeypatch.setitem(train.TRAINER_DEFAULTS, "callbacks", list(callbacks))
    args = [
        "fit",
        "-c",
        str(ROOT / "configs" / config),
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.max_steps=-1",
        "--trainer.max_epochs=-1",
        "--trainer.limit_train_batches=5",
        "--trainer.limit_val_batches=1",
        "--trainer.check_val_every_n_epoch=1",  # validation draws noise too: it must not shift training's
        "--trainer.log_every_n_steps=1",
        "--checkpoint.every_n_train_steps=4",  # mid-epoch
        *extra,
    ]
    return train.main(args)


def _state(cli):
    weights = {k: v.detach().clone() for k, v in cli.model.state_dict().items()}
    return weights, [opt.state_dict() for opt in cli.trainer.optimizers]


@pytest.mark.parametrize("method", list(CASES), ids=list(CASES))
def test_a_run_killed_mid_epoch_resumes_exactly(method, tmp_path, monkeypatch):
    config, extra = CASES[method]
    batches = 11  # 2 epochs of 5 batches and one more
    whole = _Recorder()
    # Optimiser steps per batch: 2 (D + G), BigGAN's 3 per 2 batches (2 D steps per G step).
    per_epoch = {"biggan": 7}.get(method, 10)  # 5 batches
    max_steps = {"biggan": 16}.get(method, 2 * batches)

    uninterrupted = _fit(tmp_path / "whole", monkeypatch, config, *extra, f"--trainer.max_steps={max_steps}",
                         callbacks=[whole])  # fmt: skip
    # Killed at the start of batch 9 (epoch 1), after the checkpoint written mid-epoch 1.
    with pytest.raises(RuntimeError, match="preempted"):
        _fit(tmp_path / "cut", monkeypatch, config, *extra, f"--trainer.max_steps={max_steps}",
             callbacks=[_Preempt(at=9)])  # fmt: skip
    last = next((tmp_path / "cut").rglob("last.ckpt"))
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and per_epoch < saved["global_step"] < max_steps
    in_epoch = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"]
    assert 0 < in_epoch < 5  # mid-epoch

    after = _Recorder()
    resumed = _fit(tmp_path / "cut", monkeypatch, config, *extra, f"--trainer.max_steps={max_steps}",
                   f"--ckpt_path={last}", callbacks=[after])  # fmt: skip
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == max_steps
    assert min(after.losses) > saved["global_step"] and max(after.losses) == max_steps
    for step, logged in after.losses.items():
        losses = {k: v for k, v in logged.items() if "loss" in k}
        assert losses and losses == pytest.approx({k: whole.losses[step][k] for k in losses}, rel=1e-5, abs=1e-6)

    weights_a, optim_a = _state(uninterrupted)
    weights_b, optim_b = _state(resumed)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:  # G, D, the EMA copy, and buffers (BN statistics, ADA's p, pl_mean, k_t)
        torch.testing.assert_close(weights_b[key], weights_a[key], rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(optim_a, optim_b):  # Adam's moments and step counts
        for pid, state in a["state"].items():
            for name, value in state.items():
                torch.testing.assert_close(b["state"][pid][name], value, rtol=1e-5, atol=1e-7)
    for counter in ("images_seen", "d_steps"):
        if hasattr(uninterrupted.model, counter):
            assert getattr(resumed.model, counter) == getattr(uninterrupted.model, counter)
