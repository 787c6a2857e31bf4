"""Perceptual path length (evaluation.ppl) against closed forms on linear and quadratic generators."""

import math

import pytest
import torch

from evaluation.ppl import (
    FeatureDistance,
    LPIPSDistance,
    LPIPSWeightsNotFound,
    distance_label,
    face_crop,
    lerp,
    percentile_mask,
    perceptual_path_length,
    slerp,
    squared_l2,
)

D = 6
KEEP_ALL = dict(lower_percentile=0, upper_percentile=100)  # no percentile filtering


class Recorder:
    """sample_z that keeps what it drew: Gaussian latents [n, D] in float64."""

    def __init__(self, dim=D):
        self.dim, self.draws = dim, []

    def __call__(self, n, generator):
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        self.draws.append(z)
        return z

    def pairs(self):
        return torch.cat(self.draws[0::2]), torch.cat(self.draws[1::2])


def _linear(seed=0, out=12):
    a = torch.randn(out, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a, (lambda z: (z @ a.T).reshape(len(z), 3, 2, 2))


def test_lerp_of_a_linear_generator_is_exactly_the_squared_image_of_the_difference():
    a, generate = _linear()
    rec = Recorder()
    ppl, values = perceptual_path_length(
        generate, rec, squared_l2, num_samples=50, batch_size=16, interpolation="lerp", **KEEP_ALL
    )
    z1, z2 = rec.pairs()
    expected = ((z2 - z1) @ a.T).pow(2).sum(1)  # d(G(z_t), G(z_t+eps)) / eps^2 = |A (z2 - z1)|^2 for every t
    assert values.shape == (50,) and values.dtype == torch.float64
    assert torch.allclose(values, expected, rtol=1e-6)
    assert ppl.item() == pytest.approx(expected.mean().item(), rel=1e-6)


def test_linear_generator_value_does_not_depend_on_epsilon():
    _, generate = _linear(1)
    kw = dict(num_samples=20, interpolation="lerp", seed=3)
    big = perceptual_path_length(generate, Recorder(), squared_l2, epsilon=1e-2, **kw)[1]
    small = perceptual_path_length(generate, Recorder(), squared_l2, epsilon=1e-4, **kw)[1]
    assert torch.allclose(big, small, rtol=1e-6)


def test_quadratic_generator_converges_as_epsilon_shrinks_and_end_sampling_measures_at_t0():
    generate = lambda z: z.pow(2)  # noqa: E731  G(z) = z^2 elementwise: dG/dt along the path = 2 z_t (z2 - z1)
    kw = dict(num_samples=40, interpolation="lerp", sampling="end", **KEEP_ALL)
    rec = Recorder()
    values = perceptual_path_length(generate, rec, squared_l2, epsilon=1e-5, **kw)[1]
    z1, z2 = rec.pairs()
    at_t0 = (2 * z1 * (z2 - z1)).pow(2).sum(1)
    assert torch.allclose(values, at_t0, rtol=1e-3)
    errors = [
        (perceptual_path_length(generate, Recorder(), squared_l2, epsilon=eps, **kw)[1] - at_t0).abs().max().item()
        for eps in (1e-1, 1e-2, 1e-3)
    ]
    assert errors[0] > 5 * errors[1] > 25 * errors[2]  # O(epsilon) error


def test_full_sampling_differs_from_end_sampling_where_the_path_speed_varies():
    generate = lambda z: z.pow(2)  # noqa: E731
    kw = dict(num_samples=400, interpolation="lerp", **KEEP_ALL)
    rec = Recorder()
    full = perceptual_path_length(generate, rec, squared_l2, sampling="full", **kw)[1]
    end = perceptual_path_length(generate, Recorder(), squared_l2, sampling="end", **kw)[1]
    # Same seed, so the same pairs; only t differs.  With u = z2 - z1, per dimension
    # E[(2 z_t u)^2] = 4 (Var z_t Var u + 2 Cov(z_t, u)^2) = 8 ((1-t)^2 + t^2) + 8 (2t - 1)^2:
    # 16 at t = 0, 8 on average over t ~ U(0, 1).
    assert end.mean().item() == pytest.approx(16 * D, rel=0.15)
    assert full.mean().item() == pytest.approx(8 * D, rel=0.15)
    z1, z2 = rec.pairs()
    assert torch.allclose(end, (2 * z1 * (z2 - z1)).pow(2).sum(1), rtol=1e-3)


def test_slerp_stays_on_the_sphere_and_joins_the_end_points():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, D, generator=g, dtype=torch.float64), torch.randn(64, D, generator=g, dtype=torch.float64)
    for t in (0.0, 0.3, 0.5, 1.0, 1.0 + 1e-4):
        p = slerp(a, b, torch.full((64,), t, dtype=torch.float64))
        assert torch.allclose(p.norm(dim=1), torch.full((64,), math.sqrt(D), dtype=torch.float64))
    r = 2.5
    ends = slerp(a, b, torch.zeros(64, dtype=torch.float64), r), slerp(a, b, torch.ones(64, dtype=torch.float64), r)
    assert torch.allclose(ends[0], r * a / a.norm(dim=1, keepdim=True))
    assert torch.allclose(ends[1], r * b / b.norm(dim=1, keepdim=True))
    # Constant angular speed: the angle from a is t * Omega.
    omega = torch.acos((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)))
    mid = slerp(a, b, torch.full((64,), 0.25, dtype=torch.float64), 1.0)
    angle = torch.acos((mid * a).sum(1) / a.norm(dim=1))
    assert torch.allclose(angle, 0.25 * omega, atol=1e-6)


def test_slerp_path_length_of_the_identity_is_the_squared_arc_speed():
    rec = Recorder()
    values = perceptual_path_length(lambda z: z, rec, squared_l2, num_samples=64, **KEEP_ALL)[1]
    z1, z2 = rec.pairs()
    omega = torch.acos((z1 * z2).sum(1) / (z1.norm(dim=1) * z2.norm(dim=1)))
    assert torch.allclose(values, (math.sqrt(D) * omega) ** 2, rtol=1e-3)  # |d/dt slerp|^2 = (r Omega)^2


def test_lerp_helper_broadcasts_t():
    a, b = torch.zeros(3, 2, 4), torch.ones(3, 2, 4)
    out = lerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_percentile_filter_drops_outliers():
    inliers = torch.linspace(1.0, 2.0, 198, dtype=torch.float64)
    values = torch.cat([inliers, torch.tensor([1e6, -1e6], dtype=torch.float64)])
    keep = percentile_mask(values, 1, 99)
    assert not keep[-2:].any() and keep[1:197].all()
    assert values[keep].mean().item() == pytest.approx(1.5, abs=0.01)
    assert percentile_mask(values, 0, 100).all()


def test_ppl_ignores_a_rare_huge_step():
    seen = [0]

    def distance(x, y):  # a "mode boundary" on pairs 7 and 150 of 300 (< 1%)
        d = squared_l2(x, y)
        index = torch.arange(seen[0], seen[0] + len(d))
        seen[0] += len(d)
        return torch.where((index == 7) | (index == 150), d * 1e6, d)

    kw = dict(num_samples=300, interpolation="lerp", seed=1)
    filtered, values = perceptual_path_length(lambda z: z, Recorder(), distance, **kw)
    seen[0] = 0
    raw, _ = perceptual_path_length(lambda z: z, Recorder(), distance, **KEEP_ALL, **kw)
    assert (values > 1e4).sum() == 2
    keep = percentile_mask(values)
    assert not keep[[7, 150]].any() and keep.sum() >= 294
    assert filtered.item() == pytest.approx(values[keep].mean().item())
    assert filtered.item() < 1.5 * 2 * D and raw.item() > 1e3  # E|z2 - z1|^2 = 2 D


def test_w_space_uses_the_mapping_and_lerp():
    m = torch.randn(5, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mapping = lambda z: torch.tanh(z @ m.T)  # noqa: E731
    rec = Recorder()
    values = perceptual_path_length(
        lambda w: w, rec, squared_l2, space="w", mapping=mapping, num_samples=30, **KEEP_ALL
    )[1]
    z1, z2 = rec.pairs()
    assert torch.allclose(values, (mapping(z2) - mapping(z1)).pow(2).sum(1), rtol=1e-6)
    with pytest.raises(ValueError, match="mapping"):
        perceptual_path_length(lambda w: w, Recorder(), squared_l2, space="w", num_samples=4)


def test_conditional_generator_gets_one_label_per_pair():
    seen = []

    def generate(z, labels):
        seen.append(labels)
        return z + labels[:, None].to(z.dtype)

    perceptual_path_length(generate, Recorder(), squared_l2, num_classes=10, num_samples=20, batch_size=8)
    for labels in seen:
        first, second = labels.chunk(2)
        assert torch.equal(first, second) and labels.max() < 10


def test_same_seed_same_value_and_bad_distance_shape():
    kw = dict(num_samples=16)
    assert torch.equal(
        perceptual_path_length(torch.tanh, Recorder(), squared_l2, **kw)[1],
        perceptual_path_length(torch.tanh, Recorder(), squared_l2, **kw)[1],
    )
    with pytest.raises(ValueError, match="one value per pair"):
        perceptual_path_length(torch.tanh, Recorder(), lambda x, y: (x - y).sum(), **kw)


def test_feature_distance_uses_the_features_method():
    class Net(torch.nn.Module):
        def features(self, x):
            return 2 * x.flatten(1)

        def forward(self, x):  # not used
            raise AssertionError

    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    assert torch.allclose(FeatureDistance(Net())(x, y), torch.full((3,), 16.0, dtype=torch.float64))
    assert torch.allclose(FeatureDistance(torch.nn.Flatten())(x, y), torch.full((3,), 4.0, dtype=torch.float64))


def test_lpips_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache
    with pytest.raises(LPIPSWeightsNotFound, match=r"squeezenet1_1-.*\.pth") as exc:
        LPIPSDistance(net="squeeze")
    assert "https://download.pytorch.org/models/" in str(exc.value)
    with pytest.raises(LPIPSWeightsNotFound, match="weights_path"):
        LPIPSDistance(tmp_path / "nope.pth", net="squeeze")


def test_lpips_loads_local_backbone_weights(tmp_path):
    import torchvision

    backbone = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(backbone.state_dict(), path)
    lpips = LPIPSDistance(str(path), net="squeeze")
    features = dict(backbone.features.named_parameters())
    loaded = dict(lpips.lpips.net.named_parameters())
    assert loaded["slices.0.0.weight"].equal(features["0.weight"])
    assert loaded["slices.6.12.expand3x3.weight"].equal(features["12.expand3x3.weight"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    d = lpips(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    only_features = tmp_path / "features.pth"
    torch.save(backbone.features.state_dict(), only_features)
    assert torch.equal(LPIPSDistance(str(only_features), net="squeeze")(x, y), d)
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="state_dict"):
        LPIPSDistance(str(bad), net="squeeze")


@pytest.mark.parametrize("noise_format", ["float32", "bfloat16"])
def test_dcgan_with_classifier_features(noise_format):
    """End to end on the project's objects: a tiny DCGAN and the classifier's feature distance."""
    from core.noise import NoiseSpec
    from lightning_modules import NoiseDimGAN
    from lightning_modules.classifier import Classifier

    torch.manual_seed(0)
    noise = NoiseSpec(dim=8, format=noise_format)
    gan = NoiseDimGAN(noise=noise, resolution=8, channels=1, g_width=4, d_width=4).eval()
    classifier = Classifier(channels=1, resolution=8, width=4)
    ppl, values = perceptual_path_length(
        gan.generate,
        lambda n, g: gan.noise.sample(n, generator=g),
        FeatureDistance(classifier),
        num_samples=40,
        batch_size=20,
    )
    assert values.shape == (40,) and torch.isfinite(values).all() and (values > 0).all()
    assert 0 < ppl.item() < float("inf")


# ---------------------------------------------------------------------------------- face crop, distance labels
def test_face_crop_is_stylegans_index_arithmetic():
    img = torch.arange(128 * 128.0).reshape(1, 1, 128, 128)
    crop = face_crop(img)
    assert crop.shape == (1, 1, 64, 64)
    assert crop[0, 0, 0, 0] == 48 * 128 + 32 and crop[0, 0, -1, -1] == 111 * 128 + 95  # rows 48..111, cols 32..95
    odd = torch.arange(36 * 36.0).reshape(36, 36)  # c = 36 // 8 = 4 first: rows 12..27, columns 8..23
    assert torch.equal(face_crop(odd), odd[12:28, 8:24])
    assert face_crop(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="square"):
        face_crop(torch.zeros(1, 3, 64, 32))


def test_crop_measures_the_path_length_of_the_face_only():
    a = torch.randn(64 * 16, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    generate = lambda z: (z @ a.T).reshape(len(z), 1, 32, 32)  # noqa: E731
    rec = Recorder()
    ppl, values = perceptual_path_length(
        generate, rec, squared_l2, num_samples=20, batch_size=8, interpolation="lerp", crop=True, **KEEP_ALL
    )
    z1, z2 = rec.pairs()
    rows = a.reshape(32, 32, D)[12:28, 8:24].reshape(-1, D)  # the crop's pixels: rows 12..27, columns 8..23
    expected = ((z2 - z1) @ rows.T).pow(2).sum(1)  # the closed form of the linear generator, on the crop
    torch.testing.assert_close(values, expected, rtol=1e-6, atol=0)
    whole = perceptual_path_length(generate, Recorder(), squared_l2, num_samples=20, batch_size=8,
                                   interpolation="lerp", **KEEP_ALL)[1]  # fmt: skip
    assert bool((whole > values).all())


def test_every_distance_names_itself():
    class Extractor(torch.nn.Module):
        identity = "inception:abc123"

        def forward(self, x):
            return x.flatten(1)

    assert distance_label(FeatureDistance(Extractor())) == "inception-l2"
    assert distance_label(FeatureDistance(torch.nn.Flatten())) == "feature-l2"
    assert distance_label(squared_l2) == "pixel-l2"
    assert distance_label(lambda x, y: x) == "custom:<lambda>"


def test_generative_metrics_tags_ppl_with_its_distance_and_crops():
    from callbacks.generative_metrics import GenerativeMetrics, split_distance_tag

    m = GenerativeMetrics(num_samples=4, ppl_samples=8, precision_recall=False, feature_extractor="classifier")
    assert m.ppl_tag() == "metrics/ppl[classifier-l2]" and m.hparams_metrics()[-1] == m.ppl_tag()
    m.ppl_lpips_path = "vgg16-397923af.pth"
    assert m.ppl_tag() == "metrics/ppl[lpips-vgg]"
    assert split_distance_tag("metrics/ppl[lpips-vgg]") == ("metrics/ppl", "lpips-vgg")
    assert split_distance_tag("metrics/fid") == ("metrics/fid", None)
    assert GenerativeMetrics(num_samples=4, precision_recall=False, ppl_crop=True).ppl_crop
