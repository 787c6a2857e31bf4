"""train.py end to end, in-process, on the demo config with tiny networks."""

import glob
import os
from argparse import ArgumentError
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.errors import UserError
from train import config_error_message, main

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "noise_dim" / "digits_demo.yaml")
BATCH = 64  # the demo config's batch size


def _args(tmp_path, *extra, subcommand="fit"):
    return [
        subcommand,
        "-c",
        DEMO,
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--model.init_args.g_width=8",
        "--model.init_args.d_width=8",
        *extra,
    ]


def test_fast_dev_run(tmp_path):
    cli = main(_args(tmp_path, "--trainer.fast_dev_run=true"))
    # One batch: one D step and one G step, and global_step counts optimiser steps.
    assert cli.trainer.global_step == 2
    assert int(cli.model.images_seen) == BATCH


def test_float64_noise_trains_in_double_precision(tmp_path, recwarn):
    cli = main(
        _args(
            tmp_path,
            "--trainer.fast_dev_run=true",
            "--trainer.precision=64-true",
            "--model.init_args.noise.format=float64",
        )
    )
    assert cli.trainer.global_step == 2
    assert next(cli.model.generator.parameters()).dtype == torch.float64
    assert not [w for w in recwarn if "noise.format is float64" in str(w.message)]


def test_float64_noise_into_a_float32_generator_warns(tmp_path):
    with pytest.warns(UserWarning, match="noise.format is float64"):
        main(_args(tmp_path, "--trainer.fast_dev_run=true", "--model.init_args.noise.format=float64"))


def test_short_fit_logs_losses_samples_and_config(tmp_path):
    cli = main(
        _args(
            tmp_path,
            "--trainer.max_steps=12",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.log_every_n_steps=1",
        )
    )
    run = Path(cli.trainer.log_dir)
    assert run == tmp_path / "noise_dim" / "digits_demo" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert {"train/loss_d", "train/loss_g", "train/kimg", "val/d_real", "val/d_fake"} <= scalars
    assert "samples/fixed_noise" in images
    # The x-axis of the curves is iterations (batches): 6 of them for 12 optimiser steps.
    assert max(e.step for e in events.Scalars("train/loss_g")) == 5
    assert events.Scalars("train/kimg")[-1].value == pytest.approx(6 * BATCH / 1000)
    pngs = sorted(glob.glob(str(run / "samples" / "*.png")))
    # One per validation epoch (2 epochs of 3 batches), named by optimiser step like checkpoints.
    assert [os.path.basename(p) for p in pngs] == ["fixed_noise_step0000006.png", "fixed_noise_step0000012.png"]
    # The noise entropy is among the logged hyperparameters: as drawn by torch (24 bits per
    # float32 dimension on the CPU), not the ideal 32 x 26.4637.
    hparams = (run / "hparams.yaml").read_text()
    assert "noise/entropy_bits: 768.0" in hparams
    assert events.Scalars("noise/entropy_bits")[0].value == pytest.approx(32 * 24.0, abs=1e-2)


def test_fit_resume_continues_from_the_saved_step(tmp_path):
    common = ("--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1", "--trainer.check_val_every_n_epoch=1")
    first = main(_args(tmp_path, "--trainer.max_steps=6", *common))
    last = Path(first.trainer.checkpoint_callback.last_model_path)
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 6 and saved["images_seen"] == 3 * BATCH
    fixed_noise = first.trainer.callbacks[0].fixed_noise.clone()

    second = main(_args(tmp_path, "--trainer.max_steps=10", f"--ckpt_path={last}", *common))
    assert second.trainer.global_step == 10
    # 3 iterations before the checkpoint + 2 after: the image counter was restored.
    assert int(second.model.images_seen) == 5 * BATCH
    grid = next(cb for cb in second.trainer.callbacks if type(cb).__name__ == "SampleGrid")
    assert torch.equal(grid.fixed_noise, fixed_noise)


def test_test_subcommand_requires_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="--ckpt_path"):
        main(_args(tmp_path, subcommand="test"))
    # With a checkpoint it evaluates D on the test split and on EMA samples.
    fit = main(_args(tmp_path, "--trainer.fast_dev_run=false", "--trainer.max_steps=2", "--trainer.limit_val_batches=0"))
    last = fit.trainer.checkpoint_callback.last_model_path
    cli = main(_args(tmp_path, f"--ckpt_path={last}", "--trainer.limit_test_batches=1", subcommand="test"))
    assert {"test/d_real", "test/d_fake"} <= set(cli.trainer.callback_metrics)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--model.init_args.not_a_key=1", "not_a_key"),
        ("--model.init_args.noise.format=float8", "float8"),
        ("--model.init_args.noise.distribution=cauchy", "cauchy"),
        ("--model.init_args.noise.dim=0", "noise.dim"),
    ],
)
def test_bad_overrides_name_the_key_or_value(tmp_path, override, fragment):
    with pytest.raises((ArgumentError, ValueError)) as exc:
        main(_args(tmp_path, override, "--trainer.fast_dev_run=true"))
    assert fragment in config_error_message(exc.value).splitlines()[0]


def test_unknown_key_in_a_config_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(DEMO).read_text().replace("g_width: 32", "g_widht: 32"))
    with pytest.raises(ArgumentError) as exc:
        main(["fit", "-c", str(bad), f"--trainer.logger.init_args.save_dir={tmp_path}"])
    assert config_error_message(exc.value) == (
        "model.init_args.g_widht: no such key (did you mean model.init_args.g_width? "
        "`python train.py fit --help` lists them)"
    )


def test_model_and_data_shapes_must_agree(tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        main(_args(tmp_path, "--model.init_args.channels=3", "--trainer.fast_dev_run=true"))


def test_runs_do_not_write_outside_the_given_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", DEMO, "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"])
    assert sorted(os.listdir(tmp_path)) == ["runs"]  # defaults: logs and checkpoints under runs/
    assert (tmp_path / "runs" / "checkpoints" / "last.ckpt").is_file()


def test_ddp_on_two_cpu_processes(tmp_path):
    """DDP (gloo): GAN steps run, the image counter is global, only rank 0 writes, nothing hangs;
    the processes draw different noise and images yet end with the same weights, without
    find_unused_parameters (each step averages the gradients of the network it updates)."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "train.py",
        *_args(
            tmp_path,
            "--trainer.accelerator=cpu",
            "--trainer.strategy=ddp",
            "--trainer.devices=2",
            "--trainer.max_steps=12",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=2",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.callbacks+=_ddp_probe.RankProbe",  # tests/_ddp_probe.py
            f"--trainer.callbacks.out_dir={tmp_path / 'probe'}",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "noise_dim" / "digits_demo" / "version_0"
    assert os.listdir(tmp_path / "noise_dim" / "digits_demo") == ["version_0"]
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 12
    assert saved["images_seen"] == 6 * BATCH  # 6 iterations of the global batch (BATCH / 2 on each process)
    assert sorted(os.listdir(run / "samples")) == ["fixed_noise_step0000006.png", "fixed_noise_step0000012.png"]
    assert f"Run:         {run}" in proc.stdout
    assert "find_unused_parameters" not in proc.stdout + proc.stderr

    ranks = [torch.load(tmp_path / "probe" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert len(ranks[0]["seeds"]) == len(ranks[1]["seeds"]) == 6
    assert not set(ranks[0]["seeds"]) & set(ranks[1]["seeds"])  # per-rank, per-batch streams
    assert not torch.isclose(ranks[0]["noise"], ranks[1]["noise"]).any()  # different noise
    assert ranks[0]["images"] != ranks[1]["images"]  # different shares of the data
    # G's, D's and the EMA copy's weights stayed identical across processes. Buffers (batch-norm
    # statistics) are per process, and checkpoints hold rank 0's.
    weights = ranks[0]["parameters"]
    assert any(k.startswith("generator_ema.") for k in weights) and any(k.startswith("discriminator.") for k in weights)
    for key in weights:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key
        assert torch.equal(ranks[0]["state"][key], saved["state_dict"][key]), key


def test_a_non_finite_loss_stops_the_run_and_keeps_last_ckpt_clean(tmp_path, monkeypatch):
    """The NaN guard: the error names the loss, the step and the last good checkpoint; no checkpoint
    written after the non-finite loss holds non-finite weights."""
    from callbacks import NonFiniteLossError
    from lightning_modules.noise_dim_gan import NoiseDimGAN

    calls = {"n": 0}
    original = NoiseDimGAN.g_loss

    def poisoned(self, batch):
        calls["n"] += 1
        loss, logs = original(self, batch)
        if calls["n"] == 3:  # the 3rd iteration's logged G loss is NaN (its optimiser step still runs)
            logs["loss_g"] = torch.tensor(float("nan"))
        return loss, logs

    monkeypatch.setattr(NoiseDimGAN, "g_loss", poisoned)
    with pytest.raises(NonFiniteLossError) as info:
        main(_args(tmp_path, "--trainer.max_steps=20", "--checkpoint.every_n_train_steps=2",
                   "--trainer.limit_val_batches=0"))  # fmt: skip
    message = str(info.value)
    assert "train/loss_g = nan" in message and "global step 6" in message and "last.ckpt" in message
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4  # written after iteration 2, not after the poisoned 3rd
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_the_nan_guard_can_be_turned_off(tmp_path):
    cli = main(_args(tmp_path, "--trainer.fast_dev_run=true", "--nan_guard.enabled=false"))
    assert not [cb for cb in cli.trainer.callbacks if type(cb).__name__ == "NonFiniteGuard" and cb.enabled]


def test_slurm_requeue_signal_is_handled_at_the_end_of_a_batch(tmp_path, monkeypatch):
    """Under SLURM (environment faked), a SIGUSR1 arriving between the D and the G step of an
    iteration is acted on once, after that iteration: the requeue checkpoint holds whole iterations."""
    import signal

    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    from lightning_modules.noise_dim_gan import NoiseDimGAN

    for key, value in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "noise-gan",
                       "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                       "SLURM_NODELIST": "localhost"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    handled = []
    monkeypatch.setattr(
        _SignalConnector, "_slurm_sigusr_handler_fn",
        lambda self, signum, frame: handled.append((signum, self.trainer.global_step, self.trainer.lightning_module.d_steps)),
    )  # fmt: skip
    original = NoiseDimGAN.g_loss

    def signalled(self, batch):
        if self.d_steps == 3:  # after the 3rd D step, before its G step
            os.kill(os.getpid(), signal.SIGUSR1)
        return original(self, batch)

    monkeypatch.setattr(NoiseDimGAN, "g_loss", signalled)
    previous = signal.getsignal(signal.SIGUSR1)
    cli = main(_args(tmp_path, "--trainer.max_steps=10", "--trainer.limit_val_batches=0"))
    assert type(cli.trainer._accelerator_connector.cluster_environment).__name__ == "SLURMEnvironment"
    assert handled == [(signal.SIGUSR1, 6, 3)]  # once, after the 3rd whole iteration
    assert signal.getsignal(signal.SIGUSR1) == previous  # the callback gave the handler back


def test_mid_epoch_checkpoints_are_quiet_and_the_end_refreshes_last_ckpt(tmp_path, recwarn):
    """every_n_train_steps under manual optimisation: no Lightning warning about the post-step state
    at each save, and last.ckpt holds the final step even when it is not a multiple of N."""
    cli = main(_args(tmp_path, "--trainer.max_steps=10", "--checkpoint.every_n_train_steps=4",
                     "--trainer.limit_val_batches=0"))  # fmt: skip
    saved = torch.load(cli.trainer.checkpoint_callback.last_model_path, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 10
    periodic = sorted(p.name for p in Path(cli.trainer.checkpoint_callback.dirpath).glob("epoch=*.ckpt"))
    assert periodic == ["epoch=0-step=8.ckpt"]  # the latest every-4-steps save (save_top_k: 1)
    assert not [w for w in recwarn if "pre-optimization state" in str(w.message)]
