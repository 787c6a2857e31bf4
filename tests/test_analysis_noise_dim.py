"""``noise-dim``: Theorem 4.2 (Eq. 9-10) and the seed paper's Table 3 rebuilt from Table 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from analysis.__main__ import main
from analysis.noise_dim import (
    PAPER_TABLE_1,
    PAPER_TABLE_2,
    PAPER_TABLE_3,
    TABLE3_RULES,
    ceil_consistent_bits,
    ceil_consistent_entropy,
    format_entropy,
    noise_dim_bound,
    table3_candidates,
)
from core.float_entropy import entropy_bits

CELLS = [(d, f) for d in PAPER_TABLE_3 for f in PAPER_TABLE_3[d]]


def test_bounds_closed_form():
    bound = noise_dim_bound(11.0, 0.5)  # (11 - 1) / 0.5 = 20, (11 + 2) / 0.5 = 26
    assert (bound.lower, bound.upper, bound.n_min, bound.n_max_bijective) == (20.0, 26.0, 20, 26)
    bound = noise_dim_bound(8 * 1576, 26.55)
    assert bound.upper - bound.lower == pytest.approx(3 / 26.55, rel=1e-9)
    assert bound.lower == pytest.approx(12607 / 26.55, rel=1e-15)
    with pytest.raises(ValueError, match="bits per image must be a positive finite number"):
        noise_dim_bound(-1.0, 26.55)


def test_table3_from_table2_bytes():
    """ceil((8 B - 1) / H) with Table 1's H rebuilds five of Table 3's six cells exactly."""
    got = {(d, f): noise_dim_bound(8 * PAPER_TABLE_2[d]["jpegxl"], PAPER_TABLE_1[f]).n_min for d, f in CELLS}
    expected = {cell: PAPER_TABLE_3[cell[0]][cell[1]] for cell in CELLS}
    assert {c: got[c] - expected[c] for c in CELLS if got[c] != expected[c]} == {("LSUN-Church", "float32"): -1}
    assert got[("CIFAR10", "float32")] == 475  # the paper's headline number (Sec. 5.2)
    # (8 * 62940 - 1) / 26.55 = 18964.934: ceil and round both give 18965, the paper prints 18966.
    assert (8 * 62940 - 1) / 26.55 == pytest.approx(18964.934087, abs=1e-6)


def test_no_candidate_rule_rebuilds_all_six_cells():
    matched = {
        rule: sum(values[c] == PAPER_TABLE_3[c[0]][c[1]] for c in CELLS) for rule, values in table3_candidates().items()
    }
    assert set(matched) == set(TABLE3_RULES)
    assert matched == {
        "ceil((8B - 1) / H)": 5,
        "round((8B - 1) / H)": 5,
        "ceil(8B / H)": 5,
        "round(8B / H)": 5,
        "floor((8B + 2) / H)": 2,
        "ceil((8B + 2) / H)": 4,
        "round((8B + 2) / H)": 5,
    }


def test_an_unrounded_fp32_entropy_explains_the_odd_cell():
    fp32 = ceil_consistent_entropy([(8.0 * PAPER_TABLE_2[d]["jpegxl"], PAPER_TABLE_3[d]["float32"]) for d in PAPER_TABLE_3])
    assert fp32 is not None
    lo, hi = fp32
    assert lo == pytest.approx((8 * 62940 - 1) / 18966, rel=1e-15) and hi == pytest.approx((8 * 62940 - 1) / 18965, rel=1e-15)
    assert 26.545 <= lo < hi < 26.55  # prints as 26.55, but 26.55 itself is outside
    h = (lo + hi) / 2
    assert [math.ceil((8 * PAPER_TABLE_2[d]["jpegxl"] - 1) / h) for d in PAPER_TABLE_3] == [475, 18966]
    for fmt in ("float16", "float64"):  # the printed FP16 and FP64 values fit both datasets as they are
        interval = ceil_consistent_entropy([(8.0 * PAPER_TABLE_2[d]["jpegxl"], PAPER_TABLE_3[d][fmt]) for d in PAPER_TABLE_3])
        assert interval is not None and interval[0] <= PAPER_TABLE_1[fmt] < interval[1]
    # With the printed H, FP16 needs LSUN-Church's bits <= 44324 * 11.36 + 1 and FP32 needs more than
    # 18965 * 26.55 + 1: no byte count serves both.
    lsun = [(PAPER_TABLE_1[f], n) for f, n in PAPER_TABLE_3["LSUN-Church"].items()]
    assert ceil_consistent_bits(lsun) is None
    assert 44324 * 11.36 + 1 < 18965 * 26.55 + 1
    cifar = ceil_consistent_bits([(PAPER_TABLE_1[f], n) for f, n in PAPER_TABLE_3["CIFAR10"].items()])
    assert cifar is not None and cifar[0] < 8 * 1576 <= cifar[1]


def test_format_entropy_sources():
    assert format_entropy("fp32", "paper") == 26.55
    assert format_entropy("float32") == entropy_bits("float32")
    # exact H: (8 * 1576 - 1) / 26.4637 = 476.39 -> 477 (the paper's 26.55 gives 475)
    assert noise_dim_bound(8 * 1576, format_entropy("float32")).n_min == 477
    with pytest.raises(ValueError, match="Table 1 has no bfloat16"):
        format_entropy("bfloat16", "paper")
    with pytest.raises(ValueError, match="Gaussian noise only"):
        format_entropy("float32", "paper", "uniform")


def test_cli_rebuilds_table3(tmp_path, capsys):
    out = tmp_path / "table3.json"
    assert main(["noise-dim", "--paper-table2", "--entropy", "paper", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "ceil((8B - 1) / H)   5  (off: LSUN-Church float32 18965 vs 18966)" in stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["data"], r["format"], r["n_min"], r["paper_table3"]) for r in rows] == [
        ("CIFAR10", "float16", 1110, 1110),
        ("CIFAR10", "float32", 475, 475),
        ("CIFAR10", "float64", 227, 227),
        ("LSUN-Church", "float16", 44324, 44324),
        ("LSUN-Church", "float32", 18965, 18966),
        ("LSUN-Church", "float64", 9063, 9063),
    ]
    assert [r["bits_per_image"] for r in rows[::3]] == [8 * 1576, 8 * 62940]
    assert all(r["upper_eq10"] - r["lower_eq9"] == pytest.approx(3 / r["H"]) for r in rows)

    assert main(["noise-dim", "--paper-table2", "--codec", "PNG", "--formats", "fp32", "--entropy", "paper", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["codec"], r["n_min"], r["paper_table3"]) for r in rows] == [
        ("PNG", math.ceil((8 * 2271 - 1) / 26.55), None),  # 685
        ("PNG", math.ceil((8 * 103897 - 1) / 26.55), None),  # 31307
    ]


def test_cli_given_rates(tmp_path):
    out = tmp_path / "n.json"
    assert main(["noise-dim", "--bytes-per-image", "1576", "--formats", "fp32", "--entropy", "paper", "--out", str(out)]) == 0
    assert [r["n_min"] for r in json.loads(out.read_text())["rows"]] == [475]
    assert main(["noise-dim", "--bits-per-image", "11", "--formats", "float16", "bfloat16", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["format"] for r in rows] == ["float16", "bfloat16"]
    assert [r["lower_eq9"] for r in rows] == pytest.approx([10 / entropy_bits("float16"), 10 / entropy_bits("bfloat16")])


def test_cli_reads_codec_rate_json(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(images / f"{i}.png")
    rate, out = tmp_path / "rate.json", tmp_path / "n.json"
    assert main(["codec-rate", "--data", str(images), "--codecs", "png", "qoi", "--workers", "1", "--out", str(rate)]) == 0
    codecs = json.loads(rate.read_text())["codecs"]
    best = min(codecs, key=lambda k: codecs[k]["total_bytes"])
    for extra, name in ([], best), (["--codec", "QOI"], "qoi"):
        assert main(["noise-dim", "--rate-json", str(rate), *extra, "--formats", "fp32", "--out", str(out)]) == 0
        (row,) = json.loads(out.read_text())["rows"]
        bits = 8 * codecs[name]["total_bytes"] / 3
        assert row["bits_per_image"] == pytest.approx(bits, rel=1e-15)
        assert row["n_min"] == math.ceil((bits - 1) / entropy_bits("float32"))
    capsys.readouterr()


def test_cli_bad_input(tmp_path, capsys):
    not_json = tmp_path / "x.json"
    not_json.write_text("{ nope")
    other_json = tmp_path / "y.json"
    other_json.write_text('{"rows": []}')
    cases = [
        (["--bits-per-image", "-3"], "error: --bits-per-image must be a positive number, got -3.0"),
        (["--bytes-per-image", "nan"], "error: --bytes-per-image must be a positive number, got nan"),
        (["--rate-json", str(tmp_path / "missing.json")], "no such file (expected the JSON written by codec-rate --out)"),
        (["--rate-json", str(not_json)], f"error: --rate-json {not_json}: not a JSON file"),
        (["--rate-json", str(other_json)], "no 'codecs' results in it"),
        (["--paper-table2", "--codec", "avif"], "error: --codec avif: Table 2 has PNG, WebP and JPEG-XL"),
        (["--bits-per-image", "100", "--codec", "png"], "--codec picks a codec of --rate-json or --paper-table2"),
        (["--paper-table2", "--entropy", "paper", "--formats", "bf16"], "the paper's Table 1 has no bfloat16"),
        (["--paper-table2", "--formats", "float128"], "unknown floating-point format 'float128'"),
    ]
    for argv, message in cases:
        assert main(["noise-dim", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
