"""``codec-rate`` (seed "noise dimension" Table 2): bit-exact round trips and exact byte counts."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from analysis.__main__ import main
from analysis.codec_rate import (
    CODECS,
    Codec,
    CodecError,
    available_codecs,
    check_image,
    measure_rate,
    resolve_codecs,
    roundtrip,
)
from analysis.data import load_uint8_images

FAST = ["png", "jpegls", "qoi"]  # sub-millisecond codecs, for the pool and CLI tests
PNG_FILTERS = (248, 8, 16, 32, 64, 128)
PNG_STRATEGIES = (0, 1, 2, 3, 4)


def _png_min(image: np.ndarray) -> int:
    """The smallest libpng stream at zlib level 9 over every filter and strategy (independent of CODECS)."""
    return min(
        len(imagecodecs.png_encode(image, level=9, filter=f, strategy=s)) for f in PNG_FILTERS for s in PNG_STRATEGIES
    )


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2)) if image.ndim == 2 else image


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """5 random 16x16 RGB images, a constant one, and a grey image in a nested subfolder."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"rand{i}.png")
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(root / "const.png")
    (root / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(root / "sub" / "grey.png")
    return root


def test_every_codec_round_trips_bit_exact_and_counts_the_stream():
    rng = np.random.default_rng(1)
    ramp = np.add.outer(np.arange(24), np.arange(20)).astype(np.uint8) * 5
    images = {
        "rgb": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
        "grey": rng.integers(0, 256, (9, 13), dtype=np.uint8),
        "smooth grey": ramp,
        "rgba": rng.integers(0, 256, (7, 5, 4), dtype=np.uint8),
        "constant": np.full((16, 16, 3), 200, np.uint8),
        "1x1": np.zeros((1, 1), np.uint8),
    }
    assert {"png", "webp", "jpegxl"} <= set(available_codecs())  # seed Table 2's three
    for name in available_codecs():
        codec = CODECS[name]
        decode = getattr(imagecodecs, codec.decoder)
        for label, image in images.items():
            data, _ = codec.encode(image)
            decoded = decode(data)  # imagecodecs' own decoder, not the Codec wrapper
            expected = _as_rgb(image) if codec.grey_as_rgb else image
            assert decoded.shape == expected.shape and np.array_equal(decoded, expected), (name, label)
            assert roundtrip(codec, label, image)[0] == len(data), (name, label)
            if not codec.grey_as_rgb and image.ndim == 2:
                assert decoded.ndim == 2, f"{name} must keep grey {label} as one channel"


def test_qoi_sizes_follow_the_format():
    # QOI: 14-byte header + ops + 8-byte end marker.  A constant (7, 7, 7) 16x16 image: the
    # first pixel differs from the implicit (0, 0, 0) by 7 per channel -> one 2-byte LUMA op;
    # the other 255 pixels are runs of at most 62 -> 5 one-byte RUN ops.  14 + 2 + 5 + 8 = 29.
    qoi = CODECS["qoi"]
    assert roundtrip(qoi, "c", np.full((16, 16, 3), 7, np.uint8)) == (29, 0)
    assert roundtrip(qoi, "g", np.full((16, 16), 7, np.uint8)) == (29, 0)  # grey given as RGB
    # One black pixel repeats the implicit previous pixel: a single RUN op.  14 + 1 + 8 = 23.
    assert roundtrip(qoi, "1", np.zeros((1, 1, 3), np.uint8)) == (23, 0)


def test_rate_equals_direct_encoder_calls_with_the_stated_settings(folder):
    images = load_uint8_images(str(folder))
    assert [n for n, _ in images] == ["const.png"] + [f"rand{i}.png" for i in range(5)] + ["sub/grey.png"]
    result = measure_rate(images, ["png", "webp", "jpegxl"], workers=1)
    arrays = [a for _, a in images]
    expected = {
        "png": [_png_min(a) for a in arrays],
        "webp": [len(imagecodecs.webp_encode(_as_rgb(a), level=100, lossless=True, method=6)) for a in arrays],
        "jpegxl": [len(imagecodecs.jpegxl_encode(a, lossless=True, distance=0, effort=10)) for a in arrays],
    }
    pixels = 6 * 16 * 16 + 12 * 10
    assert (result.images, result.pixels, result.raw_bytes) == (7, pixels, 6 * 16 * 16 * 3 + 12 * 10)
    assert result.shapes == {"16x16x3": 6, "12x10": 1}
    for name, sizes in expected.items():
        sums = result.totals[name]
        assert sums.bytes == sum(sizes), name
        assert (sums.min_bytes, sums.max_bytes) == (min(sizes), max(sizes)), name
        assert sums.bytes_per_image == pytest.approx(sum(sizes) / 7, rel=1e-15)
        assert sums.bits_per_pixel == pytest.approx(8 * sum(sizes) / pixels, rel=1e-15)
        assert sum(sums.variant_wins.values()) == 7
    assert result.best == min(expected, key=lambda n: sum(expected[n]))


def test_pool_gives_the_in_process_totals(folder):
    images = load_uint8_images(str(folder))
    one = measure_rate(images, FAST, workers=1)
    # chunks of 2 images: 4 chunks over 2 worker processes
    two = measure_rate(images, FAST, workers=2, chunk_images=2)
    assert {n: dataclasses.astuple(t) for n, t in one.totals.items()} == {n: dataclasses.astuple(t) for n, t in two.totals.items()}


class _BitFlip(Codec):
    """A codec whose decoder flips the lowest bit of the first value."""

    def decode(self, data: bytes) -> np.ndarray:
        out = super().decode(data).copy()
        out.flat[0] ^= 1
        return out


@pytest.fixture
def broken_codec(monkeypatch):
    fields = {f.name: getattr(CODECS["qoi"], f.name) for f in dataclasses.fields(Codec)}
    monkeypatch.setitem(CODECS, "broken", _BitFlip(**{**fields, "name": "broken", "title": "Broken"}))
    return "broken"


def test_a_mismatch_names_the_image_and_the_codec(folder, broken_codec, capsys):
    with pytest.raises(CodecError, match=r"image const\.png: Broken round trip is not bit-exact: 1 of 768 values differ"):
        measure_rate(load_uint8_images(str(folder)), [broken_codec])
    for workers in ("1", "2"):  # in-process and from a worker process (fork inherits the patch)
        assert main(["codec-rate", "--data", str(folder), "--codecs", broken_codec, "--workers", workers]) == 2
        err = capsys.readouterr().err
        assert "error: image const.png: Broken round trip is not bit-exact" in err and "Traceback" not in err


def test_check_image_rejects_other_types():
    with pytest.raises(CodecError, match="x.tif: uint16 pixels"):
        check_image("x.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(CodecError, match=r"y: shape \(4, 4, 2\)"):
        check_image("y", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="unknown codec 'gif'"):
        resolve_codecs(["png", "gif"])
    assert resolve_codecs(["QOI", "png", "png"]) == ["png", "qoi"]  # table order, no repeats


def test_cli_writes_settings_and_exact_bytes(folder, tmp_path, capsys):
    out = tmp_path / "rate.json"
    assert main(["codec-rate", "--data", str(folder), "--codecs", "png", "jpegxl", "qoi", "--workers", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "7 images of 16x16x3 (6), 12x10 (1)" in stdout
    assert "effort 10" in stdout and "zlib level 9" in stdout
    payload = json.loads(out.read_text())
    arrays = [a for _, a in load_uint8_images(str(folder))]
    jxl = [len(imagecodecs.jpegxl_encode(a, lossless=True, distance=0, effort=10)) for a in arrays]
    assert payload["codecs"]["jpegxl"]["total_bytes"] == sum(jxl)
    assert payload["codecs"]["jpegxl"]["variants"] == [{"lossless": True, "distance": 0.0, "effort": 10, "numthreads": 1}]
    assert payload["codecs"]["png"]["total_bytes"] == sum(_png_min(a) for a in arrays)
    assert len(payload["codecs"]["png"]["variants"]) == 30
    assert payload["codecs"]["qoi"]["min_bytes"] == 29  # the constant image, as in the closed form above
    assert payload["images"] == 7 and payload["best_codec"] in ("png", "jpegxl")
    assert [r["codec"] for r in payload["rows"]] == ["PNG", "JPEG-XL", "QOI"]

    out_csv = tmp_path / "rate.csv"
    assert main(["codec-rate", "--data", str(folder), "--codecs", "qoi", "--workers", "1", "--out", str(out_csv)]) == 0
    with open(out_csv) as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["bytes_per_image"]) == pytest.approx(payload["codecs"]["qoi"]["bytes_per_image"])


def test_cli_digits_datamodule(tmp_path, capsys):
    out = tmp_path / "digits.json"
    argv = ["codec-rate", "--data", "DigitsDataModule", "--data-args", '{"resolution": 8}', "--limit", "20", "--out", str(out)]
    assert main(argv + ["--workers", "1"]) == 0
    payload = json.loads(out.read_text())
    assert (payload["images"], payload["pixels"], payload["raw_bytes"]) == (20, 1280, 1280)  # grey: one channel
    assert payload["shapes"] == {"8x8": 20}
    assert set(payload["codecs"]) == set(available_codecs())
    arrays = [a for _, a in load_uint8_images("DigitsDataModule", limit=20, data_args='{"resolution": 8}')]
    assert payload["codecs"]["png"]["total_bytes"] == sum(_png_min(a) for a in arrays)
    webp = [len(imagecodecs.webp_encode(_as_rgb(a), level=100, lossless=True, method=6)) for a in arrays]
    assert payload["codecs"]["webp"]["total_bytes"] == sum(webp)
    for record in payload["codecs"].values():
        assert record["bits_per_pixel"] == pytest.approx(8 * record["total_bytes"] / 1280)
    assert "smallest:" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, folder, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(corrupt / "a_good.png")
    (corrupt / "b_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    cases = [
        (["--data", str(empty)], f"error: --data {empty}: the folder holds no images"),
        (["--data", str(corrupt), "--workers", "1"], f"error: cannot read image {corrupt / 'b_bad.png'}"),
        (["--data", str(corrupt), "--workers", "2"], f"error: cannot read image {corrupt / 'b_bad.png'}"),
        (["--data", str(folder), "--codecs", "gif"], "error: --codecs: unknown codec 'gif'"),
        (["--data", str(folder), "--workers", "0"], "error: --workers must be >= 1, got 0"),
        (["--data", str(folder), "--limit", "0"], "error: --limit must be >= 1, got 0"),
    ]
    for argv, message in cases:
        assert main(["codec-rate", "--codecs", "qoi", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
