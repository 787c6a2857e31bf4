"""python -m tools rni-compare: the commands it plans, the eval callbacks it writes, the merged outputs."""

import csv
from pathlib import Path

import yaml

from tools import rni_compare
from tools.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_plans_fit_test_and_inversion_per_injection(tmp_path, capsys):
    ckpt = tmp_path / "clf.ckpt"
    ckpt.write_bytes(b"x")
    code = main(["rni-compare", "-c", str(ROOT / "configs" / "rni" / "digits_dcgan.yaml"), "--classifier-ckpt",
                 str(ckpt), "--save-dir", str(tmp_path), "--dry-run", "--injections", "eni", "rni",
                 "--", "--trainer.max_steps", "4"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert "fit" in lines[0] and "--model.init_args.noise_injection eni" in lines[0] and lines[0].endswith("4")
    assert " test " in lines[1] and "last.ckpt" in lines[1] and "eval_callbacks.yaml" in lines[1]
    assert "-m tools invert" in lines[2] and "--space z" in lines[2]  # DCGAN: no w
    cfg = yaml.safe_load((tmp_path / "rni_compare" / "digits_dcgan" / "eval_callbacks.yaml").read_text())
    gm, cn = cfg["trainer"]["callbacks"]
    assert gm["init_args"]["ppl_space"] == "z" and gm["init_args"]["feature_path"] == str(ckpt)
    assert cn["class_path"] == "callbacks.ConditionNumber" and cn["init_args"]["space"] == "z"


def test_write_outputs(tmp_path):
    rows = [
        {"injection": "none", "metrics/mc": 2.0, "metrics/ttmc": 5.0, "inversion PSNR": 20.0},
        {"injection": "rni", "metrics/mc": 1.0, "metrics/ttmc": 3.0, "inversion PSNR": 22.5},
    ]
    rni_compare.write_outputs(rows, str(tmp_path), "test")
    with open(tmp_path / "comparison.csv") as handle:
        read = list(csv.DictReader(handle))
    assert [r["injection"] for r in read] == ["none", "rni"] and float(read[1]["metrics/ttmc"]) == 3.0
    md = (tmp_path / "comparison.md").read_text().splitlines()
    assert md[0].startswith("| injection | metrics/mc") and "| rni | 1 | 3 | 22.5 |" in md
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_read_test_metrics_keeps_the_ppl_distance(tmp_path):
    import json

    path = tmp_path / "m.json"
    path.write_text(json.dumps({"metrics/ppl[lpips-vgg]": 12.5, "metrics/mc": 0.5, "metrics/other": 1.0}))
    assert rni_compare.read_test_metrics(str(path)) == {"metrics/ppl[lpips-vgg]": 12.5, "metrics/mc": 0.5}
    path.write_text(json.dumps({"metrics/ppl": 3.0}))  # a run from before the tags carried the distance
    assert rni_compare.read_test_metrics(str(path)) == {"metrics/ppl[unknown]": 3.0}


def test_outputs_name_the_distances(tmp_path):
    rows = [{"injection": "rni", "metrics/ppl[classifier-l2]": 250.0, "inversion distance": "lpips-vgg"}]
    rni_compare.write_outputs(rows, str(tmp_path), "test")
    md = (tmp_path / "comparison.md").read_text()
    assert "metrics/ppl[classifier-l2]" in md and "| lpips-vgg |" in md
