"""``python -m tools reproduce de_gan`` (tools/reproduce/de_gan.py) and the pipeline machinery under it.

No real data: a tiny MNIST in the official IDX format (datamodules/synthetic/mnist.py) in
tmp_path.  The end-to-end run uses tiny settings (the stage code reads them from
``pipeline.settings``, as it reads the scales' SETTINGS); the machinery tests use a toy
pipeline whose "fits" are small Python subprocesses.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys

import pytest

from core.errors import UserError
from datamodules.synthetic.mnist import write_mnist
from evaluation.de_gan_metrics import read_metrics_csv
from tools.reproduce import de_gan
from tools.reproduce.pipeline import Pipeline, Stage, StageFailed

TINY = {
    **de_gan.SETTINGS["default"],
    "batch_size": 16,
    "classifier_epochs": 2,  # OneCycleLR needs a few steps
    "classifier_batch_size": 16,
    "classifier_val_fraction": 0.1,
    "min_classifier_accuracy": 0.0,
    "vae_epochs": 1,
    "gan_epochs": 2,
    "g_width": 4,
    "d_width": 4,
    "eval_samples": 40,
}


def _pipeline(out, data_root, settings=TINY, seeds=(0, 1), **kwargs) -> Pipeline:
    return Pipeline("de_gan", str(out), str(data_root), "tiny", seeds, settings=settings, **kwargs)


@pytest.mark.slow
def test_de_gan_pipeline_end_to_end_then_skips_everything(tmp_path, capsys):
    data = tmp_path / "data"
    written = write_mnist(str(data / "mnist"), train_count=160, test_count=20)
    pipeline = _pipeline(tmp_path / "out", data)
    pipeline.run(de_gan.stages(pipeline))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())

    assert [s["name"] for s in manifest["stages"]] == ["classifier", "vae", "models", "tables"]
    assert all(s["status"] == "done" and s["wall_s"] >= 0 for s in manifest["stages"])
    assert manifest["seeds"] == [0, 1] and manifest["settings"] == TINY
    assert {"python", "torch", "torchvision", "lightning", "project"} <= set(manifest["versions"])
    stages = {s["name"]: s for s in manifest["stages"]}

    # the judge's test accuracy, recomputed here from its checkpoint and the written test labels
    clf = stages["classifier"]
    assert clf["metrics"]["test_images"] == len(written["test"][1]) == 20
    accuracy, count = de_gan.classifier_test_accuracy(
        str(tmp_path / "out" / clf["metrics"]["checkpoint"]), str(data / "mnist"), 28
    )
    assert clf["metrics"]["test_accuracy"] == accuracy and count == 20

    # models: both models and both seeds, with the pipeline's own VAE and classifier checkpoints
    models = stages["models"]
    assert models["checkpoints"] == [f"runs/{m}/seed{s}/fit/checkpoints/last.ckpt"
                                     for s in (0, 1) for m in ("de_gan", "dcgan")]  # fmt: skip
    assert all(os.path.isfile(tmp_path / "out" / c) for c in models["checkpoints"])
    de_gan_seed1 = next(c for c in models["commands"] if "--trainer.logger.init_args.name de_gan/seed1" in c)
    assert "--seed_everything 1" in de_gan_seed1
    assert f"--model.init_args.vae_ckpt {pipeline.checkpoint('vae')}" in de_gan_seed1
    assert f"--trainer.callbacks.init_args.classifier_ckpt {pipeline.checkpoint('classifier')}" in de_gan_seed1
    runs = models["metrics"]["runs"]
    assert [(r["model"], r["seed"], [e["epoch"] for e in r["epochs"]]) for r in runs] == [
        ("de_gan", 0, [1, 2]), ("dcgan", 0, [1, 2]), ("de_gan", 1, [1, 2]), ("dcgan", 1, [1, 2])
    ]  # fmt: skip
    for r in runs:  # 40 samples, 4 per label: accuracy is a multiple of 1/40, per digit of 1/4
        csv_rows = read_metrics_csv(pipeline.fit_dir(f"{r['model']}/seed{r['seed']}"))
        for e, row in zip(r["epochs"], csv_rows, strict=True):
            # one iteration = a D step and a G step: half of Lightning's optimiser steps
            assert e["iterations"] * 2 == row["global_step"] == e["epoch"] * 2 * r["epochs"][0]["iterations"] > 0
            assert e["label_accuracy"] == row["de_gan/label_accuracy"]
            assert abs(e["label_accuracy"] * 40 - round(e["label_accuracy"] * 40)) < 1e-9
            assert math.isclose(sum(e["label_accuracy_per_digit"]) / 10, e["label_accuracy"], abs_tol=1e-9)

    # tables: mean and sample std over the two seeds of the recorded numbers
    summary = stages["tables"]["metrics"]["summary"]
    for tag in ("de_gan", "dcgan"):
        finals = [r["epochs"][-1]["label_accuracy"] for r in runs if r["model"] == tag]
        assert math.isclose(summary[tag]["final_accuracy"]["mean"], sum(finals) / 2)
        assert math.isclose(summary[tag]["final_accuracy"]["std"], abs(finals[0] - finals[1]) / math.sqrt(2))
        rdd3 = [r["epochs"][-1]["rdd_per_digit"][3] for r in runs if r["model"] == tag]
        assert math.isclose(summary[tag]["rdd_per_digit"][3]["mean"], sum(rdd3) / 2)
    out = tmp_path / "out" / "tables"
    for name in ("fig6_accuracy.png", "fig6_accuracy.csv", "table5_final_accuracy.csv", "table6_rdd.csv", "tables.md"):
        assert (out / name).stat().st_size > 0
    assert "### Table VI" in (out / "tables.md").read_text()

    # a second run reuses every stage (nothing retrained) and writes the same numbers
    before = {p: os.path.getmtime(p) for p in (pipeline.checkpoint("classifier"), pipeline.checkpoint("dcgan/seed1"))}
    capsys.readouterr()
    again = _pipeline(tmp_path / "out", data)
    again.run(de_gan.stages(again))
    assert capsys.readouterr().out.count(": done (") == 4
    assert {p: os.path.getmtime(p) for p in before} == before
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"] == manifest["stages"]


@pytest.mark.slow  # one real classifier fit: about 9 s
def test_classifier_below_the_threshold_stops_with_the_stage_and_its_log(tmp_path):
    data = tmp_path / "data"
    write_mnist(str(data / "mnist"), train_count=40, test_count=10)
    settings = {**TINY, "min_classifier_accuracy": 1.01}  # no classifier reaches it
    pipeline = _pipeline(tmp_path / "out", data, settings=settings)
    with pytest.raises(StageFailed, match=r"stage 'classifier' failed: the judge reaches .* below the 1.01.*"
                                          r"its log: .*logs/classifier\.log"):  # fmt: skip
        pipeline.run(de_gan.stages(pipeline))
    assert "test accuracy of" in (tmp_path / "out" / "logs" / "classifier.log").read_text()
    assert not (tmp_path / "out" / "stages" / "classifier.json").exists()  # not recorded as done


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    pipeline = _pipeline(tmp_path / "out", tmp_path, settings=de_gan.SETTINGS["default"], seeds=(0, 1, 2),
                         dry_run=True)  # fmt: skip
    pipeline.run(de_gan.stages(pipeline))
    out = capsys.readouterr().out
    assert out.count("train.py fit") == 2 + 2 * 3
    assert out.count("--trainer.max_epochs 6 ") == 6 and "--model.init_args.g_width 32" in out
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the machinery, on a toy pipeline


def _toy(tmp_path, fail_in=None, log=None, **kwargs):
    """Stages a, b, c; each runs one subprocess (b's exits 3 when ``fail_in == 'b'``) and counts its runs."""
    log = log if log is not None else []

    def make(name):
        def run(pipeline):
            log.append(name)
            code = 3 if fail_in == name else 0
            pipeline.command([sys.executable, "-c", f"print('hello from {name}'); raise SystemExit({code})"])
            return {"value": len(name) * 1.5}

        return run

    stages = [Stage(n, f"stage {n}", make(n)) for n in "abc"]
    pipeline = Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [4, 5], settings={"k": 1}, **kwargs)
    return pipeline, stages, log


def test_failed_stage_stops_names_stage_and_log_and_keeps_finished_ones(tmp_path):
    pipeline, stages, log = _toy(tmp_path, fail_in="b")
    with pytest.raises(StageFailed) as err:
        pipeline.run(stages)
    assert str(err.value) == f"stage 'b' failed (exit 3); its log: {tmp_path / 'out' / 'logs' / 'b.log'}"
    assert log == ["a", "b"]  # c never ran
    assert "hello from b" in (tmp_path / "out" / "logs" / "b.log").read_text()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s.get("status") for s in manifest["stages"]] == ["done", "not run", "not run"]

    # started again (b fixed): a is reused, b and c run
    pipeline, stages, log = _toy(tmp_path)
    pipeline.run(stages)
    assert log == ["b", "c"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done"] * 3
    assert [s["metrics"] for s in manifest["stages"]] == [{"value": 1.5}] * 3


def test_manifest_fields_and_force(tmp_path):
    pipeline, stages, log = _toy(tmp_path)
    pipeline.run(stages)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["paper"] == "toy" and manifest["seeds"] == [4, 5] and manifest["settings"] == {"k": 1}
    assert manifest["scale"] == "default" and manifest["machine"]["cpus"] >= 1
    for stage in manifest["stages"]:
        code = f"print('hello from {stage['name']}'); raise SystemExit(0)"
        assert stage["commands"] == [shlex.join([sys.executable, "-c", code])]
        assert isinstance(stage["wall_s"], float) and stage["checkpoints"] == []

    pipeline, stages, log = _toy(tmp_path, force=["b"])
    pipeline.run(stages)
    assert log == ["b"]
    pipeline, stages, log = _toy(tmp_path, force=["all"])
    pipeline.run(stages)
    assert log == ["a", "b", "c"]
    with pytest.raises(UserError, match="--force x: no such stage; the stages are a, b, c"):
        _toy(tmp_path, force=["x"])[0].run(stages)


def test_fit_is_skipped_when_finished_resumed_when_interrupted_and_redone_when_forced(tmp_path, monkeypatch):
    commands = []

    def fake_command(self, cmd):
        commands.append(list(cmd))
        os.makedirs(os.path.dirname(self.checkpoint("m")), exist_ok=True)
        with open(self.checkpoint("m"), "w") as handle:
            handle.write("ckpt")

    monkeypatch.setattr(Pipeline, "command", fake_command)
    stage = Stage("fit", "one fit", lambda p: {"ckpt": os.path.relpath(p.fit("m", "configs/x.yaml", ["--a", "1"]), p.out)})
    pipeline = Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [0])

    os.makedirs(os.path.dirname(pipeline.checkpoint("m")))
    open(pipeline.checkpoint("m"), "w").close()  # an interrupted fit: last.ckpt, no FINISHED
    pipeline.run([stage])
    assert commands[-1][-2:] == ["--ckpt_path", pipeline.checkpoint("m")]
    assert pipeline.records["fit"]["checkpoints"] == ["runs/m/fit/checkpoints/last.ckpt"]

    Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [0], force=["fit"]).run([stage])
    assert len(commands) == 2 and "--ckpt_path" not in commands[-1]  # forced: retrained from scratch

    (tmp_path / "out" / "stages" / "fit.json").unlink()  # the stage again, its fit finished: skipped
    Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [0]).run([stage])
    assert len(commands) == 2


def test_a_fit_made_with_other_settings_is_neither_reused_nor_resumed(tmp_path, monkeypatch):
    """Changing a stage's settings (say 8 -> 6 epochs) stops with --force advice instead of mixing runs."""
    commands = []

    def fake_command(self, cmd):
        commands.append(list(cmd))
        os.makedirs(os.path.dirname(self.checkpoint("m")), exist_ok=True)
        with open(self.checkpoint("m"), "w") as handle:
            handle.write("ckpt")

    monkeypatch.setattr(Pipeline, "command", fake_command)

    def stage(epochs):
        overrides = [f"--trainer.max_epochs={epochs}"]
        return Stage("fit", "one fit", lambda p: {"ckpt": p.fit("m", "configs/x.yaml", overrides)})

    out = str(tmp_path / "out")
    Pipeline("toy", out, str(tmp_path), "default", [0]).run([stage(8)])
    (tmp_path / "out" / "stages" / "fit.json").unlink()
    Pipeline("toy", out, str(tmp_path), "default", [0]).run([stage(8)])  # same settings: the finished fit is reused
    assert len(commands) == 1
    (tmp_path / "out" / "stages" / "fit.json").unlink()
    with pytest.raises(UserError, match=r"stage 'fit': the fit m .* other settings .*--force fit"):
        Pipeline("toy", out, str(tmp_path), "default", [0]).run([stage(6)])
    os.remove(os.path.join(out, "runs", "m", "fit", "FINISHED"))  # interrupted instead: not resumed either
    with pytest.raises(UserError, match="other settings"):
        Pipeline("toy", out, str(tmp_path), "default", [0]).run([stage(6)])
    Pipeline("toy", out, str(tmp_path), "default", [0], force=["fit"]).run([stage(6)])
    assert len(commands) == 2 and "--trainer.max_epochs=6" in commands[-1] and "--ckpt_path" not in commands[-1]


def _fake_train_command(record_dir):
    """A ``train_command`` whose "fit" records its start and end times and OMP_NUM_THREADS, then
    exits with status 5 when its tag has ``fail`` in it and the file ``record_dir/FAIL`` exists."""

    def train_command(subcommand, config, overrides, save_dir, name, version, extra=(), ckpt_path=None):
        out, flag = os.path.join(record_dir, name.replace("/", "_") + ".txt"), os.path.join(record_dir, "FAIL")
        code = f"5 if os.path.exists({flag!r}) else 0" if "fail" in name else "0"
        script = (
            "import os, sys, time; t0 = time.time(); time.sleep(0.6); "
            f"open({out!r}, 'w').write(f'{{t0}} {{time.time()}} {{os.environ.get(\"OMP_NUM_THREADS\")}}'); "
            f"print('fit {name}'); sys.exit({code})"
        )
        return [sys.executable, "-c", script, config, *overrides]

    return train_command


def test_fit_many_runs_jobs_at_a_time_each_with_its_log_and_finishes_the_others_when_one_fails(tmp_path, monkeypatch):
    from tools.reproduce import pipeline as pipeline_module

    records = tmp_path / "records"
    records.mkdir()
    (records / "FAIL").touch()
    monkeypatch.setattr(pipeline_module.sweep, "train_command", _fake_train_command(str(records)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    tags = ["a/seed0", "b/seed0", "fail/seed0", "c/seed0"]
    stage = Stage("models", "four fits", lambda p: {"lasts": p.fit_many([(t, "configs/x.yaml", ["--k", t]) for t in tags])})
    pipeline = Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [0], jobs=2)
    with pytest.raises(StageFailed) as err:
        pipeline.run([stage])
    log = tmp_path / "out" / "logs" / "models" / "fail_seed0.log"
    assert str(err.value) == f"stage 'models' failed: the fit fail/seed0 (exit 5); its log: {log}"
    assert "fit fail/seed0" in log.read_text()

    spans = {}
    for tag in tags:
        start, end, threads = (records / (tag.replace("/", "_") + ".txt")).read_text().split()
        spans[tag] = (float(start), float(end))
        assert threads == "2"  # 4 cores / 2 jobs
    for tag in tags:  # never more than two at once
        start = spans[tag][0]
        assert sum(s <= start < e for s, e in spans.values()) <= 2
    assert max(s for s, _ in spans.values()) < max(e for _, e in spans.values())
    finished = {t for t in tags if os.path.isfile(os.path.join(pipeline.fit_dir(t), "FINISHED"))}
    assert finished == {"a/seed0", "b/seed0", "c/seed0"}  # the failure did not stop the others

    # again, the failing fit fixed: only it runs; the others count as done
    for f in records.iterdir():
        f.unlink()
    again = Pipeline("toy", str(tmp_path / "out"), str(tmp_path), "default", [0], jobs=2)
    again.run([stage])
    commands = again.records["models"]["commands"]
    assert len(commands) == 4 and again.records["models"]["metrics"]["lasts"] == [again.checkpoint(t) for t in tags]
    assert [f.name for f in records.iterdir()] == ["fail_seed0.txt"]
    assert all(os.path.isfile(os.path.join(again.fit_dir(t), "FINISHED")) for t in tags)
