"""A .ganz file decodes anywhere: the random layer is the project's Philox stream, the header says G or G_ema.

Format version 2 (lightning_modules/ganz/format.py) records the random layer's stream and the
network that wrote it; version-1 files (torch.randn's layer) still decode, with a warning.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
import torch
from ganz_fixtures import CHANNELS, D_T, N_FILTERS, RES, ganz_cli, generated_images, save_checkpoint, tiny_ganz
from PIL import Image

from lightning_modules.ganz.codec import (
    GanzCodec,
    GeneratorMismatchError,
    LegacyStreamWarning,
    generator_sha256,
    to_uint8,
)
from lightning_modules.ganz.format import (
    HEADER_SIZE,
    GanzFormatError,
    GanzHeader,
    dequantize,
    pack,
    read_ganz,
    unpack,
)
from lightning_modules.ganz.inversion import InversionConfig
from lightning_modules.ganz.latent import PHILOX, TORCH_RANDN, random_linear_weight

PIXELS = CHANNELS * RES * RES  # 256
FEATURES = N_FILTERS * 64  # 256
FAST = InversionConfig(steps=40, lr=0.05)
V1 = struct.Struct("<4sBBBBHHHIQff32s")  # the version-1 header, as its writer packed it


@pytest.fixture(scope="module")
def model():
    """A GANZ whose G and G_ema differ, so decoding with the wrong one gives other pixels."""
    m = tiny_ganz()
    with torch.no_grad():
        m.generator_ema.module.synthesis.body[-1].weight.mul_(0.8)
    return m


def _philox_weight_by_hand(d_c: int, rows: int, seed: int) -> np.ndarray:
    """The documented layer from NumPy's Philox4x64-10 words and Python's math (an independent path)."""
    words = np.random.Philox(key=seed, counter=2**256 - 1).random_raw(rows * d_c)
    values = []
    for w0, w1 in zip(words[0::2], words[1::2]):
        u, v = ((int(w0) >> 11) + 1) / 2**53, ((int(w1) >> 11) + 1) / 2**53
        r = math.sqrt(-2 * math.log(u))
        values += [r * math.cos(2 * math.pi * v), r * math.sin(2 * math.pi * v)]
    return (np.array(values) / math.sqrt(d_c)).astype(np.float32).reshape(rows, d_c)


def test_random_layer_is_the_projects_philox_stream():
    weight = random_linear_weight(12, 16, seed=77)
    assert weight.dtype == torch.float32 and weight.shape == (16, 12)
    assert np.array_equal(weight.numpy(), _philox_weight_by_hand(12, 16, 77))
    legacy = random_linear_weight(12, 16, seed=77, rng=TORCH_RANDN)
    expected = torch.randn(16, 12, generator=torch.Generator().manual_seed(77)) / math.sqrt(12)
    assert torch.allclose(legacy, expected, rtol=0, atol=1e-7) and not torch.allclose(legacy, weight)


def test_random_layer_does_not_touch_torch_random_numbers(monkeypatch):
    torch.manual_seed(1)
    first = random_linear_weight(40, 64, seed=3)
    torch.manual_seed(2)
    state = torch.get_rng_state()

    def refuse(*args, **kwargs):
        raise AssertionError("the Philox layer must not call torch.randn")

    monkeypatch.setattr(torch, "randn", refuse)
    second = random_linear_weight(40, 64, seed=3)
    assert torch.equal(first, second) and torch.equal(torch.get_rng_state(), state)


def test_version_2_header_records_the_stream_and_the_weights():
    header = GanzHeader("random_linear", "uint8", (3, 64, 64), 100, 2**64 - 5, bytes(range(32)), weights="G")
    data = pack(header, bytes(100))
    assert HEADER_SIZE == 68 and len(data) == 68 + 100 + 4
    assert data[4] == 2 and data[66] == 1 and data[67] == 0  # version, philox4x64-10, G
    back, _ = unpack(data)
    assert back == header and back.rng == PHILOX and back.weights == "G"
    assert unpack(pack(GanzHeader("no_linear", "float32", (1, 8, 8), 4, 0, bytes(32)), bytes(16)))[0].weights == "G_ema"
    for offset, value, message in ((66, 7, "stream code 7"), (67, 5, "weights code 5")):
        bad = bytearray(data[:-4])
        bad[offset] = value
        with pytest.raises(GanzFormatError, match=message):
            unpack(bytes(bad) + struct.pack("<I", zlib.crc32(bytes(bad))))


def _v1_file(mode_code: int, z: torch.Tensor, seed: int, digest: bytes) -> bytes:
    """A version-1 file exactly as the version-1 writer laid it out (float32 latent)."""
    body = V1.pack(b"GANZ", 1, mode_code, 0, 0, CHANNELS, RES, RES, z.numel(), seed, 1.0, 0.0, digest)
    body += z.numpy().astype("<f4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def test_version_1_files_decode_with_torch_randn_and_a_warning(model, recwarn):
    g = model.generator_ema.module
    codec = GanzCodec(g)
    d_c, seed = PIXELS // 8, 11
    z = torch.randn(d_c, generator=torch.Generator().manual_seed(5))
    data = _v1_file(3, z, seed, generator_sha256(g))  # random_linear(8)
    header, _ = unpack(data)
    assert header.version == 1 and header.rng == TORCH_RANDN and header.weights is None
    with pytest.warns(LegacyStreamWarning, match=r"torch version that wrote it \(torch 2\.14\.1"):
        image = codec.decompress(data, "old.ganz")
    layer = torch.randn(FEATURES, d_c, generator=torch.Generator().manual_seed(seed)) / math.sqrt(d_c)
    with torch.no_grad():
        expected = g.synthesis((z @ layer.T)[None])[0].clamp(-1, 1)
    assert torch.allclose(image, expected, atol=1e-5)
    # keep_linear has no random layer: no warning, and the network whose hash matches (here G) decodes it.
    z_t = torch.rand(D_T, generator=torch.Generator().manual_seed(6)) * 2 - 1
    old_g = _v1_file(0, z_t, 0, generator_sha256(model.generator))
    recwarn.clear()
    chosen = GanzCodec.for_file(unpack(old_g)[0], {"G": model.generator, "G_ema": g})
    assert chosen.weights == "G"
    with torch.no_grad():
        assert torch.equal(chosen.decompress(old_g), model.generator(z_t[None])[0].clamp(-1, 1))
    assert not [w for w in recwarn if issubclass(w.category, LegacyStreamWarning)]


def test_new_files_decode_the_same_whatever_torch_rng_state(model):
    x = generated_images(model, 1)
    item = GanzCodec(model.generator_ema.module).compress(x, "random_linear(4)", config=FAST, progress=False)[0]
    assert item.header.version == 2 and item.header.rng == PHILOX
    images = []
    for seed in (0, 12345):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        images.append(GanzCodec(model.generator_ema.module).decompress(item.data))  # a fresh codec each time
        assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], item.reconstruction)


@pytest.mark.parametrize("raw", [True, False])
def test_decompress_uses_the_network_the_file_names(model, tmp_path, raw):
    ckpt = save_checkpoint(model, tmp_path / "ganz.ckpt")
    png = tmp_path / "x.png"
    Image.fromarray(to_uint8(generated_images(model, 1)[0])).save(png)
    flags = ["--raw-generator"] if raw else []
    args = ["compress", str(png), "-o", str(tmp_path), "--ckpt", ckpt, "--quiet", "--steps", "20"]
    assert ganz_cli([*args, "--mode", "random_linear(8)", *flags]) == 0
    header, payload = read_ganz(str(tmp_path / "x.ganz"))
    written, other = ("G", "G_ema") if raw else ("G_ema", "G")
    assert header.weights == written
    # No flag at decompress: the file says which network, and decoding with the other is refused.
    assert ganz_cli(["decompress", "--ckpt", ckpt, str(tmp_path / "x.ganz"), "--output", str(tmp_path / "x.npy")]) == 0
    nets = {"G": model.generator, "G_ema": model.generator_ema.module}
    z = dequantize(payload, header)
    expected = GanzCodec(nets[written], weights=written).reconstruct(header, z)
    assert np.array_equal(np.load(tmp_path / "x.npy"), expected.numpy())
    assert not torch.equal(GanzCodec(nets[other], weights=other).reconstruct(header, z), expected)
    with pytest.raises(GeneratorMismatchError, match=f"written with another generator \\({written},"):
        GanzCodec(nets[other], weights=other).decompress((tmp_path / "x.ganz").read_bytes())
