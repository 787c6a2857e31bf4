"""The randomness budget (bits per generated sample, per random input), StyleGAN2's layer noise in
NoiseDimGAN, and the one TensorBoard hparams session per run."""

from __future__ import annotations

import math
from pathlib import Path

import lightning
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import metadata as hp_metadata

from core.noise import NoiseSpec
from lightning_modules import DEGAN, NoiseDimGAN, NoisyI2I, RNIStyleGAN2
from lightning_modules.classifier import Classifier
from lightning_modules.nets.noise_injection import NoiseInjection
from lightning_modules.nets.pix2pix import FeatureNoise
from lightning_modules.vae import VAE
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY_STYLEGAN2 = dict(backbone="stylegan2_ada", resolution=32, channels=1, ch=2, w_dim=8, mapping_layers=1,
                      noise={"dim": 8})  # fmt: skip


def _values_drawn(net: torch.nn.Module, run, kind: type) -> int:
    """How many random values the layers of type ``kind`` draw for one sample in ``run()``."""
    drawn = []

    def count(module, inputs, output):
        if kind is NoiseInjection:  # eps is one [1, 1, H, W] map per layer
            drawn.append(inputs[0].shape[-1] * inputs[0].shape[-2])
        else:  # FeatureNoise: one value per feature
            drawn.append(inputs[0][0].numel())

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, kind)]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return sum(drawn)


# ---------------------------------------------------------------------------------- the parts
@pytest.mark.parametrize("layer_noise", ["random", "const", "none"])
def test_stylegan2_layer_noise_sets_the_injected_part(layer_noise):
    torch.manual_seed(0)
    gan = NoiseDimGAN(**TINY_STYLEGAN2, layer_noise=layer_noise)
    budget = gan.randomness_budget()
    assert budget["z"] == gan.noise.entropy_bits() and budget["labels"] == budget["dropout"] == 0.0
    z = gan.noise.sample(1)
    values = _values_drawn(gan.generator_ema, lambda: gan.generate(z), NoiseInjection)
    assert values == 16 + 2 * (64 + 256 + 1024)  # 2,704: one map per layer at 4, 8, 8, ..., 32 px
    if layer_noise == "random":
        assert budget["injected"] == NoiseSpec(dim=values).entropy_bits()
    else:
        assert budget["injected"] == 0.0
    # In training mode, on the training path (no EMA): the same z gives the same images unless the noise is
    # random (with the noise strengths of a trained G; they start at 0).
    gan.train()
    for layer in gan.generator.modules():
        if isinstance(layer, NoiseInjection):
            layer.strength.data.fill_(0.1)
    z = gan.noise.sample(4)
    same = torch.equal(gan.generator_forward(z)[0], gan.generator_forward(z)[0])
    assert same == (layer_noise != "random")
    assert all(m.noise_mode == layer_noise for m in gan.sampling_network.modules() if isinstance(m, NoiseInjection))


def test_layer_noise_is_a_stylegan2_setting():
    with pytest.raises(ValueError, match="layer_noise"):
        NoiseDimGAN(backbone="dcgan", layer_noise="none")
    with pytest.raises(ValueError, match="layer_noise"):
        NoiseDimGAN(**{**TINY_STYLEGAN2, "layer_noise": "off"})


def test_rni_dcgan_counts_its_injection_layers():
    torch.manual_seed(0)
    gan = RNIStyleGAN2(noise={"dim": 8}, backbone="dcgan", noise_injection="rni", resolution=16, channels=1,
                       dcgan_width=4, r1_gamma=0.0, pl_weight=0.0)  # fmt: skip
    values = _values_drawn(gan.generator_ema, lambda: gan.generate(batch_size=1), NoiseInjection)
    assert values > 0 and gan.randomness_budget()["injected"] == NoiseSpec(dim=values).entropy_bits()


def test_conditional_biggan_adds_the_entropy_of_its_labels():
    kwargs = dict(backbone="biggan", resolution=32, channels=1, ch=2, shared_dim=8, noise={"dim": 8})
    assert NoiseDimGAN(**kwargs, num_classes=10).randomness_budget()["labels"] == pytest.approx(math.log2(10))
    assert NoiseDimGAN(**kwargs).randomness_budget()["labels"] == 0.0


def test_de_gan_counts_the_encoder_sample():
    gan = DEGAN(preconditioner="none", encoder_output="sample", noise={"dim": 8}, g_width=4, d_width=4)
    assert gan.randomness_budget()["encoder_sample"] == 0.0  # no VAE: z' = z_n
    gan._set_vae(VAE(latent_dim=8, width=4))
    assert gan.randomness_budget()["encoder_sample"] == NoiseSpec(dim=8).entropy_bits()  # eps of q(z|x_hat)
    gan.encoder_output = "mean"
    assert gan.randomness_budget()["encoder_sample"] == 0.0


@pytest.mark.parametrize("eval_noise", [False, True])
def test_noisy_i2i_counts_what_translate_receives(eval_noise):
    torch.manual_seed(0)
    model = NoisyI2I(channels=1, resolution=16, sigma_t2=0.1, feature_noise="encoder", feature_noise_sigma2=0.01,
                     eval_noise=eval_noise, g_width=4, g_max_width=8, d_width=4, d_max_width=8, d_layers=1)  # fmt: skip
    model.train()
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    features = _values_drawn(model.generator, lambda: model.translate(x), FeatureNoise)
    budget = model.randomness_budget()
    assert budget["z"] == budget["injected"] == budget["labels"] == 0.0
    assert budget["dropout"] == 0.0  # translate runs G in eval mode: its dropout (0.5) draws nothing
    if eval_noise:
        assert budget["input_noise"] == NoiseSpec(dim=16 * 16).entropy_bits()
        assert budget["feature_noise"] == NoiseSpec(dim=features).entropy_bits()
    else:
        assert budget["input_noise"] == budget["feature_noise"] == 0.0
        assert torch.equal(model.translate(x), model.translate(x))  # G(x) is a function of x
    assert model.generator.training  # and translate left the mode as it found it


# ---------------------------------------------------------------------------------- acceptance: z alone
def test_noise_dim_stylegan2_fit_takes_z_as_its_only_randomness(tmp_path, capsys):
    cli = main(
        [
            "fit", "-c", str(CONFIGS / "noise_dim" / "digits_stylegan2_ada.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.callbacks=[]",
            "--trainer.max_steps=4", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0",
            "--model.init_args.ch=2", "--model.init_args.w_dim=8", "--model.init_args.noise.dim=8",
            "--data.init_args.batch_size=8",
        ]  # fmt: skip
    )
    model = cli.model.train()
    assert model.hparams.layer_noise == "none" and cli.trainer.global_step == 4
    z = model.noise.sample(6)
    for ema in (False, True):  # bit for bit, twice in a row, in training mode
        assert torch.equal(model.generate(z, ema=ema), model.generate(z, ema=ema))
    assert torch.equal(model.generator_forward(z)[0], model.generator_forward(z)[0])
    # The logged budget is the z budget.
    hparams = yaml.safe_load((Path(cli.trainer.log_dir) / "hparams.yaml").read_text())
    z_bits = NoiseSpec(dim=8).entropy_bits()
    assert hparams["noise/budget_bits"] == hparams["noise/budget/z"] == hparams["noise/entropy_bits"] == z_bits
    assert hparams["noise/budget/injected"] == 0.0
    assert f"Budget:      {z_bits:.2f} bits/sample (z {z_bits:.2f}, injected 0.00, labels 0.00, dropout 0.00)" in (
        capsys.readouterr().out
    )


# ---------------------------------------------------------------------------------- the hparams session
def _classifier_checkpoint(path: Path) -> Path:
    """An untrained digit classifier in Lightning's checkpoint format: features for FID/KID, no training."""
    torch.manual_seed(0)
    model = Classifier(channels=1, resolution=32, num_classes=10, width=4)
    torch.save({"state_dict": model.state_dict(), Classifier.CHECKPOINT_HYPER_PARAMS_KEY: dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    return path


def _session(run: Path) -> tuple[list[str], list[str], dict, int]:
    """The run's hparams session: hyperparameter names, metric tags, the values, and how many sessions it holds."""
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    content = events.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    experiment = hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])
    start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
    sessions = sum(
        value.tag == hp_metadata.SESSION_START_INFO_TAG
        for path in run.glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        for value in event.summary.value
    )
    values = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    return [h.name for h in experiment.hparam_infos], [m.name.tag for m in experiment.metric_infos], values, sessions


def test_fit_and_test_runs_register_one_session_with_settings_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISE_GANS_CACHE", str(tmp_path / "cache"))
    metrics = ("{class_path: callbacks.GenerativeMetrics, init_args: {num_samples: 64, feature_extractor: classifier, "
               f"feature_path: {_classifier_checkpoint(tmp_path / 'classifier.ckpt')}, real_split: val, "
               "kid_subset_size: 32, kid_subsets: 2, pr_max_samples: 64, batch_size: 64}}")  # fmt: skip
    common = [
        "-c", str(CONFIGS / "noise_dim" / "digits_demo.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--model.init_args.g_width=8", "--model.init_args.d_width=8",
        "--trainer.callbacks=[]", f"--trainer.callbacks+={metrics}",
    ]  # fmt: skip
    fit = main(["fit", *common, "--trainer.max_steps=4", "--trainer.limit_train_batches=2",
                "--trainer.limit_val_batches=1", "--trainer.check_val_every_n_epoch=1"])  # fmt: skip
    test = main(["test", *common, f"--ckpt_path={fit.trainer.checkpoint_callback.last_model_path}",
                 "--trainer.limit_test_batches=1"])  # fmt: skip
    for cli in (fit, test):
        run = Path(cli.trainer.log_dir)
        names, tags, values, sessions = _session(run)
        assert sessions == 1 and len(names) == len(set(names))  # one session, each hyperparameter once
        assert tags == ["metrics/fid", "metrics/kid_mean", "metrics/precision", "metrics/recall"]
        assert not set(tags) & set(names)  # metrics are metrics, settings are settings
        z_bits = NoiseSpec(dim=32).entropy_bits()
        assert values["method"] == "NoiseDimGAN" and values["backbone"] == "dcgan" and values["seed"] == 0
        assert values["data"] == "DigitsDataModule" and values["g_width"] == values["d_width"] == 8
        assert values["noise/dim"] == 32 and values["noise/distribution"] == "gaussian"
        assert values["noise/format"] == "float32" and "noise/bits" not in values
        assert values["noise/budget_bits"] == values["noise/budget/z"] == pytest.approx(z_bits)
        assert {"noise/entropy_bits", "noise/entropy_bits_ideal", "noise/budget/injected"} <= set(names)
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})
        events.Reload()
        assert set(tags) <= set(events.Tags()["scalars"])  # the run logs every metric it registered
        assert events.Scalars("noise/budget_bits")[0].value == pytest.approx(z_bits, abs=1e-2)
