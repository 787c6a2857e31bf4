"""ADA: the augmentation pipeline (identity at p = 0, differentiable, each transform) and the p controller."""

import math

import pytest
import torch

from core.noise import NoiseSpec
from lightning_modules import NoiseDimGAN
from lightning_modules.nets.ada import COLOR, GEOMETRIC, AdaptiveAugment, AugmentPipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_p_zero_is_exactly_the_identity():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    pipe = AugmentPipe(p=0.0)
    assert pipe(x) is x
    # Any p: an image none of whose transforms fired keeps its exact pixels.
    pipe = AugmentPipe(p=0.05)
    y = pipe(x.repeat(40, 1, 1, 1), generator=_gen())
    same = [(torch.equal(y[i], x[i % 6])) for i in range(240)]
    assert 0 < sum(same) < 240


def test_all_transforms_are_differentiable():
    pipe = AugmentPipe(p=1.0)
    x = (torch.rand(2, 3, 6, 6, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    # Same random transform on every call (fresh seeded generator): a fixed differentiable map.
    assert torch.autograd.gradcheck(lambda t: pipe(t, generator=_gen(5)), (x,), eps=1e-6, atol=1e-4)
    grey = torch.rand(4, 1, 8, 8, requires_grad=True)
    pipe(grey, generator=_gen(1)).square().sum().backward()
    assert grey.grad is not None and grey.grad.abs().sum() > 0


def test_flips_and_quarter_turns_move_pixels_exactly():
    x = torch.arange(64 * 2.0).view(2, 1, 8, 8).repeat(50, 1, 1, 1)
    y = AugmentPipe(p=1.0, transforms=("xflip",))(x, generator=_gen(2))
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(100)]
    kept = [torch.equal(y[i], x[i]) for i in range(100)]
    assert all(f or k for f, k in zip(flipped, kept)) and 30 < sum(flipped) < 70  # a fair coin when it fires
    y = AugmentPipe(p=1.0, transforms=("rotate90",))(x, generator=_gen(3))
    turns = [[torch.allclose(y[i], torch.rot90(x[i], k, dims=(1, 2)), atol=1e-4) for k in range(4)] for i in range(100)]
    assert all(any(t) for t in turns) and all(sum(t[k] for t in turns) > 10 for k in range(4))


def test_each_transform_fires_with_probability_p():
    x = torch.rand(4000, 1, 8, 8) * 2 - 1
    for name in ("brightness", "scale", "xfrac"):
        y = AugmentPipe(p=0.3, transforms=(name,))(x, generator=_gen(4))
        changed = (y != x).flatten(1).any(dim=1).float().mean()
        assert abs(float(changed) - 0.3) < 0.03, name
    # The two rotations share p: each with 1 - sqrt(1 - p), so that some rotation fires with p.
    y = AugmentPipe(p=0.3, transforms=("rotate",))(x, generator=_gen(5))
    assert abs(float((y != x).flatten(1).any(dim=1).float().mean()) - 0.3) < 0.03


def test_colour_transforms_keep_grey_on_the_luma_axis():
    grey = torch.rand(8, 1, 4, 4).repeat(1, 3, 1, 1) * 2 - 1
    y = AugmentPipe(p=1.0, transforms=("lumaflip", "hue", "saturation"))(grey, generator=_gen(6))
    # Hue rotation and saturation act off the luma axis; the luma flip negates grey values.
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-5) and torch.allclose(y[:, 1], y[:, 2], atol=1e-5)
    assert torch.allclose(y.abs(), grey.abs(), atol=1e-5)


def test_every_name_is_known_and_unknown_ones_are_named():
    assert set(AugmentPipe().transforms) == set(GEOMETRIC + COLOR)
    with pytest.raises(ValueError, match="cutout"):
        AugmentPipe(transforms=("xflip", "cutout"))


def _controller(p=0.0, **kw):
    pipe = AugmentPipe(p=p)
    return pipe, AdaptiveAugment(pipe, **kw)


def test_p_rises_when_d_overfits_and_falls_otherwise():
    batch, interval, kimg = 32, 4, 2.0
    pipe, ada = _controller(target=0.6, ada_kimg=kimg, interval=interval)
    step = batch * interval / (kimg * 1000)
    for _ in range(40):  # D says "real" to every real image: r_t = 1 > 0.6
        ada.accumulate(torch.full((batch,), 3.0))
        ada.step(batch)
    assert ada.rt == 1.0
    assert float(pipe.p) == pytest.approx(10 * step)  # 10 adjustments in 40 steps
    for _ in range(8):  # r_t = -1 < 0.6
        ada.accumulate(-torch.ones(batch))
        ada.step(batch)
    assert float(pipe.p) == pytest.approx(8 * step)
    # Mixed logits: r_t is the mean sign (here 0.5 < 0.6, so p falls).
    for _ in range(interval):
        ada.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0] * 8))
        ada.step(batch)
    assert ada.rt == pytest.approx(0.5) and float(pipe.p) == pytest.approx(7 * step)


def test_p_is_clamped_to_zero_and_one():
    pipe, ada = _controller(p=0.0, ada_kimg=0.001, interval=1)
    ada.accumulate(-torch.ones(8))
    ada.step(8)
    assert float(pipe.p) == 0.0
    for _ in range(3):
        ada.accumulate(torch.ones(8))
        ada.step(8)
    assert float(pipe.p) == 1.0


def test_p_is_saved_with_the_model():
    model = NoiseDimGAN(NoiseSpec(dim=4), channels=1, g_width=4, d_width=4, augment="ada", augment_p=0.25)
    assert float(model.augment_pipe.p) == 0.25
    state = model.state_dict()
    assert state["augment_pipe.p"] == 0.25
    other = NoiseDimGAN(NoiseSpec(dim=4), channels=1, g_width=4, d_width=4, augment="ada")
    other.load_state_dict(state)
    assert float(other.augment_pipe.p) == 0.25
    # Without augmentation nothing changes in the checkpoint layout.
    plain = NoiseDimGAN(NoiseSpec(dim=4), channels=1, g_width=4, d_width=4)
    assert not any("augment" in k for k in plain.state_dict())


def test_d_sees_augmented_images_in_training_only():
    torch.manual_seed(0)
    model = NoiseDimGAN(NoiseSpec(dim=4), channels=1, g_width=4, d_width=4, augment="ada", augment_p=1.0)
    seen = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    model.train()
    model.critic(x)
    model.eval()
    model.critic(x)
    assert not torch.equal(seen[0], x) and torch.equal(seen[1], x)


def test_controller_settings_are_checked():
    pipe = AugmentPipe()
    for kw, key in [({"target": 1.5}, "ada_target"), ({"ada_kimg": 0}, "ada_kimg"), ({"interval": 0}, "ada_interval")]:
        with pytest.raises(ValueError, match=key):
            AdaptiveAugment(pipe, **kw)
    assert math.isnan(AdaptiveAugment(pipe).rt)


class _Overfit(torch.nn.Module):
    """A discriminator that calls every image real (logit +5): r_t = 1, the overfitting signal."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.flatten(1).sum(1) * self.w + 5.0


def test_p_rises_in_training_and_is_checkpointed(tmp_path):
    from lightning.pytorch import Trainer

    from datamodules import DigitsDataModule

    torch.manual_seed(0)
    # 16 images per step, adjusted every step, 0 -> 1 in 64 images: +0.25 per D step.
    model = NoiseDimGAN(NoiseSpec(dim=4), channels=1, g_width=4, d_width=4, augment="ada", ada_kimg=0.064,
                        ada_interval=1)  # fmt: skip
    model.discriminator = _Overfit()
    trainer = Trainer(max_steps=6, limit_val_batches=0, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, DigitsDataModule(batch_size=16))
    assert float(model.augment_pipe.p) == pytest.approx(0.75)  # 3 D steps
    assert trainer.callback_metrics["train/ada_p"] == pytest.approx(0.75)
    assert trainer.callback_metrics["train/ada_rt"] == 1.0
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=True)["state_dict"]["augment_pipe.p"] == pytest.approx(0.75)
