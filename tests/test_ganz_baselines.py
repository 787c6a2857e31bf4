"""GANZ's baselines at equal size: the paper's wavelet baseline and standard codecs at a byte budget."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import pywt

from lightning_modules.ganz import compression_baselines as cb


def _coefficients(channel: np.ndarray) -> np.ndarray:
    array, _ = pywt.coeffs_to_array(pywt.wavedec2(channel, "db4", mode="periodization"))
    return array


def test_wavelet_baseline_keeps_exactly_the_stated_number_per_channel():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, size=(3, 32, 32))
    for keep in (1, 37, 341):
        rec, kept = cb.wavelet_compress(image, keep)
        assert kept == [keep] * 3
        for channel in rec:
            # The periodised db4 transform is orthogonal: the reconstruction's coefficients are the kept ones.
            assert np.count_nonzero(np.abs(_coefficients(channel)) > 1e-9) == keep
    # The kept ones are the largest: no other choice of 37 coefficients has a smaller error.
    rec, _ = cb.wavelet_compress(image, 37)
    coeffs = np.abs(_coefficients(image[0])).ravel()
    tail = np.sort(coeffs)[::-1][37:]
    assert np.sum((rec[0] - image[0]) ** 2) == pytest.approx(np.sum(tail**2), rel=1e-9)
    full, _ = cb.wavelet_compress(image, 32 * 32)
    assert np.allclose(full, image, atol=1e-10)


def test_wavelet_degrees_of_freedom_and_bytes():
    assert cb.wavelet_keep_for(8192, 3) == 2731  # M/3 per colour channel (Sec. 3.4)
    assert cb.wavelet_keep_for(64, 1) == 64
    assert cb.wavelet_bytes(10, 1, 32, 32) == 10 * (32 + 10) // 8 + 1  # float32 + a 10-bit position each
    assert cb.wavelet_bytes(2731, 3, 128, 128) == (3 * 2731 * (32 + 14) + 7) // 8


@pytest.mark.parametrize("codec", cb.available_codecs())
@pytest.mark.parametrize("channels", [1, 3])
def test_codecs_meet_the_byte_budget(codec, channels):
    yy, xx = np.mgrid[0:32, 0:32]
    image = (127 + 100 * np.sin(xx / 4.0) * np.cos(yy / 5.0)).astype(np.uint8)
    if channels == 3:
        image = np.stack([image, image[::-1], image.T], axis=2)
    loose = cb.codec_at_budget(image, codec, 4000)
    assert not loose.over_budget and loose.num_bytes <= 4000 and loose.decoded.shape == image.shape
    err = np.abs(loose.decoded.astype(int) - image.astype(int)).mean()
    assert err < 6  # a generous budget gives a close image
    budget = (loose.num_bytes + len(cb._codecs()[codec].encode(image, 0))) // 2
    mid = cb.codec_at_budget(image, codec, budget)
    assert not mid.over_budget and mid.num_bytes <= budget and mid.quality < 100
    assert len(cb._codecs()[codec].encode(image, mid.quality + 1)) > budget  # the highest level that fits
    tight = cb.codec_at_budget(image, codec, 10)  # below any codec's headers
    assert tight.over_budget and tight.num_bytes > 10


def test_missing_codecs_are_logged_not_errors(monkeypatch, caplog):
    table = cb._codecs()
    entry = table["avif"]
    table["avif"] = cb._Codec(entry.title, "NO_SUCH_MODULE", entry.encode, entry.decode)
    monkeypatch.setattr(cb, "_codecs", lambda: table)
    with caplog.at_level(logging.WARNING):
        found = cb.available_codecs()
    assert "avif" not in found and "jpeg" in found
    assert "AVIF" in caplog.text and "left out" in caplog.text
    with pytest.raises(ValueError, match="unknown codec"):
        cb.available_codecs(("gif",))
