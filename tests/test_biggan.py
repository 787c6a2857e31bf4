"""BigGAN networks (hierarchical latent, spectral norm, conditioning) and NoiseDimGAN's biggan backbone."""

import pytest
import torch
from lightning.pytorch import Trainer

from core.noise import NoiseSpec
from datamodules import DigitsDataModule
from lightning_modules import NoiseDimGAN
from lightning_modules.nets.biggan import BigGANDiscriminator, BigGANGenerator, SelfAttention, split_latent
from train import main


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 20, 129])
def test_latent_split_covers_every_dimension_once(n):
    z = torch.randn(3, n)
    chunks = split_latent(z, 4)
    sizes = [c.shape[1] for c in chunks]
    assert len(chunks) == 4 and sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert torch.equal(torch.cat(chunks, dim=1), z)


def _record_inputs(g: BigGANGenerator) -> dict:
    """Forward hooks: the input of the initial linear layer and of each block's CBN gain layer."""
    seen: dict = {}
    g.linear.register_forward_hook(lambda m, inp, out: seen.__setitem__("linear", inp[0].detach().clone()))
    for i, block in enumerate(g.blocks):
        if block.bn1.cond_dim > 0:
            hook = (lambda i: lambda m, inp, out: seen.__setitem__(i, inp[0].detach().clone()))(i)
            block.bn1.gain.register_forward_hook(hook)
    return seen


@pytest.mark.parametrize("n, num_classes", [(7, 10), (20, 0), (2, 10)])
def test_each_chunk_feeds_exactly_one_place(n, num_classes):
    torch.manual_seed(0)
    g = BigGANGenerator(n, 32, 1, ch=4, num_classes=num_classes, shared_dim=6).eval()
    seen = _record_inputs(g)
    z, y = torch.randn(5, n), torch.arange(5) % max(num_classes, 1)
    g(z, y if num_classes else None)
    chunks = split_latent(z, 4)
    assert torch.equal(seen["linear"], chunks[0])
    for i, chunk in enumerate(chunks[1:]):
        width = chunk.shape[1]
        if width == 0 and num_classes == 0:
            assert i not in seen  # no condition at all: a plain learned affine
            continue
        cond = seen[i]
        assert cond.shape[1] == width + (6 if num_classes else 0)
        assert torch.equal(cond[:, :width], chunk)
        if num_classes:  # the shared class embedding follows the chunk
            assert torch.equal(cond[:, width:], g.shared(y).detach())


@pytest.mark.parametrize("n", [1, 3, 13])
def test_every_noise_coordinate_moves_the_output(n):
    torch.manual_seed(1)
    g = BigGANGenerator(n, 32, 3, ch=4, num_classes=10).eval()  # eval: samples do not mix through BN
    z = torch.randn(4, n, requires_grad=True)
    out = g(z, torch.arange(4))
    (out * torch.randn_like(out)).sum().backward()
    assert (z.grad.abs() > 0).all(), z.grad


def test_spectral_norm_keeps_the_largest_singular_value_at_one():
    torch.manual_seed(2)
    g = BigGANGenerator(5, 32, 3, ch=4, num_classes=3, attn_resolution=16).train()
    d = BigGANDiscriminator(32, 3, ch=4, num_classes=3, attn_resolution=16).train()
    modules = [m for net in (g, d) for m in net.modules() if hasattr(m, "parametrizations")]
    assert len(modules) > 20
    with torch.no_grad():
        for m in modules:  # far from norm one before normalisation
            m.parametrizations.weight.original.copy_(torch.randn_like(m.parametrizations.weight.original) * 3)
        x, y = torch.randn(2, 5), torch.tensor([0, 2])
        for _ in range(60):  # one power iteration per training forward pass
            d(g(x, y), y)
    g.eval(), d.eval()
    sigmas = []
    for m in modules:
        w = m.weight.detach()
        sigmas.append(float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)))
        raw = m.parametrizations.weight.original.detach()
        assert float(torch.linalg.matrix_norm(raw.reshape(raw.shape[0], -1), ord=2)) > 2
    # Power iteration approaches sigma_max from below, so W / sigma_estimate is at or just above norm one.
    assert min(sigmas) > 0.999 and max(sigmas) < 1.05, sigmas


def test_conditioning_and_attention():
    torch.manual_seed(3)
    g = BigGANGenerator(8, 32, 3, ch=4, num_classes=10, attn_resolution=16).eval()
    d = BigGANDiscriminator(32, 3, ch=4, num_classes=10, attn_resolution=8).eval()
    assert sum(isinstance(m, SelfAttention) for m in g.modules()) == 1
    assert sum(isinstance(m, SelfAttention) for m in d.modules()) == 1
    z = torch.randn(2, 8).repeat(2, 1)
    x = g(z, torch.tensor([0, 0, 1, 1]))
    assert not torch.allclose(x[:2], x[2:])  # same z, another class
    assert d(x, torch.tensor([0, 0, 1, 1])).shape == (4,)
    with pytest.raises(ValueError, match="conditional"):
        g(z)
    unconditional = BigGANGenerator(8, 64, 3, ch=2)
    assert unconditional(torch.randn(2, 8)).shape == (2, 3, 64, 64)
    assert BigGANDiscriminator(64, 3, ch=2)(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="model.init_args.resolution"):
        BigGANGenerator(8, 48)
    with pytest.raises(ValueError, match="model.init_args.attn_resolution"):
        BigGANGenerator(8, 32, attn_resolution=12)
    with pytest.raises(ValueError, match="model.init_args.noise.dim"):
        BigGANGenerator(8, 32, ch=2)(torch.randn(2, 9))
    with pytest.raises(ValueError, match="num_classes"):
        NoiseDimGAN(NoiseSpec(dim=4), backbone="dcgan", num_classes=10)


def test_conditional_training_feeds_the_batch_labels_and_takes_d_steps_per_g():
    torch.manual_seed(4)
    model = NoiseDimGAN(
        NoiseSpec(dim=6), backbone="biggan", channels=1, ch=4, num_classes=10, loss="hinge", d_steps_per_g=2
    )
    calls = {"g": [], "d": []}
    model.generator.register_forward_pre_hook(lambda m, args: calls["g"].append(args[1].clone()))
    model.discriminator.register_forward_pre_hook(lambda m, args: calls["d"].append(args[1].clone()))
    data = DigitsDataModule(batch_size=16)
    trainer = Trainer(
        max_steps=6, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    # 6 optimiser steps = 2 x (2 D steps + 1 G step); every batch is one D step.
    assert model.d_steps == 4 and model.images_seen == 4 * 16
    assert len(calls["g"]) == 4 + 2  # a fake batch per D step, one per G step
    # D step: G draws fakes with the real batch's labels, D scores reals and fakes with them.
    for i in range(0, 2):
        assert torch.equal(calls["g"][i], calls["d"][2 * i]) and torch.equal(calls["d"][2 * i], calls["d"][2 * i + 1])
    assert all(int(labels.max()) < 10 and int(labels.min()) >= 0 for labels in calls["g"])


def test_unlabelled_data_in_a_conditional_model_is_an_error_naming_num_classes():
    model = NoiseDimGAN(NoiseSpec(dim=6), backbone="biggan", channels=1, ch=2, num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        model.critic(torch.zeros(2, 1, 32, 32), torch.tensor([-1, -1]))


def test_fit_biggan_through_the_cli(tmp_path):
    from test_train_cli import _args  # the demo config with the CLI test's settings

    cli = main(
        _args(
            tmp_path,
            "--trainer.fast_dev_run=true",
            "--model.init_args.backbone=biggan",
            "--model.init_args.ch=4",
            "--model.init_args.num_classes=10",
            "--model.init_args.loss=hinge",
            "--model.init_args.betas=[0.0, 0.999]",
            "--model.init_args.noise.dim=5",
        )
    )
    assert cli.trainer.global_step == 2
    assert isinstance(cli.model.generator, BigGANGenerator)
    assert cli.model.generator.chunk_sizes == [2, 1, 1, 1]
