"""DE-GAN: networks (Tables II-IV, conditional and not), the VAE (Eq. 4-7), the frozen preconditioner
(Eq. 8-9), the hidden-space loss (Eq. 12) in both updates (Algorithm 1), the paper's metrics, the
configs and their baselines, checkpoints, and the CLI end to end."""

import csv
import math
from pathlib import Path

import lightning
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

import torch.nn.functional as F

from callbacks.de_gan_eval import DEGANEvaluation
from evaluation.de_gan_metrics import (
    class_diversity,
    confident_accuracy,
    diversity_degree,
    label_accuracy,
    label_accuracy_per_class,
    pca_2d,
    relative_diversity,
)
from lightning_modules.de_gan import DEGAN, hidden_space_loss
from lightning_modules.nets.de_gan import DEGANDiscriminator, DEGANGenerator, VAEDecoder, VAEEncoder, join_labels
from lightning_modules.vae import VAE
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "de_gan"
LATENT = 16


def _save_vae(vae: VAE, path: Path) -> str:
    """A checkpoint as Lightning writes it (state_dict + hyper_parameters), without a Trainer."""
    torch.save(
        {
            "state_dict": vae.state_dict(),
            "hyper_parameters": dict(vae.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return str(path)


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    # dropout > 0: if the VAE ever ran in training mode, the preconditioner would be random.
    vae = VAE(resolution=32, channels=1, latent_dim=LATENT, width=4, dropout=0.5)
    return _save_vae(vae, tmp_path_factory.mktemp("vae") / "vae.ckpt")


def _degan(vae_ckpt, **kwargs):
    args = dict(vae_ckpt=vae_ckpt, noise={"dim": LATENT}, g_width=4, d_width=4, resolution=32, channels=1)
    return DEGAN(**{**args, **kwargs})


def _digits_loader(n=32, batch_size=8):
    from datamodules.digits import load_digits_tensors

    images, labels = load_digits_tensors(32)
    return DataLoader(TensorDataset(images[:n], labels[:n]), batch_size=batch_size, drop_last=True)


# ---------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize(
    "arch, resolution, channels", [("mnist", 28, 1), ("mnist", 32, 1), ("celeba", 64, 3), ("cifar10", 32, 3)]
)
def test_networks_map_the_tables_shapes(arch, resolution, channels):
    z = torch.randn(3, LATENT)
    g = DEGANGenerator(LATENT, resolution, channels, 8, arch)
    d = DEGANDiscriminator(resolution, channels, 8, arch)
    x = g(z)
    assert x.shape == (3, channels, resolution, resolution) and x.abs().max() <= 1
    logits, h = d(x, return_features=d.default_hidden_layer)
    assert logits.shape == (3,) and h.ndim == 4  # the hidden layer is convolutional
    assert torch.equal(d.eval()(x), d(x, return_features=0)[0])
    decoder, encoder = VAEDecoder(LATENT, resolution, channels, 4), VAEEncoder(LATENT, resolution, channels, 4)
    mu, logvar = encoder(decoder(z))
    assert mu.shape == logvar.shape == z.shape


def _sizes(net, kind, attr):
    return [getattr(m, attr) for m in net.modules() if isinstance(m, kind)]


def test_table_ii_layer_sizes_at_28x28():
    """Table II = DCGAN-tensorflow's conditional MNIST model: G has FC 1024 and FC 6272 (= 128 x 7 x 7),
    D has 11 = 1 + 10 and 74 = 64 + 10 maps and FC 1024; the one-hot label joins every layer's input."""
    g, d = DEGANGenerator(128, 28, 1, 64, "mnist", 10), DEGANDiscriminator(28, 1, 64, "mnist", 10)
    Lin, Conv, Up = torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d
    assert _sizes(g, Lin, "out_features") == [1024, 6272] and _sizes(g, Lin, "in_features") == [128 + 10, 1024 + 10]
    assert _sizes(g, Up, "in_channels") == [128 + 10, 128 + 10] and _sizes(g, Up, "out_channels") == [128, 1]
    assert _sizes(d, Conv, "out_channels") == [11, 74] and _sizes(d, Conv, "in_channels") == [1 + 10, 11 + 10]
    assert _sizes(d, Lin, "out_features") == [1024, 1] and _sizes(d, Lin, "in_features") == [74 * 7 * 7 + 10, 1034]
    # The project's unconditional variant keeps the 11 and 74 maps, without label inputs.
    d0 = DEGANDiscriminator(28, 1, 64, "mnist")
    assert _sizes(d0, Conv, "out_channels") == [11, 74] and _sizes(d0, Conv, "in_channels") == [1, 11]
    assert _sizes(DEGANGenerator(128, 28, 1, 64, "mnist"), Lin, "in_features") == [128, 1024]
    assert [m.out_channels for m in VAEDecoder(128, 28, 1, 32).modules() if hasattr(m, "out_channels")] == [
        128,
        64,
        32,
        1,
    ]


def test_labels_join_as_constant_maps_and_condition_both_networks():
    h, onehot = torch.randn(2, 3, 4, 4), F.one_hot(torch.tensor([2, 0]), 5).float()
    joined = join_labels(h, onehot)
    assert joined.shape == (2, 8, 4, 4) and torch.equal(joined[:, :3], h)
    assert torch.equal(joined[0, 3:].flatten(1), torch.tensor([0.0, 0, 1, 0, 0])[:, None].expand(5, 16))
    assert torch.equal(join_labels(h.flatten(1), onehot)[:, 48:], onehot)
    torch.manual_seed(0)
    for arch, res, ch in (("mnist", 32, 1), ("cifar10", 32, 3)):
        g, d = DEGANGenerator(LATENT, res, ch, 4, arch, 10).eval(), DEGANDiscriminator(res, ch, 4, arch, 10).eval()
        z, ones, twos = torch.randn(3, LATENT), torch.ones(3, dtype=torch.long), torch.full((3,), 2)
        assert not torch.allclose(g(z, ones), g(z, twos))  # same z, another digit
        x = g(z, ones)
        assert not torch.allclose(d(x, ones), d(x, twos))
        with pytest.raises(ValueError, match="one label per image"):
            g(z)


def test_bad_arch_resolution_and_hidden_layer_are_named():
    with pytest.raises(ValueError, match="model.init_args.arch=celeba"):
        DEGANGenerator(128, 28, 3, 8, "celeba")
    with pytest.raises(ValueError, match="model.init_args.hidden_layer"):
        DEGANDiscriminator(32, 1, 8, "mnist").resolve_layer(7)


# ---------------------------------------------------------------------------------------------- VAE
def test_vae_elbo_terms_in_closed_form():
    vae = VAE(resolution=32, channels=1, latent_dim=LATENT, width=4)
    mu = torch.ones(2, LATENT)
    assert torch.allclose(vae.kl_divergence(mu, torch.zeros(2, LATENT)), torch.full((2,), LATENT / 2))
    assert torch.allclose(vae.kl_divergence(torch.zeros(2, LATENT), torch.zeros(2, LATENT)), torch.zeros(2))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    # Bernoulli: zero logits give p = 1/2 for every pixel, -log p = log 2 whatever the target.
    assert torch.allclose(vae.reconstruction_nll(torch.zeros_like(x), x), torch.full((2,), 1024 * math.log(2)))
    gauss = VAE(resolution=32, channels=1, latent_dim=LATENT, width=4, likelihood="gaussian", gaussian_sigma=0.5)
    exact = torch.atanh(x.clamp(-0.999, 0.999))
    expected = 1024 * 0.5 * math.log(2 * math.pi * 0.25)
    assert torch.allclose(
        gauss.reconstruction_nll(exact, x.clamp(-0.999, 0.999)), torch.full((2,), expected), atol=1e-3
    )
    terms = vae.elbo_terms(x)
    assert torch.isclose(terms["elbo"], -(terms["kl"] + terms["reconstruction"]))
    assert vae.decode(torch.randn(5, LATENT)).abs().max() <= 1


# ---------------------------------------------------------------------------------------------- preconditioner
def test_preconditioner_output_shape_equals_noise_shape(vae_ckpt):
    model = _degan(vae_ckpt)
    z = model.noise.sample(7)
    z_prime = model.precondition(z)
    assert z_prime.shape == z.shape == (7, LATENT)
    # Eq. 8-9 by hand: the encoder mean of the decoder's mean image.
    assert torch.allclose(z_prime, model.vae.encode(model.vae.decode(z))[0])
    assert model.sample_noise(5).shape == (5, LATENT)
    assert not torch.allclose(z_prime, z)
    sampled = _degan(vae_ckpt, encoder_output="sample").precondition(z)
    assert sampled.shape == z.shape and not torch.allclose(sampled, z_prime)


def test_preconditioner_none_is_dcgan_with_the_same_generator(vae_ckpt):
    degan, dcgan = _degan(vae_ckpt), _degan(None, preconditioner="none")
    assert dcgan.vae is None
    shapes = {k: v.shape for k, v in degan.generator.state_dict().items()}
    assert shapes == {k: v.shape for k, v in dcgan.generator.state_dict().items()}
    assert {k: v.shape for k, v in degan.discriminator.state_dict().items()} == {
        k: v.shape for k, v in dcgan.discriminator.state_dict().items()
    }
    z = dcgan.noise.sample(4)
    assert torch.equal(dcgan.precondition(z), z)
    dcgan.generator.load_state_dict(degan.generator.state_dict())  # interchangeable
    dcgan.generator_ema.load_state_dict(degan.generator_ema.state_dict())
    # The same generator; only the noise path differs.
    assert torch.equal(dcgan.generate(degan.precondition(z)), degan.generate(z))


def test_missing_or_mismatched_vae_is_an_actionable_error(vae_ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)model\.init_args\.vae_ckpt.*configs/de_gan/<data>_vae\.yaml"):
        _degan(None)
    with pytest.raises(FileNotFoundError, match=r"(?s)model\.init_args\.vae_ckpt.*configs/de_gan/<data>_vae\.yaml"):
        _degan(str(tmp_path / "nope.ckpt"))
    with pytest.raises(ValueError, match="noise.dim"):
        _degan(vae_ckpt, noise={"dim": LATENT + 1})


def test_glob_picks_the_newest_vae_and_records_the_file(vae_ckpt, tmp_path):
    import os
    import shutil

    old, new = tmp_path / "version_0.ckpt", tmp_path / "version_1.ckpt"
    shutil.copy(vae_ckpt, old)
    shutil.copy(vae_ckpt, new)
    os.utime(old, (1, 1))
    model = _degan(str(tmp_path / "version_*.ckpt"))
    assert model.hparams.vae_ckpt == str(new)


# ---------------------------------------------------------------------------------------------- hidden-space loss
def test_hidden_space_loss_eq_12():
    h = torch.randn(6, 3, 4, 4)
    for mode in ("per_sample", "mean_features"):
        assert hidden_space_loss(h, h.clone(), mode).item() == 0.0
    real = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    gen = torch.zeros(2, 2)
    # Per sample (Eq. 12): mean of ||h_real^(i) - h_gen^(i)|| = 1; the batch means coincide.
    assert hidden_space_loss(real, gen, "per_sample").item() == pytest.approx(1.0)
    assert hidden_space_loss(real, gen, "mean_features").item() == pytest.approx(0.0)
    assert hidden_space_loss(torch.zeros(2, 4), torch.ones(2, 4)).item() == pytest.approx(2.0)  # ||1_4|| = 2


# ---------------------------------------------------------------------------------------------- D's step (Algorithm 1, line 12)
def _d_loss_by_hand(model, batch, seed):
    """lambda_1 L_D and L_hid of the same fakes, recomputed from the networks."""
    real, labels = batch
    torch.manual_seed(seed)
    with torch.no_grad():
        fake = model.fake_images(real.shape[0], labels)
    logits, h = model.discriminator(torch.cat([real, fake]), torch.cat([labels, labels]), return_features=1)
    n = real.shape[0]
    l_d = F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()  # DE-GAN Eq. 10 (non-saturating)
    l_hid = (h[:n] - h[n:]).flatten(1).norm(dim=1).mean()  # DE-GAN Eq. 12
    return l_d, l_hid


@pytest.mark.parametrize("d_hidden, sign", [("maximise", -1.0), ("minimise", 1.0), ("none", 0.0)])
def test_d_step_follows_algorithm_1_line_12(d_hidden, sign):
    """D's loss is lambda_1 L_D - lambda_2 L_hid (line 12's ascent on lambda_1 L_adv + lambda_2 L_hid, the
    default), + lambda_2 L_hid (the other reading) or L_D alone (Sec. IV-B); its gradient reaches D through L_hid."""
    torch.manual_seed(0)
    model = _degan(None, preconditioner="none", num_classes=10, lambda_adv=0.5, lambda_hidden=0.3, d_hidden=d_hidden)
    batch = (torch.rand(6, 1, 32, 32) * 2 - 1, torch.arange(6) % 10)
    torch.manual_seed(1)
    loss, logs = model.d_loss(batch)
    l_d, l_hid = _d_loss_by_hand(model, batch, seed=1)
    expected = l_d if d_hidden == "none" else 0.5 * l_d + sign * 0.3 * l_hid
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert ("loss_d_hidden" in logs) == (d_hidden != "none")
    if d_hidden != "none":
        assert logs["loss_d_hidden"].item() == pytest.approx(l_hid.item(), rel=1e-5)
        (grad,) = torch.autograd.grad(loss, model.discriminator.blocks[0][0].weight)
        (grad_adv,) = torch.autograd.grad(0.5 * l_d, model.discriminator.blocks[0][0].weight)
        assert not torch.allclose(grad, grad_adv)  # L_hid moves D's first layer too
    assert model.hparams.d_hidden == d_hidden


def test_training_feeds_the_batch_labels_to_g_and_d():
    model = _degan(None, preconditioner="none", num_classes=10)
    seen = {"g": [], "d": []}
    model.generator.register_forward_pre_hook(lambda m, args: seen["g"].append(args[1].clone()))
    model.discriminator.register_forward_pre_hook(lambda m, args: seen["d"].append(args[1].clone()))
    labels = torch.tensor([3, 1, 4, 1, 5, 9])
    batch = (torch.rand(6, 1, 32, 32) * 2 - 1, labels)
    model.d_loss(batch), model.g_loss(batch)
    assert all(torch.equal(y, labels) for y in seen["g"]) and len(seen["g"]) == 2
    assert all(torch.equal(y, torch.cat([labels, labels])) for y in seen["d"]) and len(seen["d"]) == 2
    assert model.randomness_budget()["labels"] == pytest.approx(math.log2(10))
    with pytest.raises(ValueError, match="num_classes"):
        model.d_loss((batch[0], torch.full((6,), -1)))  # a dataset without labels


# ---------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained(vae_ckpt, tmp_path_factory):
    """A few DE-GAN steps on the digits with a Trainer; the VAE's state before and after."""
    torch.manual_seed(0)
    model = _degan(vae_ckpt, lambda_hidden=0.1)
    before_vae = {k: v.clone() for k, v in model.vae.state_dict().items()}
    before_g = {k: v.clone() for k, v in model.generator.state_dict().items()}
    root = tmp_path_factory.mktemp("degan_fit")
    trainer = Trainer(
        max_steps=8,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, _digits_loader())
    path = root / "degan.ckpt"
    trainer.save_checkpoint(path)
    return model, trainer, before_vae, before_g, path


def test_vae_is_frozen_and_bit_identical_after_training(trained):
    model, trainer, before_vae, before_g, _ = trained
    assert trainer.global_step == 8  # 4 iterations of D step + G step
    assert any(not torch.equal(before_g[k], v) for k, v in model.generator.state_dict().items())
    vae = model.vae
    assert not vae.training  # Lightning's .train() did not reach it
    assert all(not p.requires_grad and p.grad is None for p in vae.parameters())
    after = vae.state_dict()
    assert after.keys() == before_vae.keys()
    assert all(torch.equal(before_vae[k], after[k]) for k in after)  # parameters and buffers
    optimised = {id(p) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in vae.parameters()}
    z = model.noise.sample(4)
    model.train()
    assert torch.equal(model.precondition(z), model.precondition(z))  # dropout off: eval mode kept


def test_checkpoint_has_no_vae_weights_but_reloads_it(trained, vae_ckpt):
    model, _, _, _, path = trained
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    keys = set(checkpoint["state_dict"])
    assert keys == set(model.state_dict())
    assert all(k.split(".")[0] in {"generator", "discriminator", "generator_ema"} for k in keys)
    assert checkpoint["de_gan_vae"]["path"] == vae_ckpt and len(checkpoint["de_gan_vae"]["sha256"]) == 64
    loaded = DEGAN.load_from_checkpoint(path, map_location="cpu")
    z = model.noise.sample(5)
    assert torch.equal(loaded.precondition(z), model.precondition(z))
    model.eval(), loaded.eval()
    assert torch.equal(loaded.generate(z), model.generate(z))


# ---------------------------------------------------------------------------------------------- metrics
def test_confident_accuracy_counts_top_probabilities_above_the_threshold():
    probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5], [0.02, 0.98]])
    assert confident_accuracy(probs, 0.9) == 0.5  # 0.9 itself is not above 0.9
    assert confident_accuracy(probs, 0.5) == 0.75
    assert confident_accuracy(probs, 0.0) == 1.0
    with pytest.raises(ValueError):
        confident_accuracy(probs, 1.0)


def test_label_accuracy_is_the_share_assigned_to_the_generating_label():
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1])
    assert label_accuracy(probs, labels) == 0.5  # sample 0 and sample 3
    assert torch.equal(label_accuracy_per_class(probs, labels), torch.tensor([0.5, 0.5], dtype=torch.float64))
    per_class = label_accuracy_per_class(probs[:2], labels[:2])
    assert per_class[0] == 0.5 and per_class[1].isnan()  # no sample generated for class 1


class _LabelPainter(lightning.LightningModule):
    """A conditional "generator" that paints its label into the image: the pixel value is y / 10."""

    num_classes = 10

    def __init__(self):
        super().__init__()
        from core.noise import NoiseSpec

        self.noise = NoiseSpec(dim=2)

    def generate(self, z, labels=None, ema=True):
        return (labels.float() / 10)[:, None, None, None].expand(-1, 1, 4, 4).clone()


class _PixelReader(torch.nn.Module):
    """Reads the painted label back, except that it mistakes every 3 for a 5."""

    def predict_proba(self, x):
        y = (x[:, 0, 0, 0] * 10).round().long()
        return F.one_hot(torch.where(y == 3, 5, y), 10).float()


def test_evaluation_scores_conditional_samples_against_their_labels():
    callback = DEGANEvaluation(num_samples=100, batch_size=30, pca_samples=0)
    module = _LabelPainter()
    callback.setup(None, module, "fit")
    callback.classifier = _PixelReader()
    metrics = callback.compute(None, module)
    assert metrics["de_gan/label_accuracy"] == pytest.approx(0.9)  # 10 of the 100 samples are 3s
    assert metrics["de_gan/label_accuracy/3"] == 0.0 and metrics["de_gan/label_accuracy/5"] == 1.0
    assert metrics["de_gan/confident_share"] == 1.0  # all confident, right or wrong
    assert callback.headline == "de_gan/label_accuracy"
    assert callback.hparams_metrics() == []  # no classifier_ckpt


def test_diversity_degree_and_rdd_closed_forms():
    assert diversity_degree(torch.tensor([[0.0], [2.0]])) == pytest.approx(1.0)  # mean 1, each at distance 1
    assert diversity_degree(torch.ones(1, 5)) == 0.0
    torch.manual_seed(0)
    real = torch.randn(60, 1, 4, 4)
    labels = torch.arange(60) % 3
    real_d = class_diversity(real, labels, 3)
    assert torch.allclose(relative_diversity(real, labels, real_d), torch.ones(3, dtype=torch.float64))
    # Scaling every class about its own mean by s scales D by s^2.
    scaled = real.clone()
    for c in range(3):
        members = real[labels == c]
        scaled[labels == c] = members.mean(0) + 0.5 * (members - members.mean(0))
    rdd = relative_diversity(scaled, labels, real_d)
    assert torch.allclose(rdd, torch.full((3,), 0.25, dtype=torch.float64))
    # A class never generated has no diversity: rdd 0.
    rdd = relative_diversity(real[labels != 2], labels[labels != 2], real_d)
    assert rdd[2] == 0 and torch.allclose(rdd[:2], torch.ones(2, dtype=torch.float64))


def test_pca_2d_finds_the_dominant_directions():
    torch.manual_seed(0)
    t = torch.randn(500, 2) * torch.tensor([5.0, 2.0])
    basis = torch.linalg.qr(torch.randn(10, 10))[0][:, :2].T  # two orthonormal directions in R^10
    x = t @ basis + 0.01 * torch.randn(500, 10) + 3.0
    projected, explained = pca_2d(x)
    assert projected.shape == (500, 2) and explained.sum() > 0.999
    assert float(explained[0] / explained[1]) == pytest.approx(float(t[:, 0].var() / t[:, 1].var()), rel=0.05)
    assert torch.allclose(projected.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    again, _ = pca_2d(x)
    assert torch.equal(projected, again)


def test_table_command_reads_the_runs_metrics(tmp_path, capsys):
    """Conditional runs show the label accuracy; unconditional ones (and older runs' de_gan/accuracy) the confident share."""
    from tools.__main__ import main as tools_main

    columns = {"a": "de_gan/label_accuracy", "b": "de_gan/confident_share", "c": "de_gan/accuracy"}
    for name, accs in (("a", [0.5, 0.75, 0.9]), ("b", [0.125, 0.25, 0.5]), ("c", [0.25, 0.5, 0.75])):
        folder = tmp_path / name / "de_gan"
        folder.mkdir(parents=True)
        rows = [f"{e},{10 * e},{acc},{e / 4}" for e, acc in zip((1, 2, 5), accs)]
        header = f"epoch,global_step,{columns[name]},de_gan/rdd_mean\n"
        (folder / "metrics.csv").write_text(header + "\n".join(rows))
    runs = [f"{n.upper()}={tmp_path / n}" for n in "abc"]
    assert tools_main(["de-gan-metrics", *runs, "--plot", str(tmp_path / "fig6.png")]) == 0
    out = capsys.readouterr().out
    assert "| A | label | 0.500 | 0.750 | 0.900 | 1.25 |" in out
    assert "| B | confident | 0.125 | 0.250 | 0.500 | 1.25 |" in out
    assert "| C | confident | 0.250 | 0.500 | 0.750 | 1.25 |" in out
    assert (tmp_path / "fig6.png").is_file()


# ---------------------------------------------------------------------------------------------- configs
TWINS = {  # suffix: the model keys in which the twin differs from DE-GAN's config
    "dcgan": {"preconditioner": "none", "lambda_hidden": 0.0},  # the plain DCGAN baseline
    "vae_noise_only": {"lambda_hidden": 0.0},  # ablation: the VAE's noise alone
    "hidden_only": {"preconditioner": "none"},  # ablation: the hidden-space loss alone
    "uncond": {"num_classes": 0},  # the project's unconditional variant
}
CONFIG_TWINS = {
    "digits": ["dcgan", "vae_noise_only", "hidden_only", "uncond"],
    "mnist": ["dcgan", "vae_noise_only", "hidden_only", "uncond"],
    "cifar10": ["dcgan", "uncond"],
    "celeba64": ["dcgan"],
}


@pytest.mark.parametrize("data", sorted(CONFIG_TWINS))
def test_baselines_and_ablations_differ_only_in_their_keys(data):
    degan = yaml.safe_load((CONFIGS / f"{data}.yaml").read_text())
    model = degan["model"]["init_args"]
    assert model["preconditioner"] == "vae" and model["lambda_hidden"] == 0.01 and model["d_hidden"] == "maximise"
    assert model["num_classes"] == (0 if data == "celeba64" else 10)  # Tables II / IV: conditional; CelebA has no labels
    for suffix in CONFIG_TWINS[data]:
        twin = yaml.safe_load((CONFIGS / f"{data}_{suffix}.yaml").read_text())
        assert twin["trainer"]["logger"]["init_args"].pop("name") == f"de_gan/{data}_{suffix}"
        for key, value in TWINS[suffix].items():
            assert twin["model"]["init_args"][key] == value, (suffix, key)
            twin["model"]["init_args"][key] = model[key]
        twin["trainer"]["logger"]["init_args"]["name"] = f"de_gan/{data}"
        assert twin == degan, suffix
    vae = yaml.safe_load((CONFIGS / f"{data}_vae.yaml").read_text())
    assert vae["model"]["init_args"]["latent_dim"] == degan["model"]["init_args"]["noise"]["dim"] == 128
    assert vae["data"] == degan["data"] or data == "digits"  # digits: a smaller GAN batch for CPU
    assert f"de_gan/{data}_vae/" in degan["model"]["init_args"]["vae_ckpt"]


# ---------------------------------------------------------------------------------------------- CLI end to end
def _cli(tmp_path, config, *extra, subcommand="fit"):
    return main(
        [
            subcommand,
            "-c",
            str(config),
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.log_every_n_steps=1",
            *extra,
        ]
    )


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_cli_vae_then_degan_fit_and_test_with_the_evaluation(tmp_path):
    """Classifier, VAE, DE-GAN via train.py; the callback computes accuracy, rdd, PCA each epoch and at test."""
    classifier = _cli(
        tmp_path,
        ROOT / "configs" / "classifier" / "digits.yaml",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=1",
    )
    classifier_ckpt = classifier.trainer.checkpoint_callback.last_model_path
    vae = _cli(
        tmp_path,
        CONFIGS / "digits_vae.yaml",
        "--trainer.max_steps=3",
        "--trainer.limit_val_batches=1",
        "--trainer.check_val_every_n_epoch=1",
        "--model.init_args.width=4",
    )
    vae_run = Path(vae.trainer.log_dir)
    assert (vae_run / "checkpoints" / "last.ckpt").is_file()

    config = yaml.safe_load((CONFIGS / "digits.yaml").read_text())
    evaluation = config["trainer"]["callbacks"][1]["init_args"]
    evaluation.update(classifier_ckpt=classifier_ckpt, num_samples=200, pca_samples=100, batch_size=100)
    model = config["model"]["init_args"]
    model.update(vae_ckpt=str(tmp_path / "de_gan" / "digits_vae" / "version_*" / "checkpoints" / "last.ckpt"))
    model.update(g_width=4, d_width=4)
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(config))
    fit = _cli(
        tmp_path, path, "--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"
    )
    assert fit.model.hparams.vae_ckpt == str(vae_run / "checkpoints" / "last.ckpt")
    run = Path(fit.trainer.log_dir)
    metrics = fit.trainer.callback_metrics
    assert fit.model.num_classes == 10  # digits.yaml is the paper's conditional Table II model
    assert 0.0 <= float(metrics["de_gan/label_accuracy"]) <= 1.0
    assert {"de_gan/rdd_mean", "de_gan/rdd/0", "de_gan/rdd/9", "de_gan/confidence_mean", "de_gan/confident_share",
            "de_gan/label_accuracy/0", "de_gan/label_accuracy/9"} <= set(metrics)  # fmt: skip
    with open(run / "de_gan" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["de_gan/label_accuracy"]) == pytest.approx(float(metrics["de_gan/label_accuracy"]))
    assert (run / "de_gan" / "convergence.png").is_file()
    # The frozen VAE concentrates the noise: PC1+PC2 explain more of z' than of z_n (Fig. 11).
    pca = fit.trainer.logged_metrics
    assert float(pca["de_gan/pca_explained_zprime"]) > float(pca["de_gan/pca_explained_zn"])

    test = _cli(tmp_path, path, f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", subcommand="test")
    assert 0.0 <= float(test.trainer.callback_metrics["de_gan/label_accuracy"]) <= 1.0


# ---------------------------------------------------------------------------------------------- old checkpoints
#: The unconditional networks' layer names before the conditional models (G's ``fc``/``conv``
#: Sequentials, a Flatten inside D's fully connected block), written out by hand: old -> new.
_OLD_NAMES = {
    "mnist": {
        "generator.fc.0": "generator.stages.0.0", "generator.fc.1": "generator.stages.0.1",
        "generator.fc.3": "generator.stages.1.0", "generator.fc.4": "generator.stages.1.1",
        "generator.conv.0": "generator.stages.2.0", "generator.conv.1": "generator.stages.2.1",
        "generator.conv.3": "generator.stages.3",
        "discriminator.blocks.2.1": "discriminator.blocks.2.0", "discriminator.blocks.2.2": "discriminator.blocks.2.1",
    },
    "cifar10": {
        "generator.fc.0": "generator.stages.0.0", "generator.fc.1": "generator.stages.0.1",
        "generator.conv.0": "generator.stages.1.0", "generator.conv.1": "generator.stages.1.1",
        "generator.conv.3": "generator.stages.2.0", "generator.conv.4": "generator.stages.2.1",
        "generator.conv.6": "generator.stages.3.0", "generator.conv.7": "generator.stages.3.1",
        "generator.conv.9": "generator.stages.4", "discriminator.blocks.3.1": "discriminator.blocks.3",
    },
}  # fmt: skip


@pytest.mark.parametrize("arch, resolution", [("mnist", 28), ("cifar10", 32)])
def test_checkpoints_with_the_old_layer_names_load_with_equal_outputs(arch, resolution, vae_ckpt, tmp_path):
    from lightning_modules.nets.de_gan import upgrade_legacy_state_dict

    torch.manual_seed(0)
    module = _degan(vae_ckpt, arch=arch, resolution=resolution, ema_kimg=1.0)
    module.eval()
    for buffer in module.buffers():  # batch-norm statistics that are not the initial ones
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    table = _OLD_NAMES[arch]
    table.update({"generator_ema.module." + k[len("generator.") :]: "generator_ema.module." + v[len("generator.") :]
                  for k, v in list(table.items()) if k.startswith("generator.")})  # fmt: skip
    inverse = {new: old for old, new in table.items()}
    old_state = {}
    for key, value in module.state_dict().items():
        prefix = next((new for new in inverse if key.startswith(new + ".")), None)
        old_state[key if prefix is None else inverse[prefix] + key[len(prefix) :]] = value
    assert any(".fc.0." in k for k in old_state) and old_state.keys() != module.state_dict().keys()
    assert upgrade_legacy_state_dict(old_state).keys() == module.state_dict().keys()
    assert upgrade_legacy_state_dict(module.state_dict()).keys() == module.state_dict().keys()  # new names kept

    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": old_state, "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    loaded = DEGAN.load_from_checkpoint(path, map_location="cpu").eval()
    z = torch.randn(4, LATENT)
    images = torch.rand(4, 1, resolution, resolution) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.generate(z), module.generate(z))
        assert torch.equal(loaded.generate(z, ema=False), module.generate(z, ema=False))
        assert torch.equal(loaded.discriminator(images), module.discriminator(images))
