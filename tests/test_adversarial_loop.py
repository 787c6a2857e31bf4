"""The shared template training step, the one sampling API and the frozen-network wrapper."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from lightning_modules import DEGAN, GANZ, VAE, NoiseDimGAN, NoiseSpec, NoisyI2I, RNIStyleGAN2
from lightning_modules.adversarial import AdversarialLoop, AdversarialModule
from lightning_modules.frozen import Frozen

GANS = [NoiseDimGAN, RNIStyleGAN2, DEGAN, GANZ]


@pytest.mark.parametrize("cls", [*GANS, NoisyI2I], ids=lambda c: c.__name__)
def test_no_method_rewrites_the_loop(cls):
    """Methods supply losses and hooks; the training step, optimisers and checkpoint counters are the base's."""
    assert issubclass(cls, AdversarialLoop)
    for name in ("training_step", "_update"):
        owner = next(k for k in cls.__mro__ if name in vars(k))
        assert owner is AdversarialLoop, f"{cls.__name__}.{name} is defined by {owner.__name__}"
    source = inspect.getsource(inspect.getmodule(cls))
    for call in ("backward_and_step", "manual_backward", "toggle_optimizer", "generator_ema.update", "images_seen +="):
        assert call not in source, f"{cls.__name__}'s module calls {call}: the loop's job"


@pytest.mark.parametrize("cls", GANS, ids=lambda c: c.__name__)
def test_every_gan_has_the_one_generate_signature(cls):
    assert inspect.signature(cls.generate) == inspect.signature(AdversarialModule.generate)
    params = inspect.signature(cls.generate).parameters
    assert [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY] == [
        "labels", "batch_size", "ema", "noise_mode",
    ]  # fmt: skip


def _tiny_dcgan(**kwargs) -> NoiseDimGAN:
    return NoiseDimGAN(noise=NoiseSpec(dim=4), backbone="dcgan", resolution=8, channels=1, g_width=4, d_width=4,
                       ema_kimg=0.0, **kwargs)  # fmt: skip


def test_noise_mode_reaches_injected_noise_and_is_ignored_without_it():
    torch.manual_seed(0)
    z = torch.randn(3, 4)
    plain = _tiny_dcgan()
    assert not plain.injects_noise
    assert torch.equal(plain.generate(z, noise_mode="const"), plain.generate(z))
    rni = RNIStyleGAN2(noise=NoiseSpec(dim=8), backbone="dcgan", resolution=8, channels=1, dcgan_width=4,
                       noise_injection="eni", pl_weight=0.0, style_mixing_prob=0.0)  # fmt: skip
    assert rni.injects_noise
    with torch.no_grad():  # non-zero strengths, so fresh noise changes the image
        for layer in rni.injection_layers(ema=True):
            layer.strength.fill_(1.0)
    z8 = z.repeat(1, 2)
    assert torch.equal(rni.generate(z8, noise_mode="const"), rni.generate(z8, noise_mode="const"))
    assert not torch.equal(rni.generate(z8, noise_mode="random"), rni.generate(z8, noise_mode="random"))
    assert not torch.equal(rni.generate(z8, noise_mode="const"), rni.generate(z8, noise_mode="none"))


class _Counting(AdversarialLoop):
    """A toy method on the bare loop: records the order in which the loop calls its hooks."""

    def __init__(self, d_steps_per_g: int) -> None:
        super().__init__()
        self.generator, self.discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
        self._init_loop(image_shape=(1, 1, 2), lr_g=0.1, lr_d=0.1, betas=(0.5, 0.9), d_steps_per_g=d_steps_per_g,
                        ema_kimg=0.0)  # fmt: skip
        self.calls: list[str] = []

    def prepare_batch(self, batch):
        self.calls.append("prepare")
        return batch

    def d_loss(self, batch):
        self.calls.append("d")
        loss = self.discriminator(self.generator(batch[0].flatten(1)).detach()).mean()
        return loss, {"loss_d": loss.detach()}

    def g_loss(self, batch):
        self.calls.append("g")
        loss = -self.discriminator(self.generator(batch[0].flatten(1))).mean()
        return loss, {"loss_g": loss.detach()}

    def on_iteration_end(self, batch, logs):
        self.calls.append("end")
        logs["extra"] = torch.tensor(1.0)


def test_the_loop_calls_the_hooks_in_order_and_counts(tmp_path):
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader, TensorDataset

    model = _Counting(d_steps_per_g=2)
    data = DataLoader(TensorDataset(torch.randn(12, 1, 1, 2)), batch_size=3)
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, data)
    assert model.calls == ["prepare", "d", "end", "prepare", "d", "g", "end"] * 2
    assert model.d_steps == 4 and model.images_seen == 12
    assert trainer.global_step == 6  # 4 D steps + 2 G steps
    assert "train/extra" in trainer.callback_metrics and "train/kimg" in trainer.callback_metrics
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(model.generator_ema.parameters(), model.generator.parameters()))


def test_a_method_without_a_loss_must_supply_its_own():
    class NoLoss(AdversarialModule):
        def __init__(self):
            super().__init__()
            self.generator, self.discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
            self._init_adversarial(noise=NoiseSpec(dim=2), image_shape=(1, 1, 2), lr_g=0.1, lr_d=0.1,
                                   betas=(0.5, 0.9), ema_kimg=0.0, ema_rampup=None)  # fmt: skip

    with pytest.raises(NotImplementedError, match="must implement d_loss"):
        NoLoss().d_loss(torch.zeros(1, 1, 1, 2))


# ------------------------------------------------------------------ Frozen
class _WithFrozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trained = nn.Linear(3, 3)
        self.frozen = Frozen(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)))


def test_a_frozen_network_is_fixed_moved_and_never_saved():
    module = _WithFrozen()
    net = module.frozen.net
    assert [k for k in module.state_dict()] == ["trained.weight", "trained.bias"]
    assert len(list(module.parameters())) == 2  # no optimiser, DDP sync or EMA sees the frozen one
    assert not any(p.requires_grad for p in net.parameters())
    module.train()
    assert module.trained.training and not module.frozen.training and not net.training and not net[1].training
    x = torch.randn(4, 3)
    assert torch.equal(module.frozen(x), module.frozen(x))  # dropout off: a fixed function
    module.double()
    assert all(p.dtype == torch.float64 for p in net.parameters())
    module.load_state_dict(module.state_dict())  # strict: nothing of the frozen network is expected


def test_de_gan_counts_its_d_steps_and_keeps_the_vae_frozen(tmp_path):
    vae = VAE(latent_dim=4, resolution=32, channels=1)
    path = tmp_path / "vae.ckpt"
    torch.save({"state_dict": vae.state_dict(), "hyper_parameters": dict(vae.hparams),
                "pytorch-lightning_version": "2.6.0"}, path)  # fmt: skip
    model = DEGAN(vae_ckpt=str(path), noise=NoiseSpec(dim=4), g_width=4, d_width=4)
    assert isinstance(model.frozen_vae, Frozen) and model.vae is model.frozen_vae.net
    assert not any(k.startswith("frozen_vae") for k in model.state_dict())
    model.train()
    assert not model.vae.training
