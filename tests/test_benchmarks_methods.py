"""The GPU benchmarks of issue 23, checked on CPU with tiny networks: benchmarks/methods.py (every
method's step per precision / compile / memory format, as ratios against the same run's eager float32
step), benchmarks/sg2_vs_nvlabs.py (ours / NVlabs), benchmarks/paper_configs.py (each real-data config's
short fit + test) and scripts/gpu_check.sh (the one device script)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import methods, paper_configs, sg2_vs_nvlabs  # noqa: E402


# ------------------------------------------------------------------------------------ methods.py
@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("methods") / "methods.json"
    methods.main(["--device", "cpu", "--small", "--methods", "dcgan", "--precisions", "32-true", "bf16-mixed",
                  "--compile", "off", "--channels-last", "off", "--steps", "2", "--warmup", "1", "--threads", "1",
                  "--json", str(out)])  # fmt: skip
    return json.loads(out.read_text())


def test_methods_json_rows_and_ratios_against_the_same_run(dcgan_run):
    rows = dcgan_run["rows"]
    assert [(r["method"], r["precision"], r["compile"], r["channels_last"]) for r in rows] == [
        ("dcgan", "32-true", False, False), ("dcgan", "bf16-mixed", False, False)]  # fmt: skip
    base, bf16 = rows
    for row in rows:
        assert {"img_s", "img_s_median", "peak_mem_mib", "speedup", "mem_ratio", "finite", "first_losses",
                "first_loss_rel_diff", "safe", "batch", "steps", "params", "config"} <= set(row)  # fmt: skip
        assert (row["batch"], row["steps"], row["warmup"]) == (4, 2, 1)
        assert row["config"] == "rni/cifar10_dcgan_none.yaml"
    # Ratios are against the eager float32 row of this very run.
    assert base["speedup"] == 1.0 and base["first_loss_rel_diff"] == 0.0 and base["mem_ratio"] == 1.0
    assert bf16["speedup"] == pytest.approx(bf16["img_s"] / base["img_s"], rel=1e-12)
    assert bf16["mem_ratio"] == pytest.approx(bf16["peak_mem_mib"] / base["peak_mem_mib"], rel=1e-12)
    # Same weights, batch and noise: the first-batch losses agree to bf16 accuracy, but are not equal.
    assert set(base["first_losses"]) == {"loss_d", "loss_g"}
    diff = max(abs(bf16["first_losses"][k] - v) / abs(v) for k, v in base["first_losses"].items())
    assert bf16["first_loss_rel_diff"] == pytest.approx(diff) and 0 < diff < 0.05
    assert base["finite"] and bf16["finite"] and base["safe"] and bf16["safe"]
    best = dcgan_run["recommended"]["dcgan"]
    assert best["img_s"] == max(r["img_s"] for r in rows)
    assert dcgan_run["environment"]["device"] == "cpu" and dcgan_run["partial"] is False


def test_compare_flags_unsafe_variants():
    base = {"img_s": 100.0, "peak_mem_mib": 200.0, "first_losses": {"loss_d": 2.0, "loss_g": -4.0}, "finite": True}
    fast = {"img_s": 250.0, "peak_mem_mib": 100.0, "first_losses": {"loss_d": 2.1, "loss_g": -4.0}, "finite": True}
    methods.compare(fast, base, tolerance=0.1)
    assert (fast["speedup"], fast["mem_ratio"]) == (2.5, 0.5)
    assert fast["first_loss_rel_diff"] == pytest.approx(0.05) and fast["safe"]
    drifted = dict(fast, first_losses={"loss_d": 2.0, "loss_g": -3.0})
    methods.compare(drifted, base, tolerance=0.1)
    assert drifted["first_loss_rel_diff"] == pytest.approx(0.25) and not drifted["safe"]
    nan = dict(fast, finite=False)
    methods.compare(nan, base, tolerance=0.1)
    assert not nan["safe"]
    # The fastest safe variant is recommended, not the fastest.
    assert methods.recommend([base | {"safe": True}, fast, drifted | {"img_s": 900.0}, nan]) is fast


def test_variant_order_baseline_first_then_tiers():
    args = methods.parse_args(["--device", "cpu"])
    order = methods.variants(args)
    assert len(order) == 12 and len(set(order)) == 12
    assert order[0] == ("32-true", False, False)
    assert order[1:3] == [("bf16-mixed", False, False), ("16-mixed", False, False)]
    assert order[3] == ("bf16-mixed", True, False)  # the compiled bf16 step before channels_last
    assert [methods.tier(v) for v in order] == sorted(methods.tier(v) for v in order)


def test_every_method_names_an_existing_config():
    for name, (config, overrides, batch, small, small_batch) in methods.METHODS.items():
        assert (ROOT / "configs" / config).is_file(), name
        assert small_batch >= 2


# ------------------------------------------------------------------------------------ sg2_vs_nvlabs.py
def test_nvlabs_summary_is_their_median_over_ours():
    def run(side, mode, seconds, mem, params=(10, 20)):
        return {"side": side, "cfg": "c", "mode": mode, "median_s": seconds, "peak_mem_mib": mem, "batch": 8,
                "res": 128, "G": params[0], "D": params[1], "ops": "CUDA plugins" if side == "theirs" else "ours"}

    results = [run("ours", "fp32", 0.10, 900), run("theirs", "fp32", 0.30, 1000), run("ours", "fp32", 0.20, 950),
               run("theirs", "fp32", 0.26, 1100), run("ours", "mixed", 0.05, 500),
               {"side": "theirs", "cfg": "c", "mode": "mixed", "error": "rc 1: boom"}]  # fmt: skip
    fp32, mixed = sg2_vs_nvlabs.summarise(results)
    assert fp32["ours_s"] == pytest.approx(0.15) and fp32["theirs_s"] == pytest.approx(0.28)
    assert fp32["ours_over_theirs_speed"] == pytest.approx(0.28 / 0.15)
    assert fp32["ours_over_theirs_mem"] == pytest.approx(950 / 1100) and fp32["same_params"]
    assert fp32["ours_img_s"] == pytest.approx(8 / 0.15) and fp32["their_ops"] == "CUDA plugins"
    assert "ours_over_theirs_speed" not in mixed and mixed["errors"] == ["rc 1: boom"]
    assert "failed: rc 1: boom" in sg2_vs_nvlabs.markdown([fp32, mixed], {"device_name": "x", "torch": "y"})


def test_loaded_extensions_are_importable_by_name(monkeypatch):
    """NVlabs' custom_ops imports a plugin by name after ``load``; the shim registers what ``load`` returns."""
    import types

    import torch.utils.cpp_extension as cpp

    built = types.ModuleType("fake_plugin")
    monkeypatch.setattr(cpp, "load", lambda name, *args, **kwargs: built)
    monkeypatch.delitem(sys.modules, "fake_plugin", raising=False)
    sg2_vs_nvlabs._register_loaded_extensions()
    sg2_vs_nvlabs._register_loaded_extensions()  # idempotent: wraps once
    assert cpp.load("fake_plugin", sources=[]) is built
    import importlib

    assert importlib.import_module("fake_plugin") is built
    monkeypatch.delitem(sys.modules, "fake_plugin")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SG2ADA_DIR"), reason="needs an NVlabs checkout in SG2ADA_DIR (an opt-in reference check)"
)
def test_nvlabs_side_by_side_on_cpu_has_equal_parameter_counts():
    (row,) = sg2_vs_nvlabs.main(["--device", "cpu", "--small", "--configs", "a", "--modes", "fp32", "--rounds", "1",
                                 "--warmup", "0", "--iters", "1", "--threads", "1"])  # fmt: skip
    assert row["same_params"] and row["their_ops"] == "reference ops (CPU)" and row["ours_over_theirs_speed"] > 0


# ------------------------------------------------------------------------------------ paper_configs.py
def test_paper_configs_finds_every_real_data_config():
    found = dict(paper_configs.discover())
    assert found["noise_dim/digits_demo.yaml"] == "built-in data"
    assert found["noise_dim/known_source.yaml"] == "built-in data"
    for name in ("rni/ffhq128_rni.yaml", "i2i/celeba64_sr4.yaml", "i2i/facades.yaml", "de_gan/cifar10.yaml",
                 "ganz/celeba128_dt64.yaml", "noise_dim/lsun_church256_stylegan2_ada.yaml", "classifier/mnist.yaml"):
        assert found[name] is None, name  # fmt: skip
    assert "data/celeba64.yaml" not in found
    real = [n for n, reason in found.items() if reason is None]
    assert len(real) == len(paper_configs.order(real))
    # One config of each family first: the 5 ffhq128 RNI variants share one family.
    first = paper_configs.order(real)[: len({paper_configs.family(yaml.safe_load((ROOT / "configs" / n).read_text()))
                                             for n in real})]  # fmt: skip
    assert sum(n.startswith("rni/ffhq128_") for n in first) == 1


def test_listed_precisions_read_the_config_and_its_comment():
    configs = ROOT / "configs"
    facades = yaml.safe_load((configs / "i2i/facades.yaml").read_text())
    listed = paper_configs.listed_precisions(configs / "i2i/facades.yaml", facades)
    assert listed == ["32-true", "16-mixed", "bf16-mixed"]
    rni = yaml.safe_load((configs / "rni/ffhq128_rni.yaml").read_text())
    assert paper_configs.listed_precisions(configs / "rni/ffhq128_rni.yaml", rni) == ["32-true"]


def test_projection_of_the_paper_scale_run():
    rni = yaml.safe_load((ROOT / "configs/rni/ffhq128_rni.yaml").read_text())
    p = paper_configs.projection(rni, {"opt_steps_s": 12.5, "it_s": 6.25})
    assert p["projected_h_1gpu"] == pytest.approx(1_562_500 / 12.5 / 3600) and p["projected_h_8gpu"] == pytest.approx(
        p["projected_h_1gpu"] / 8)
    biggan = yaml.safe_load((ROOT / "configs/noise_dim/cifar10_biggan.yaml").read_text())
    p = paper_configs.projection(biggan, {"opt_steps_s": 0.0, "it_s": 10.0})  # 500 epochs of 49,500 / 50 images
    assert p["projection_basis"] == "max_epochs 500 x 990 iterations"
    assert p["projected_h_1gpu"] == pytest.approx(500 * 990 / 10 / 3600)


def test_test_callbacks_use_the_given_classifier_and_few_samples():
    callbacks = yaml.safe_load((ROOT / "configs/rni/ffhq128_rni.yaml").read_text())["trainer"]["callbacks"]
    shrunk = paper_configs._shrink_callbacks(callbacks, 64, "c.ckpt")
    metrics = next(c["init_args"] for c in shrunk if c["class_path"] == "callbacks.GenerativeMetrics")
    assert (metrics["feature_extractor"], metrics["feature_path"]) == ("classifier", "c.ckpt")
    assert metrics["num_samples"] == metrics["ppl_samples"] == 64 and metrics["kid_subset_size"] == 32
    condition = next(c["init_args"] for c in shrunk if c["class_path"] == "callbacks.ConditionNumber")
    assert condition["num_samples"] == 64 and condition["batch_size"] == 64
    assert callbacks[1]["init_args"]["num_samples"] == 50000  # the config's own list is left alone


@pytest.mark.slow  # about 5 s on 2 cores
def test_a_real_data_config_fits_and_tests_on_synthetic_data(tmp_path):
    out = tmp_path / "configs.json"
    result = paper_configs.main(["--device", "cpu", "--small", "--configs", "noise_dim/cifar10_biggan.yaml",
                                 "--steps", "2", "--warmup", "0", "--count", "10", "--eval-samples", "8",
                                 "--num-workers", "0", "--json", str(out)])  # fmt: skip
    (row,) = result["rows"]
    assert "error" not in row, row.get("error")
    assert row["iterations"] == 2 and row["batch"] == 4 and row["it_s"] > 0
    assert {"metrics/fid", "metrics/kid_mean"} <= set(row["test_metrics"])
    assert all(math.isfinite(v) for v in row["test_metrics"].values())
    assert json.loads(out.read_text())["rows"][0]["config"] == "noise_dim/cifar10_biggan.yaml"


# ------------------------------------------------------------------------------------ scripts/gpu_check.sh
@pytest.mark.slow
def test_gpu_check_script_runs_tiny_on_cpu(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts/gpu_check.sh"), "all", "--device", "cpu", "--tiny"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) <= 8, files  # what the device tool brings back
    summary = (tmp_path / "summary.md").read_text()
    statuses = re.findall(r"^## (.*): (ok|failed.*|stopped.*), \d+s$", summary, re.M)
    assert [status for _, status in statuses] == ["ok"] * 4, summary
    assert json.loads((tmp_path / "methods.json").read_text())["rows"][0]["speedup"] == 1.0
