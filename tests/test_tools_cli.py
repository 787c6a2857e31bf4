"""python -m tools: the command list, the arguments after --, and a deprecated alias of a moved command."""

import os
import subprocess
import sys
from pathlib import Path

from tools.__main__ import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_help_lists_every_command_without_importing_them(tmp_path):
    probe = """
import runpy, sys
sys.argv[1:] = ["--help"]
try:
    runpy.run_module("tools", run_name="__main__")
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in COMMANDS)
    imported = set(proc.stdout.splitlines()[-1].split())
    assert "torch" not in imported and not imported & {module for module, _ in COMMANDS.values()}


def test_only_the_sweeps_take_train_arguments(tmp_path, capsys):
    assert main(["synthetic-data", "mnist", str(tmp_path), "--count", "5", "--", "--trainer.max_steps=1"]) == 2
    assert "takes no train.py arguments" in capsys.readouterr().err
    assert main(["synthetic-data", "mnist", str(tmp_path), "--count", "5"]) == 0
    assert sorted(os.listdir(tmp_path / "MNIST" / "raw"))[0].startswith("t10k-images-idx3-ubyte")


def test_old_command_is_an_alias_that_says_so(tmp_path):
    cmd = [sys.executable, "-m", "datamodules.synthetic", "mnist", str(tmp_path), "--count", "5"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == "note: 'python -m datamodules.synthetic' is now 'python -m tools synthetic-data'"
    assert "wrote a synthetic mnist dataset (5 images)" in proc.stdout
    assert (tmp_path / "MNIST" / "raw").is_dir()
