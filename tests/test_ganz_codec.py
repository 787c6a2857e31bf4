"""GANZ as a codec: the ratio trick's layers, Eq. 1, the .ganz format, and the command line."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ganz_fixtures import CHANNELS, D_T, N_FILTERS, RES, ganz_cli, generated_images, save_checkpoint, tiny_ganz
from PIL import Image

from lightning_modules.ganz.codec import GanzCodec, GeneratorMismatchError, generator_sha256, to_uint8
from lightning_modules.ganz.format import (
    HEADER_SIZE,
    GanzFormatError,
    GanzHeader,
    dequantize,
    pack,
    quantize,
    read_ganz,
    unpack,
)
from lightning_modules.ganz.inversion import InversionConfig, invert
from lightning_modules.ganz.latent import LatentGenerator, LatentMode, random_linear_weight
from lightning_modules.reconstruction import psnr

ROOT = Path(__file__).resolve().parents[1]
PIXELS = CHANNELS * RES * RES  # 256
FEATURES = N_FILTERS * 64  # 256
FAST = InversionConfig(steps=60, lr=0.05)


@pytest.fixture(scope="module")
def model():
    return tiny_ganz()


@pytest.fixture(scope="module")
def codec(model):
    return GanzCodec(model.generator_ema.module)


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(model, tmp_path_factory.mktemp("ganz") / "ganz.ckpt")


# ---------------------------------------------------------------------------------------------- latent modes
def test_modes_parse_and_set_d_c():
    shape = (3, 128, 128)
    assert LatentMode.parse("keep_linear").latent_dim(shape, 64, 8192) == 64
    assert LatentMode.parse("no_linear").latent_dim(shape, 64, 8192) == 8192  # ratio 6 (Fig. 3)
    assert LatentMode.parse("square_linear").latent_dim(shape, 64, 8192) == 8192
    assert LatentMode.parse("random_linear(10)").latent_dim(shape, 64, 8192) == 4915  # Fig. 2: ratio 10
    assert LatentMode.parse("random_linear:768").latent_dim(shape, 64, 8192) == 64
    assert str(LatentMode.parse(" random_linear( 6 )")) == "random_linear(6)"
    for bad in ("random_linear", "linear", "random_linear(0)", "keep_linear(3)"):
        with pytest.raises(ValueError):
            LatentMode.parse(bad)


def test_latent_generator_keep_linear_is_g_and_leaves_g_trainable(model):
    g = model.generator
    net = LatentGenerator(g, LatentMode("keep_linear"), (CHANNELS, RES, RES))
    z = torch.rand(3, D_T) * 2 - 1
    assert torch.equal(net(z), g(z))
    assert all(p.requires_grad for p in g.parameters())  # the copies are frozen, not G
    assert not any(p.requires_grad for p in net.parameters())
    no_linear = LatentGenerator(g, LatentMode("no_linear"), (CHANNELS, RES, RES))
    h = torch.randn(2, FEATURES)
    assert no_linear.d_c == FEATURES and torch.equal(no_linear(h), g.synthesis(h))
    square = LatentGenerator(g, LatentMode("square_linear"), (CHANNELS, RES, RES), seed=5)
    assert square.weight.shape == (FEATURES, FEATURES)
    ratio = LatentGenerator(g, LatentMode("random_linear", 8.0), (CHANNELS, RES, RES), seed=5)
    assert ratio.d_c == PIXELS // 8 and ratio.weight.shape == (FEATURES, PIXELS // 8)
    assert torch.equal(ratio.weight, random_linear_weight(PIXELS // 8, FEATURES, 5))


# latent.py needs only torch, NumPy and core: loaded on its own, the subprocess starts in about a second.
_WEIGHT_SCRIPT = (
    "import hashlib, importlib.util, sys, torch\n"
    "torch.manual_seed(12345); torch.rand(7)\n"  # a different global RNG state
    "spec = importlib.util.spec_from_file_location('latent', sys.argv[1])\n"
    "latent = sys.modules['latent'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(latent)\n"
    "print(hashlib.sha256(latent.random_linear_weight(300, 1024, 42).numpy().tobytes()).hexdigest())\n"
)


def test_random_linear_layer_is_identical_across_processes():
    torch.manual_seed(0)
    here = hashlib.sha256(random_linear_weight(300, 1024, 42).numpy().tobytes()).hexdigest()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _WEIGHT_SCRIPT, str(ROOT / "lightning_modules" / "ganz" / "latent.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == here
    w = random_linear_weight(300, 1024, 42)
    assert w.dtype == torch.float32 and w.device.type == "cpu"
    assert not torch.equal(w, random_linear_weight(300, 1024, 43))
    assert abs(float(w.pow(2).sum(1).mean()) - 1.0) < 0.1  # rows of unit norm on average: unit-variance features


# ---------------------------------------------------------------------------------------------- Eq. 1
def test_inversion_recovers_a_generated_image_and_restarts_keep_the_best(model):
    net = LatentGenerator(model.generator, LatentMode("keep_linear"), (CHANNELS, RES, RES))
    x = generated_images(model, 4)
    one = InversionConfig(steps=150, lr=0.05, restarts=1, seed=3)
    three = InversionConfig(steps=150, lr=0.05, restarts=3, seed=3)
    z1, e1 = invert(net, x, D_T, one, progress=False)
    z3, e3 = invert(net, x, D_T, three, progress=False)
    assert torch.all(e3 <= e1)  # restart 0 is the same run, so the best of three is never worse
    with torch.no_grad():
        assert float(psnr(net(z3), x).min()) > 60.0
        wrong = generated_images(model, 4, seed=99)
    assert float(psnr(wrong, x).max()) < 35.0  # a different latent is far off: the PSNR above means something


def test_inversion_is_per_image_in_a_batch(model):
    net = LatentGenerator(model.generator, LatentMode("random_linear", 4.0), (CHANNELS, RES, RES))
    x = generated_images(model, 3)
    config = InversionConfig(steps=30, lr=0.05, init="zeros")
    z_batch, _ = invert(net, x, net.d_c, config, progress=False)
    z_alone, _ = invert(net, x[1:2], net.d_c, config, progress=False)
    assert torch.allclose(z_batch[1:2], z_alone, atol=1e-4)


# ---------------------------------------------------------------------------------------------- the format
@pytest.mark.parametrize("mode", ["keep_linear", "no_linear", "square_linear", "random_linear"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_header_round_trip(mode, dtype):
    header = GanzHeader(
        mode=mode,
        dtype=dtype,
        image_shape=(3, 128, 96),
        d_c=37,
        seed=2**63 + 11,
        generator_hash=hashlib.sha256(b"g").digest(),
        scale=0.0078125,
        offset=-1.5,
    )
    payload = bytes(range(header.payload_size % 256)) * (header.payload_size // 256) + bytes(
        header.payload_size % 256
    )
    data = pack(header, payload)
    assert len(data) == header.file_size == HEADER_SIZE + 37 * {"float32": 4, "float16": 2, "uint8": 1}[dtype] + 4
    back, back_payload = unpack(data)
    assert back == header and back_payload == payload


def test_quantisation_error_is_bounded():
    z = torch.randn(500) * 3
    payload, scale, offset = quantize(z, "uint8")
    header = GanzHeader("keep_linear", "uint8", (1, 8, 8), 500, 0, bytes(32), scale, offset)
    back = dequantize(payload, header)
    assert len(payload) == 500
    assert float((back - z).abs().max()) <= scale / 2 + 1e-5
    assert float(back.min()) == pytest.approx(float(z.min()), abs=1e-6)
    half, _, _ = quantize(z, "float16")
    back16 = dequantize(half, GanzHeader("keep_linear", "float16", (1, 8, 8), 500, 0, bytes(32)))
    assert torch.equal(back16, z.half().float())


# ---------------------------------------------------------------------------------------------- the codec
@pytest.mark.parametrize(
    "mode, dtype", [("keep_linear", "float32"), ("random_linear(4)", "uint8"), ("square_linear", "float16")]
)
def test_decompress_of_compress_is_bit_exact(model, codec, mode, dtype):
    x = generated_images(model, 3)
    compressed = codec.compress(x, mode, dtype, seed=7, config=FAST, progress=False)
    fresh = GanzCodec(model.generator_ema.module)  # another codec: the random layer is rebuilt from the seed
    for item in compressed:
        assert item.header.seed == 7 and item.header.generator_hash == codec.generator_hash
        assert torch.equal(fresh.decompress(item.data), item.reconstruction)
        assert item.num_bytes == item.header.file_size
    # The stored latent reproduces the optimisation's image up to its quantisation only.
    assert float(psnr(torch.stack([c.reconstruction for c in compressed]), x).min()) > 20.0


def test_generator_hash_names_the_weights(model):
    g = model.generator_ema.module
    assert generator_sha256(g) == generator_sha256(tiny_ganz().generator_ema.module)
    other = tiny_ganz(seed=1).generator_ema.module
    assert generator_sha256(other) != generator_sha256(g)


def test_bad_files_are_named_errors(model, codec):
    data = codec.compress(generated_images(model, 1), "keep_linear", config=FAST, progress=False)[0].data
    with pytest.raises(GanzFormatError, match=r"x\.ganz: truncated"):
        unpack(data[:-1], "x.ganz")
    with pytest.raises(GanzFormatError, match="truncated"):
        unpack(data[:20], "x.ganz")
    flipped = bytearray(data)
    flipped[HEADER_SIZE + 2] ^= 0x10
    with pytest.raises(GanzFormatError, match="CRC32"):
        unpack(bytes(flipped), "x.ganz")
    with pytest.raises(GanzFormatError, match="not a .ganz file"):
        unpack(b"PNG!" + data[4:], "x.ganz")
    with pytest.raises(GanzFormatError, match="unsupported .ganz format version 9"):
        unpack(data[:4] + bytes([9]) + data[5:], "x.ganz")
    with pytest.raises(GanzFormatError, match="trailing"):
        unpack(data + b"\0", "x.ganz")
    with pytest.raises(GeneratorMismatchError, match="another generator"):
        GanzCodec(tiny_ganz(seed=1).generator_ema.module).decompress(data, "x.ganz")


# ---------------------------------------------------------------------------------------------- command line
def _png(path: Path, image: torch.Tensor) -> str:
    Image.fromarray(to_uint8(image)).save(path)
    return str(path)


def test_cli_compress_then_decompress_reproduces_the_codec(model, checkpoint, tmp_path, capsys):
    x = generated_images(model, 2)
    files = [_png(tmp_path / f"img{i}.png", x[i]) for i in range(2)]
    out = tmp_path / "out"
    args = ["--ckpt", checkpoint, "--quiet", "--steps", "40", "--mode", "random_linear(8)", "--dtype", "uint8"]
    assert ganz_cli(["compress", *files, "-o", str(out), *args]) == 0
    text = capsys.readouterr().out
    size = HEADER_SIZE + PIXELS // 8 + 4
    assert f"{size}" in text and "psnr" in text and "bpp" in text
    ganz_file = out / "img0.ganz"
    assert ganz_file.stat().st_size == size
    npy = tmp_path / "img0.npy"
    assert ganz_cli(["decompress", "--ckpt", checkpoint, str(ganz_file), "--output", str(npy)]) == 0
    header, payload = read_ganz(str(ganz_file))
    expected = GanzCodec.from_checkpoint(checkpoint).reconstruct(header, dequantize(payload, header))
    assert np.array_equal(np.load(npy), expected.numpy())  # bit for bit
    assert ganz_cli(["decompress", "--ckpt", checkpoint, str(ganz_file), "-o", str(tmp_path / "png")]) == 0
    png = np.asarray(Image.open(tmp_path / "png" / "img0.png"))
    assert np.array_equal(png, to_uint8(expected))


def test_cli_refuses_bad_files_and_writes_nothing(model, checkpoint, tmp_path, capsys):
    good = tmp_path / "good.ganz"
    data = GanzCodec.from_checkpoint(checkpoint).compress(generated_images(model, 1), config=FAST, progress=False)[0]
    good.write_bytes(data.data)
    flipped = data.data[:HEADER_SIZE] + bytes([data.data[HEADER_SIZE] ^ 1]) + data.data[HEADER_SIZE + 1 :]
    cases = {
        "truncated.ganz": (data.data[:-3], "truncated"),
        "corrupt.ganz": (flipped, "CRC32"),
        "magic.ganz": (b"JUNK" + data.data[4:], "not a .ganz file"),
        "version.ganz": (data.data[:4] + struct.pack("<B", 3) + data.data[5:], "unsupported .ganz format version 3"),
    }
    other_ckpt = save_checkpoint(tiny_ganz(seed=1), tmp_path / "other.ckpt")
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
    out = tmp_path / "out"
    for name, (_, message) in cases.items():
        assert ganz_cli(["decompress", "--ckpt", checkpoint, str(tmp_path / name), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and name in err and message in err
    assert ganz_cli(["decompress", "--ckpt", other_ckpt, str(good), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "good.ganz" in err and "another generator" in err
    assert not (tmp_path / "x.png").exists()
    assert not out.exists() or not os.listdir(out)  # no output, no temporary file left behind
