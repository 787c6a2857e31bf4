"""Image2StyleGAN's perceptual loss (VGG-16 conv1_1, conv1_2, conv3_2, conv4_2) from a local weights file."""

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from evaluation.inversion import VGG16Perceptual, perceptual_distance


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    features = make_layers(cfgs["D"])
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    # torchvision's file holds the whole model; the classifier part is ignored.
    torch.save({**{f"features.{k}": v for k, v in features.state_dict().items()},
                "classifier.0.weight": torch.zeros(2, 2)}, path)  # fmt: skip
    return path, features


def test_sum_of_four_layer_mses_as_image2stylegan(weights):
    path, features = weights
    loss = VGG16Perceptual(str(path))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)

    def acts(img):  # the reference: torchvision's layers, ReLU outputs after conv1_1, conv1_2, conv3_2, conv4_2
        h, out = ((img + 1) / 2 - mean) / std, []
        for i, layer in enumerate(features.eval()):
            h = layer(h)
            if i in (1, 3, 13, 20):
                out.append(h)
            if i == 20:
                return out

    expected = sum(((a - b) ** 2).flatten(1).mean(1) for a, b in zip(acts(x), acts(y)))
    with torch.no_grad():
        torch.testing.assert_close(loss(x, y), expected, rtol=1e-5, atol=1e-7)
        assert torch.equal(loss(x, x), torch.zeros(2))
        grey = x[:, :1]
        grey_y = y[:, :1]
        torch.testing.assert_close(loss(grey, grey_y), loss(grey.expand(-1, 3, -1, -1), grey_y.expand(-1, 3, -1, -1)))
    x.requires_grad_(True)
    loss(x, y).sum().backward()  # differentiable in the reconstruction, frozen itself
    assert x.grad is not None and all(p.grad is None for p in loss.parameters())


def test_perceptual_distance_prefers_the_given_vgg16_and_names_it(weights, tmp_path):
    path, _ = weights
    distance, name = perceptual_distance("auto", vgg16_path=str(path))
    assert isinstance(distance, VGG16Perceptual) and name == "vgg16-image2stylegan"
    only_features = tmp_path / "features.pth"
    state = torch.load(path)
    torch.save({k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}, only_features)
    assert isinstance(perceptual_distance("vgg16", vgg16_path=str(only_features))[0], VGG16Perceptual)
    with pytest.raises(ValueError, match="--vgg16-path"):
        perceptual_distance("vgg16")
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        VGG16Perceptual(str(tmp_path / "missing.pth"))
    assert perceptual_distance("none") == (None, "none")
