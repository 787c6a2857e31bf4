"""NoisyI2I (pix2pix with Gaussian input-noise injection): the U-Net and PatchGAN, where the noise acts
(training only, unless ``eval_noise``), ``sigma_t2 = 0`` as exactly pix2pix, the dedicated noise stream
(reproducible, resumable, not touching the global one), the shape checks, and the inference corruptions
of known power (:mod:`evaluation.corruptions`).  bf16: tests/test_mixed_precision.py."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule, Trainer, seed_everything
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datamodules.digits import DigitsDataModule, load_digits_tensors
from datamodules.paired import PairedI2IDataModule
from evaluation.corruptions import CORRUPTIONS, _jpeg_at, corrupt, noise_power
from lightning_modules.losses import d_loss_fn, g_loss_fn
from lightning_modules.nets.pix2pix import FeatureNoise, PatchGANDiscriminator, UNetGenerator
from lightning_modules.noisy_i2i import NoisyI2I

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

RES = 16
SMALL = {"channels": 1, "resolution": RES, "g_width": 8, "g_max_width": 16, "d_width": 8, "d_max_width": 16}
SMALL |= {"d_layers": 2, "val_examples": 0}


def _pairs(n=16, resolution=RES, seed=0):
    """``n`` pairs (x, y) in [-1, 1]: y uniform noise, x a noisy clipped copy of it."""
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, 1, resolution, resolution, generator=g) * 2 - 1
    x = (y + 0.3 * torch.randn(n, 1, resolution, resolution, generator=g)).clamp(-1, 1)
    return TensorDataset(x, y)


def _loader(dataset, batch_size=16):
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _trainer(max_steps=2, **kwargs):
    args = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    return Trainer(**{**args, **kwargs})


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these networks are tiny, and two OpenMP threads on a busy 2-core machine spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Capture:
    """Records every input of ``module`` (forward pre-hook)."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.handle = module.register_forward_pre_hook(lambda _, args: self.inputs.append(args[0].detach().clone()))

    def take(self) -> list[torch.Tensor]:
        out, self.inputs = self.inputs, []
        return out


# ============================================================================================ networks
@pytest.mark.parametrize("resolution", [4, 16, 32])
@pytest.mark.parametrize("in_channels, out_channels", [(1, 3), (3, 3)])
def test_unet_shapes_range_bottleneck_and_gradients(resolution, in_channels, out_channels):
    torch.manual_seed(0)
    g = UNetGenerator(in_channels, out_channels, resolution, width=8, max_width=16)
    downs = int(math.log2(resolution))
    assert len(g.down) == downs and len(g.up) == downs - 1
    bottleneck = _Capture(g.up[0])
    x = torch.rand(4, in_channels, resolution, resolution) * 2 - 1
    out = g(x)
    assert out.shape == (4, out_channels, resolution, resolution)
    assert out.abs().max() < 1
    assert bottleneck.inputs[0].shape == (4, min(8 * 2 ** (downs - 1), 16), 1, 1)  # the code is 1x1
    (out * torch.randn_like(out)).sum().backward()
    grad = g.down[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_unet_skip_connections_carry_the_encoder_features_and_local_detail():
    torch.manual_seed(0)
    g = UNetGenerator(1, 1, 32, width=8, max_width=16, norm="none", dropout=0.0).eval()
    enc = []
    hooks = [layer.register_forward_hook(lambda _m, _i, o: enc.append(o)) for layer in g.down]
    head = _Capture(g.out)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        out = g(x)
    for h in hooks:
        h.remove()
    # The last layer sees ReLU([decoder features, first encoder output]): the concatenated skip.
    assert head.inputs[0].shape == (2, 16, 16, 16)
    assert torch.equal(head.inputs[0][:, 8:], torch.relu(enc[0]))
    # Local detail: a one-pixel change moves the output near it far more than far from it.
    x2 = x.clone()
    x2[:, :, 8, 8] += 0.5
    with torch.no_grad():
        delta = (g(x2) - out).abs()
    assert delta.max() > 0
    near, far = delta[..., 6:11, 6:11].mean(), delta[..., 24:, 24:].mean()
    assert near > 20 * far, (near, far)


@pytest.mark.parametrize("resolution", [24, 2, 1, 100])
def test_unet_rejects_a_resolution_that_is_not_a_power_of_two(resolution):
    with pytest.raises(ValueError, match="power of two"):
        UNetGenerator(1, 1, resolution, width=8)
    with pytest.raises(ValueError, match="power of two"):
        NoisyI2I(**{**SMALL, "resolution": resolution})


def test_unet_rejects_a_non_positive_resolution():
    for resolution in (0, -16):
        with pytest.raises(ValueError):  # (math.log2's "math domain error" today, see the report)
            UNetGenerator(1, 1, resolution, width=8)


@pytest.mark.parametrize(
    "n_layers, resolution, side", [(1, 32, 14), (2, 32, 6), (3, 32, 2), (1, 64, 30), (2, 64, 14), (3, 64, 6)]
)
def test_patchgan_logit_map_shape(n_layers, resolution, side):
    d = PatchGANDiscriminator(1, 3, width=8, max_width=32, n_layers=n_layers)
    logits = d(torch.rand(2, 1, resolution, resolution), torch.rand(2, 3, resolution, resolution))
    assert logits.shape == (2, 1, side, side)


def test_patchgan_70x70_at_256_gives_30x30_logits():
    d = PatchGANDiscriminator(3, 3, width=8, max_width=64, n_layers=3)
    assert d(torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(n_layers, field):
    torch.manual_seed(0)
    d = PatchGANDiscriminator(1, 1, width=4, max_width=16, n_layers=n_layers, norm="none")
    src = torch.rand(1, 1, 128, 128, requires_grad=True)
    img = torch.rand(1, 1, 128, 128, requires_grad=True)
    logits = d(src, img)
    c = logits.shape[-1] // 2
    logits[0, 0, c, c].backward()
    for grad in (src.grad, img.grad):
        rows = grad[0, 0].abs().sum(1).nonzero()
        cols = grad[0, 0].abs().sum(0).nonzero()
        assert int(rows.max() - rows.min() + 1) == field and int(cols.max() - cols.min() + 1) == field


@pytest.mark.parametrize("dropout_layers", [0, 1, 3, 4])
def test_dropout_only_on_the_innermost_decoder_layers(dropout_layers):
    g = UNetGenerator(1, 1, 32, width=8, max_width=16, dropout=0.5, dropout_layers=dropout_layers)  # 4 decoder layers
    has = [isinstance(layer.dropout, nn.Dropout) for layer in g.up]
    assert has == [j < dropout_layers for j in range(4)]
    assert all(layer.dropout.p == 0.5 for layer in g.up if isinstance(layer.dropout, nn.Dropout))
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == dropout_layers
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(1, 1, 32, width=8, dropout=0.0).modules())


def test_feature_noise_sites():
    def sites(kind):
        g = UNetGenerator(1, 1, 32, width=8, feature_noise=kind, feature_noise_sigma=0.1)
        return sorted(int(k) for k in g.feature_noise), sum(isinstance(m, FeatureNoise) for m in g.modules())

    assert sites("none") == ([], 0)
    assert sites("bottleneck") == ([4], 1)
    assert sites("encoder") == ([0, 1, 2, 3, 4], 5)
    with pytest.raises(ValueError, match="feature_noise"):
        UNetGenerator(1, 1, 32, feature_noise="decoder")


def test_feature_noise_is_random_in_training_and_off_in_eval():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    g = UNetGenerator(1, 1, 16, width=8, dropout=0.0, feature_noise="bottleneck", feature_noise_sigma=1.0).train()
    a, b = g(x), g(x)
    assert (a - b).abs().max() > 1e-4  # noise in the code
    g.eval()
    assert torch.equal(g(x), g(x))
    clean = UNetGenerator(1, 1, 16, width=8, dropout=0.0).train()
    assert torch.equal(clean(x), clean(x))  # train mode, no dropout, no feature noise: deterministic
    # The noise has the stated variance, and `force` turns it on in eval mode.
    noise = FeatureNoise(0.5).eval()
    h = torch.zeros(64, 64, 4, 4)
    assert torch.equal(noise(h), h)
    noise.force = True
    assert noise(h).var().item() == pytest.approx(0.25, rel=0.05)


# ============================================================================================ where the noise acts
def test_training_noise_has_variance_sigma_t2_and_is_absent_in_evaluation():
    torch.manual_seed(0)
    data = _pairs(16)
    x = data.tensors[0]
    model = NoisyI2I(**SMALL, sigma_t2=0.25, dropout=0.0)
    cap = _Capture(model.generator)
    _trainer(max_steps=4).fit(model, _loader(data))  # 2 batches (2 optimiser steps each)
    seen = cap.take()
    assert len(seen) == 4  # D step (no grad) and G step per batch
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])  # one x_bar per batch
    for x_bar in (seen[0], seen[2]):
        noise = x_bar - x
        assert noise.numel() == 4096
        assert noise.var().item() == pytest.approx(0.25, rel=0.1)
        assert abs(noise.mean().item()) < 0.03  # 4 standard errors
        assert x_bar.min() < -1.2 and x_bar.max() > 1.2  # not clipped
    assert not torch.allclose(seen[0], seen[2])  # fresh noise each step

    trainer = _trainer(limit_val_batches=None, limit_test_batches=None)
    trainer.validate(model, _loader(data), verbose=False)
    trainer.test(model, _loader(data), verbose=False)
    seen = cap.take()
    assert len(seen) == 2 and all(torch.equal(s, x) for s in seen)
    model.translate(x)
    assert torch.equal(cap.take()[0], x)


def test_eval_noise_adds_the_training_noise_in_evaluation_and_translate_can_skip_it():
    torch.manual_seed(0)
    data = _pairs(16)
    x = data.tensors[0]
    model = NoisyI2I(**SMALL, sigma_t2=0.25, dropout=0.0, eval_noise=True)
    cap = _Capture(model.generator)
    trainer = _trainer(limit_val_batches=None)
    trainer.validate(model, _loader(data), verbose=False)
    trainer.validate(model, _loader(data), verbose=False)
    first, second = cap.take()
    assert (first - x).var().item() == pytest.approx(0.25, rel=0.1)
    assert torch.equal(first, second)  # the evaluation noise is reseeded per loop: reproducible
    model.translate(x, generator=torch.Generator().manual_seed(0))
    assert (cap.take()[0] - x).var().item() == pytest.approx(0.25, rel=0.1)
    model.translate(x, noise=False)
    assert torch.equal(cap.take()[0], x)


def test_translate_without_noise_is_deterministic_even_with_feature_noise():
    torch.manual_seed(0)
    x = _pairs(8).tensors[0]
    model = NoisyI2I(**SMALL, dropout=0.0, feature_noise="bottleneck", feature_noise_sigma2=1.0, eval_noise=True)
    clean = model.translate(x, noise=False)
    assert torch.equal(model.translate(x, noise=False), clean)
    noisy = model.translate(x, noise=True)
    assert (noisy - clean).abs().max() > 1e-4  # feature noise forced on in eval mode
    assert model.generator.training  # translate restores the mode


def test_translate_without_noise_after_an_eval_noise_validation_is_clean():
    torch.manual_seed(0)
    data = _pairs(8)
    x = data.tensors[0]
    model = NoisyI2I(**SMALL, dropout=0.0, feature_noise="bottleneck", feature_noise_sigma2=1.0, eval_noise=True)
    clean = model.translate(x, noise=False)
    _trainer(limit_val_batches=None).validate(model, _loader(data), verbose=False)
    assert torch.equal(model.translate(x, noise=False), clean)


# ============================================================================================ sigma_t2 = 0 is pix2pix
def _reference_pix2pix(model: NoisyI2I, data, steps: int, seed: int, bce: bool = False) -> None:
    """pix2pix written out by hand on ``model``'s networks: per batch one D step, then one G step."""
    G, D = model.generator.train(), model.discriminator.train()
    h = model.hparams
    opt_g = torch.optim.Adam(G.parameters(), lr=h.lr_g, betas=tuple(h.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=h.lr_d, betas=tuple(h.betas))

    def ns(logits, target):  # -log sigmoid(logits) for target 1, -log(1 - sigmoid(logits)) for 0
        if bce:
            return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))
        return F.softplus(-logits if target else logits).mean()

    seed_everything(seed)
    batches = iter(_loader(data, batch_size=4))
    for _ in range(steps):
        x, y = next(batches)
        with torch.no_grad():
            fake = G(x)  # dropout in train mode: draws from the global stream, as the module does
        loss_d = 0.5 * (ns(D(x, y), 1) + ns(D(x, fake), 0))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake = G(x)
        loss_g = 1.0 * ns(D(x, fake), 1) + 100.0 * F.l1_loss(fake, y)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()


def _fit(data, steps, seed=1, **kwargs):
    torch.manual_seed(0)
    model = NoisyI2I(**{**SMALL, **kwargs})
    init = copy.deepcopy(model.state_dict())
    seed_everything(seed)
    _trainer(max_steps=2 * steps).fit(model, _loader(data, batch_size=4))
    return model, init


def test_sigma_t2_zero_is_exactly_pix2pix():
    data = _pairs(16)
    steps = 3
    model, init = _fit(data, steps, sigma_t2=0.0, dropout=0.5)
    assert model.trainer.global_step == 2 * steps
    ref = NoisyI2I(**SMALL, sigma_t2=0.0, dropout=0.5)
    ref.load_state_dict(init)
    _reference_pix2pix(ref, data, steps, seed=1)
    for trained, expected in ((model.generator, ref.generator), (model.discriminator, ref.discriminator)):
        a, b = trained.state_dict(), expected.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    trained = model.generator.state_dict()
    moved = max((trained[k].float() - init[f"generator.{k}"].float()).abs().max() for k in trained)
    assert moved > 1e-5  # it did train

    # The same recipe with the BCE form of the losses agrees up to rounding.
    bce = NoisyI2I(**SMALL, sigma_t2=0.0, dropout=0.5)
    bce.load_state_dict(init)
    _reference_pix2pix(bce, data, steps, seed=1, bce=True)
    for k, v in model.generator.state_dict().items():
        assert torch.allclose(v.float(), bce.generator.state_dict()[k].float(), atol=1e-5), k

    # Training noise changes the result; a different dropout stream would too.
    noisy, _ = _fit(data, steps, sigma_t2=0.1, dropout=0.5)
    other_seed, _ = _fit(data, steps, seed=2, sigma_t2=0.0, dropout=0.5)
    w = model.generator.out.weight
    assert not torch.allclose(noisy.generator.out.weight, w, atol=1e-6)
    assert not torch.allclose(other_seed.generator.out.weight, w, atol=1e-6)


def test_losses_are_the_logistic_gan_losses():
    real, fake = torch.randn(2, 1, 5, 5), torch.randn(2, 1, 5, 5)
    bce = F.binary_cross_entropy_with_logits
    d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    assert d_loss_fn("non_saturating")(real, fake).item() == pytest.approx(d.item(), rel=1e-6)
    assert g_loss_fn("non_saturating")(fake).item() == pytest.approx(bce(fake, torch.ones_like(fake)).item(), rel=1e-6)
    assert d_loss_fn("hinge")(real, fake).item() == pytest.approx(
        (F.relu(1 - real).mean() + F.relu(1 + fake).mean()).item(), rel=1e-6
    )


def test_training_noise_does_not_consume_the_global_random_stream():
    data = _pairs(16)
    states, weights = [], []
    for sigma_t2, site in ((0.0, "none"), (0.1, "bottleneck")):
        model, _ = _fit(data, 3, sigma_t2=sigma_t2, dropout=0.5, feature_noise=site, feature_noise_sigma2=0.1)
        states.append(torch.random.get_rng_state())
        weights.append(model.generator.out.weight.detach().clone())
    assert torch.equal(states[0], states[1])  # same dropout masks, same data order, with or without noise
    assert not torch.equal(weights[0], weights[1])


# ============================================================================================ noise stream
def _training_inputs(noise_seed, max_steps=4, ckpt_path=None, model=None, **kwargs):
    """x_bar per batch of a run on one 16-image batch per epoch (2 optimiser steps per batch)."""
    torch.manual_seed(0)
    model = model or NoisyI2I(**SMALL, sigma_t2=0.25, dropout=0.0, noise_seed=noise_seed)
    cap = _Capture(model.generator)
    trainer = _trainer(max_steps=max_steps, **kwargs)
    trainer.fit(model, _loader(_pairs(16)), ckpt_path=ckpt_path)
    cap.handle.remove()
    return cap.take()[::2], trainer, model


def test_training_noise_depends_only_on_seed_and_step(tmp_path):
    a, _, _ = _training_inputs(noise_seed=7)
    b, _, _ = _training_inputs(noise_seed=7)
    c, _, _ = _training_inputs(noise_seed=8)
    assert len(a) == 2
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.allclose(a[0], c[0]) and not torch.allclose(a[1], c[1])
    assert not torch.allclose(a[0], a[1])

    # Resume after the first batch: the second batch gets the uninterrupted run's noise.
    first, trainer, _ = _training_inputs(noise_seed=7, max_steps=2)
    assert len(first) == 1 and torch.equal(first[0], a[0])
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    fresh = NoisyI2I(**SMALL, sigma_t2=0.25, dropout=0.0, noise_seed=7)
    resumed, trainer, _ = _training_inputs(noise_seed=7, max_steps=4, ckpt_path=str(ckpt), model=fresh)
    assert trainer.global_step == 4
    assert len(resumed) == 1 and torch.equal(resumed[0], a[1])


# ============================================================================================ shape checks
class _ShapedData(LightningDataModule):
    def __init__(self, image_shape, input_shape):
        super().__init__()
        self.image_shape, self.input_shape = image_shape, input_shape

    def train_dataloader(self):
        return _loader(_pairs(4))


@pytest.mark.parametrize(
    "image_shape, input_shape, name",
    [
        ((1, 32, 32), (1, 32, 32), "image_shape"),
        ((3, 16, 16), (1, 16, 16), "image_shape"),
        ((1, 16, 16), (3, 16, 16), "input_shape"),
    ],
)
def test_setup_rejects_data_of_another_shape(image_shape, input_shape, name):
    with pytest.raises(ValueError, match=rf"{name}.*resolution"):
        _trainer().fit(NoisyI2I(**SMALL), datamodule=_ShapedData(image_shape, input_shape))


def test_setup_checks_a_paired_digits_datamodule():
    dm = PairedI2IDataModule(DigitsDataModule(resolution=32, batch_size=8), degradation="blur")
    with pytest.raises(ValueError, match=r"\(1, 32, 32\).*\(1, 16, 16\).*resolution"):
        _trainer().fit(NoisyI2I(**SMALL), datamodule=dm)
    # The matching model trains.
    model = NoisyI2I(**{**SMALL, "resolution": 32})
    _trainer(max_steps=2, limit_train_batches=1).fit(model, datamodule=dm)


@pytest.mark.parametrize("key", ["sigma_t2", "feature_noise_sigma2"])
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_invalid_noise_variance_is_rejected(key, value):
    with pytest.raises(ValueError, match=rf"model\.init_args\.{key}\b"):
        NoisyI2I(**SMALL, **{key: value})


# ============================================================================================ corruptions
@pytest.fixture(scope="module")
def digits():
    return load_digits_tensors(32)[0]  # 1797 x 1 x 32 x 32, about 1.8M pixels


RANDOM_KINDS = ["gaussian", "uniform", "salt_and_pepper", "poisson"]


def test_the_corruptions_are_the_documented_ones():
    assert sorted(CORRUPTIONS) == sorted(RANDOM_KINDS + ["jpeg"])


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_corruption_reaches_the_stated_power(digits, kind):
    for sigma_e2 in (0.01, 0.05, 0.2):
        out = corrupt(digits, kind, sigma_e2, torch.Generator().manual_seed(1))
        assert out.shape == digits.shape and out.dtype == digits.dtype
        assert noise_power(out, digits) == pytest.approx(sigma_e2, rel=0.05), (kind, sigma_e2)
        mean = (out.double() - digits.double()).mean().item()
        if kind == "salt_and_pepper":  # not zero-mean: the digits are mostly -1, so salt wins
            assert mean > 0
        else:
            assert abs(mean) < 5 * math.sqrt(sigma_e2 / digits.numel()), (kind, sigma_e2, mean)
        if kind == "uniform":
            assert (out - digits).abs().max() <= math.sqrt(3 * sigma_e2) + 1e-6
            assert (out - digits).abs().max() > 0.99 * math.sqrt(3 * sigma_e2)
        if kind == "salt_and_pepper":
            kept = out == digits
            assert ((out == 1) | (out == -1) | kept).all()
            assert (~kept).float().mean() > 0.5 * sigma_e2 / 2  # p = sigma_e2 / mean(1 + x^2), some hits invisible


def test_salt_and_pepper_rejects_an_unreachable_power(digits):
    with pytest.raises(ValueError, match="salt_and_pepper cannot reach"):
        corrupt(digits[:8], "salt_and_pepper", 2.5)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_zero_power_is_the_identity_and_draws_are_reproducible(digits, kind):
    x = digits[:16]
    assert torch.equal(corrupt(x, kind, 0.0, torch.Generator().manual_seed(0)), x)
    a = corrupt(x, kind, 0.01, torch.Generator().manual_seed(3))
    b = corrupt(x, kind, 0.01, torch.Generator().manual_seed(3))
    c = corrupt(x, kind, 0.01, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    assert torch.equal(a, c) if kind == "jpeg" else not torch.equal(a, c)  # JPEG is deterministic


def test_jpeg_picks_the_quality_closest_to_the_power_and_saturates(digits):
    x = digits[::113][:16]
    u8 = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    mse = np.array(
        [
            float((torch.from_numpy(_jpeg_at(u8, q)).permute(0, 3, 1, 2) / 127.5 - 1 - x).pow(2).mean())
            for q in range(1, 101)
        ]
    )
    powers = []
    for sigma_e2 in (0.001, 0.002, 0.005, 0.01):
        out = corrupt(x, "jpeg", sigma_e2)
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
        assert torch.allclose((out + 1) * 127.5, ((out + 1) * 127.5).round(), atol=1e-4)  # 8-bit levels
        p = noise_power(out, x)
        assert p == pytest.approx(sigma_e2, rel=0.3)
        assert p == pytest.approx(mse[np.argmin(np.abs(mse - sigma_e2))], rel=1e-5)  # the closest quality
        powers.append(p)
    assert powers == sorted(powers) and len(set(powers)) == len(powers)
    top = noise_power(corrupt(x, "jpeg", 1.0), x)  # beyond reach: quality 1
    assert top == pytest.approx(mse[0], rel=1e-5) and powers[-1] < top < 0.1


def test_corrupt_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="unknown noise type"):
        corrupt(digits[:2], "speckle", 0.1)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma_e"):
            corrupt(digits[:2], "gaussian", bad)
    with pytest.raises(TypeError):
        corrupt(digits[0], "gaussian", 0.1)
