"""python -m tools rni-tables: the paper's Tables 1-2 from runs (event folders or JSON), averaged over seeds."""

import csv
import json

import pytest
import yaml

from core.errors import UserError
from tools import rni_tables
from tools.__main__ import main


def _run(folder, seed=None, **metrics):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if seed is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump({"seed_everything": seed}))
    return str(folder / "metrics.json")


def test_rows_map_one_to_one_onto_the_paper_and_seeds_are_averaged(tmp_path, capsys):
    lp = "metrics/ppl[lpips-vgg]"
    runs = {
        "rni": [_run(tmp_path / "rni0", 0, **{lp: 12.0, "metrics/fid": 7.0, "metrics/mc": 0.5, "metrics/ttmc": 1.0}),
                _run(tmp_path / "rni1", 1, **{lp: 14.0, "metrics/fid": 8.0, "metrics/mc": 0.7, "metrics/ttmc": 1.2})],
        "plain": [_run(tmp_path / "plain", 0, **{lp: 30.0, "metrics/fid": 6.5, "metrics/mc": 0.9,
                                                   "metrics/ttmc": 2.8})],
        "eni": [_run(tmp_path / "eni", 0, **{"metrics/ppl[inception-l2]": 99.0, "metrics/fid": 7.5})],
    }  # fmt: skip
    argv = ["rni-tables", "--dataset", "ffhq", "--out", str(tmp_path / "out")]
    for row in ("eni", "rni", "plain"):
        argv += [arg for path in runs[row] for arg in ("--run", f"{row}={path}")]
    assert main(argv) == 0
    with open(tmp_path / "out" / "table1.csv") as handle:
        t1 = list(csv.DictReader(handle))
    # The paper's order (plain, stylegan2, rni_nopl, rni), the project's ablation last.
    assert [r["row"] for r in t1] == ["Plain StyleGAN2", "StyleGAN2 + RNI (Ours)", rni_tables.ABLATION_LABEL]
    rni = t1[1]
    assert rni["k"] == "2" and rni["seeds"] == "0 1" and rni["PPL distance"] == "lpips-vgg"
    assert float(rni["PPL_mean"]) == 13.0 and float(rni["PPL_std"]) == pytest.approx(2**0.5)  # sample std
    assert float(rni["FID (paper)"]) == 7.31 and float(rni["PPL (paper)"]) == 13.05
    assert t1[2]["PPL distance"] == "inception-l2" and t1[2]["PPL (paper)"] == ""
    md1 = (tmp_path / "out" / "table1.md").read_text()
    assert "| StyleGAN2 + RNI (Ours) | rni | lpips-vgg | 2 | 0 1 | 13 ± 1.4 | 7.5 ± 0.71 | 13.05 | 7.31 |" in md1
    with open(tmp_path / "out" / "table2.csv") as handle:
        t2 = {r["config row"]: r for r in csv.DictReader(handle)}
    assert float(t2["rni"]["MC_mean"]) == pytest.approx(0.6) and float(t2["plain"]["TTMC (paper)"]) == 2.81
    assert t2["eni"]["MC_mean"] == ""  # not measured: left empty, not 0
    assert "RNI Table 2" in capsys.readouterr().out


def test_different_distances_are_never_averaged(tmp_path):
    a = _run(tmp_path / "a", 0, **{"metrics/ppl[lpips-vgg]": 10.0})
    b = _run(tmp_path / "b", 1, **{"metrics/ppl[classifier-l2]": 500.0})
    tables = rni_tables.build_tables([("rni", a), ("rni", b)], "stylegan2")
    rows = tables["table1"]
    got = [(r["PPL distance"], r["PPL_mean"], r["k"]) for r in rows]
    assert got == [("lpips-vgg", 10.0, 1), ("classifier-l2", 500.0, 1)]


def test_dcgan_rows_and_event_folders(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "dcgan_rni" / "test"
    with SummaryWriter(str(folder)) as writer:
        writer.add_scalar("metrics/ppl[lpips-vgg]", 3.0, 0)
        writer.add_scalar("metrics/ppl[lpips-vgg]", 2.5, 1)  # the last value counts
        writer.add_scalar("metrics/fid", 41.0, 1)
    tables = rni_tables.build_tables([("rni", str(folder))], "dcgan", "lsun_church")
    row = tables["table1"][0]
    assert row["row"] == "DCGAN + RNI (Ours)" and row["PPL_mean"] == 2.5 and row["PPL (paper)"] == 22.53
    assert row["seeds"] == "run0"  # no config.yaml beside the events
    other = _run(tmp_path / "seeded", 3, **{"metrics/ppl[lpips-vgg]": 3.5})
    row = rni_tables.build_tables([("rni", str(folder)), ("rni", other)], "dcgan")["table1"][0]
    assert row["seeds"] == "3 run0" and row["PPL_mean"] == 3.0


def test_bad_run_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="ROW=PATH"):
        rni_tables._parse_run("rni")
    with pytest.raises(UserError, match="no such run"):
        rni_tables.build_tables([("rni", str(tmp_path / "missing"))], "stylegan2")
