"""python -m analysis: the shared framework, the data loader and the float-entropy command."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from analysis.__main__ import main
from analysis.cli import Report, UsageError, emit, format_table
from analysis.data import iter_uint8_images, load_uint8_images


def test_table_aligns_numbers_right_and_marks_missing_values():
    text = format_table(["name", "value"], [{"name": "a", "value": 1.5}, {"name": "long name", "value": None}])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "value"]
    assert lines[2].endswith("1.5") and lines[3].endswith("-")
    assert len({len(lines[0]), len(lines[1])}) == 1


def test_out_json_and_csv(tmp_path, capsys):
    report = Report(title="t", columns=["a", "b"], rows=[{"a": 1, "b": float("inf")}], notes=["n"], extra={"k": 3})
    emit(report, out=str(tmp_path / "r.json"))
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"] == [{"a": 1, "b": None}] and data["k"] == 3 and data["notes"] == ["n"]
    emit(report, out=str(tmp_path / "r.csv"))
    assert list(csv.DictReader(open(tmp_path / "r.csv"))) == [{"a": "1", "b": "inf"}]
    with pytest.raises(UsageError, match="must end in .json or .csv"):
        emit(report, out=str(tmp_path / "r.txt"))


def test_float_entropy_command(tmp_path, capsys):
    out = tmp_path / "table1.json"
    assert main(["float-entropy", "--mc-samples", "200000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "26.4637" in printed and "55.56" in printed
    rows = {r["format"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"float64", "float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"}
    for row in rows.values():
        assert abs(row["mc_H"] - row["exact_H"]) < 5 * row["mc_stderr"]
    assert rows["float32"]["exact_minus_paper"] == pytest.approx(26.4637 - 26.55, abs=1e-4)
    assert rows["bfloat16"]["paper_H"] is None
    # As drawn: torch's CPU Box-Muller on 24-bit uniforms gives at most 24 bits per float32 value.
    assert rows["float32"]["torch_cpu"] == 24.0 and rows["float64"]["torch_cpu"] == 53.0
    assert rows["float64"]["exact_cpu"] is None  # sampler: exact refuses float64
    for row in rows.values():
        for column in ("torch_cuda", "exact_cpu", "exact_cuda"):
            if row[column] is not None:
                assert row["exact_H"] - 2e-4 <= row[column] < row["exact_H"] + 1e-3
    assert "torch_cpu" in printed and "upper bound" in printed


def test_float_entropy_command_uniform_as_drawn(tmp_path):
    out = tmp_path / "uniform.json"
    assert main(["float-entropy", "--distribution", "uniform", "--mc-samples", "0", "--out", str(out)]) == 0
    rows = {r["format"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["float32"]["torch_cpu"] == 24.0 and rows["float64"]["torch_cuda"] == 52.5
    assert rows["float32"]["exact_cpu"] == pytest.approx(26.0, abs=1e-6)


def test_float_entropy_command_rejects_an_unknown_format(capsys):
    assert main(["float-entropy", "--formats", "float8", "--mc-samples", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "float8" in err and "Traceback" not in err


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_loader_is_recursive_sorted_and_keeps_pixels(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    _write_png(tmp_path / "b.png", rgb)
    _write_png(tmp_path / "sub" / "a.png", grey)
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_uint8_images(str(tmp_path))
    assert [name for name, _ in images] == ["b.png", "sub/a.png"]
    assert np.array_equal(images[0][1], rgb) and np.array_equal(images[1][1], grey)
    assert len(load_uint8_images(str(tmp_path), limit=1)) == 1


def test_datamodule_loader_gives_8bit_pixels():
    images = load_uint8_images("DigitsDataModule", split="val", limit=3, data_args='{"resolution": 8}')
    assert len(images) == 3 and images[0][0] == "val[0]"
    pixels = images[0][1]
    assert pixels.shape == (8, 8) and pixels.dtype == np.uint8
    # 17 grey levels of the digits, k/16 in [0, 1], map to round(255 k / 16).
    assert set(np.unique(pixels)) <= {round(255 * k / 16) for k in range(17)}


@pytest.mark.parametrize(
    "data, fragment",
    [
        ("empty", "holds no images"),
        ("corrupt", "cannot read image"),
        ("NoSuchDataModule", "no such folder"),
    ],
)
def test_loader_errors_name_the_input(tmp_path, data, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    source = str(tmp_path / data) if data in ("empty", "corrupt") else data
    with pytest.raises(UsageError, match=fragment):
        list(iter_uint8_images(source))


def test_bad_data_args(tmp_path):
    with pytest.raises(UsageError, match="not valid JSON"):
        list(iter_uint8_images("DigitsDataModule", data_args="{resolution: 8"))
    with pytest.raises(UsageError, match="resolutoin"):
        list(iter_uint8_images("DigitsDataModule", data_args='{"resolutoin": 8}'))
