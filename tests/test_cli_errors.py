"""Errors a user can cause print one line, ``error: <key or path, what to do>``, and exit with status 2.

Each case runs the real entry point (``train.py``'s, ``python -m analysis``'s or ``python -m
tools``'s ``__main__``) in its own process, on configs and files written here.  So that the
ten-odd train.py cases do not each pay the ~5-10 s of importing Lightning, one driver process
imports the project once and forks a child per case, which runs the entry point as
``python <script>`` / ``python -m <module>`` would (``runpy``) with stderr in a file.  Two
cases also run as plain ``python train.py`` / ``python -m analysis`` subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "noise_dim" / "digits_demo.yaml")
#: Lightning's own log lines (stderr) that a run prints before its data or callbacks fail.
# Lightning's own lines before a run starts; the srun one appears where SLURM is installed but not used.
LIGHTNING_INFO = re.compile(
    r"Seed set to \d+|GPU available|TPU available|HPU available|💡 Tip|You are using"
    r"|.*lightning/fabric/plugins/environments/slurm\.py:\d+: The `srun` command is available on your system"
)

DRIVER = r"""
import json, os, runpy, sys, traceback

cases = json.load(open(sys.argv[1]))
sys.argv = sys.argv[:1]
import train  # noqa: F401  (the imports every case shares)

for case in cases:
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.environ.update(case["env"])
        sys.argv = [case["prog"], *case["argv"]]
        code = 0
        try:
            if case["prog"].endswith(".py"):
                runpy.run_path(case["prog"], run_name="__main__")
            else:
                runpy.run_module(case["prog"], run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    with open(case["stderr"] + ".status", "w") as handle:
        handle.write(str(os.waitstatus_to_exitcode(status)))
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _cases(tmp: Path) -> dict[str, tuple[str, list[str], dict[str, str]]]:
    """name -> (script or module, arguments, extra environment); the files they need are written to ``tmp``."""
    logs = [f"--trainer.logger.init_args.save_dir={tmp / 'runs'}", f"--trainer.default_root_dir={tmp / 'runs'}",
            "--trainer.enable_progress_bar=false", "--trainer.max_steps=1", "--trainer.limit_val_batches=0"]  # fmt: skip
    (tmp / "bad_key.yaml").write_text(Path(DEMO).read_text().replace("g_width: 32", "g_widht: 32"))
    (tmp / "garbage.ckpt").write_bytes(b"this is not a checkpoint\n" * 10)
    (tmp / "buggy.py").write_text(
        "from lightning.pytorch import LightningModule\n\n"
        "class Buggy(LightningModule):\n    def __init__(self, width: int = 1):\n        raise KeyError('a bug')\n"
    )
    train, missing = str(ROOT / "train.py"), str(tmp / "missing")
    return {
        "bad_key": (train, ["fit", "-c", DEMO, "--model.init_args.nosie.dim", "3"], {}),
        "bad_key_in_yaml": (train, ["fit", "-c", str(tmp / "bad_key.yaml")], {}),
        "bad_value": (train, ["fit", "-c", DEMO, "--model.init_args.noise.dim", "-3"], {}),
        "bad_type": (train, ["fit", "-c", DEMO, "--trainer.max_steps", "many"], {}),
        "missing_config": (train, ["fit", "-c", f"{missing}.yaml"], {}),
        "missing_dataset": (
            train, ["fit", "-c", str(ROOT / "configs" / "classifier" / "mnist.yaml"), "--data.init_args.root", missing,
                    *logs], {},
        ),  # fmt: skip
        "missing_checkpoint": (train, ["validate", "-c", DEMO, "--ckpt_path", f"{missing}.ckpt"], {}),
        "corrupt_checkpoint": (train, ["validate", "-c", DEMO, "--ckpt_path", str(tmp / "garbage.ckpt")], {}),
        "missing_weights": (
            train, ["fit", "-c", DEMO, *logs, "--trainer.callbacks+=callbacks.GenerativeMetrics",
                    "--trainer.callbacks.feature_extractor=classifier", f"--trainer.callbacks.feature_path={missing}.ckpt"],
            {},
        ),  # fmt: skip
        "de_gan_missing_vae": (
            train, ["fit", "-c", str(ROOT / "configs" / "de_gan" / "digits.yaml"), "--trainer.callbacks=[]",
                    f"--model.init_args.vae_ckpt={missing}/vae.ckpt", *logs], {},
        ),  # fmt: skip
        "analysis_missing_file": ("analysis", ["intrinsic-dim", "--array", f"{missing}.npy"], {}),
        "tools_missing_file": ("tools", ["ganz", "decompress", "--ckpt", f"{missing}.ckpt", f"{missing}.ganz"], {}),
        "debug_flag": (train, ["fit", "-c", DEMO, "--model.init_args.noise.dim", "-3", "--debug"], {}),
        "debug_env": ("tools", ["ganz", "decompress", "--ckpt", f"{missing}.ckpt", "x.ganz"], {"NOISE_GANS_DEBUG": "1"}),
        "bug": (train, ["fit", "-c", DEMO, "--model", "buggy.Buggy"], {"PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}"}),
    }


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_errors")


@pytest.fixture(scope="module")
def results(tmp) -> dict[str, tuple[int, str]]:
    """name -> (exit status, stderr) of every case, run by one driver process."""
    if not hasattr(os, "fork"):
        pytest.skip("the driver forks a process per case")
    cases = [
        {"name": name, "prog": prog, "argv": argv, "env": env, "stderr": str(tmp / f"{name}.err")}
        for name, (prog, argv, env) in _cases(tmp).items()
    ]
    (tmp / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp / "cases.json")], cwd=tmp, env=_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        case["name"]: (int(Path(case["stderr"] + ".status").read_text()), Path(case["stderr"]).read_text())
        for case in cases
    }


def _error(result: tuple[int, str]) -> list[str]:
    """The ``error:`` line and the (at most two) lines under it, after checking the rest of stderr."""
    status, err = result
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    assert first is not None, err
    assert all(LIGHTNING_INFO.match(line) for line in lines[:first]), err  # nothing but Lightning's own info
    assert len(lines) - first <= 3, err
    return lines[first:]


@pytest.mark.parametrize(
    "case, first_line",
    [
        ("bad_key", "error: model.init_args.nosie.dim: no such key (did you mean model.init_args.noise.dim? "),
        ("bad_key_in_yaml", "error: model.init_args.g_widht: no such key (did you mean model.init_args.g_width? "),
        ("bad_value", "error: model (NoiseDimGAN): noise.dim must be a positive integer, got -3"),
        ("bad_type", "error: trainer.max_steps: expected int, got many"),
        ("missing_config", "error: -c/--config: File does not exist: "),
        ("missing_dataset", "error: MNISTDataModule: dataset not found (data.init_args.root = {missing})."),
        ("missing_checkpoint", "error: --ckpt_path {missing}.ckpt: no such file"),
        ("corrupt_checkpoint", "error: --ckpt_path {tmp}/garbage.ckpt: not a PyTorch checkpoint"),
        ("missing_weights", "error: GenerativeMetrics.feature_path: the classifier checkpoint {missing}.ckpt does not"),
        ("de_gan_missing_vae", "error: model.init_args.vae_ckpt: no checkpoint at '{missing}/vae.ckpt'"),
        ("analysis_missing_file", "error: --array {missing}.npy: no such file"),
        ("tools_missing_file", "error: --ckpt {missing}.ckpt: no such file"),
    ],
)
def test_user_error_is_one_line_naming_the_key_or_path(results, tmp, case, first_line):
    lines = _error(results[case])
    assert lines[0].startswith(first_line.format(missing=tmp / "missing", tmp=tmp)), lines


def test_debug_shows_the_traceback_above_the_same_line(results):
    for case in ("debug_flag", "debug_env"):
        status, err = results[case]
        assert status == 2 and "Traceback (most recent call last)" in err, err
        assert err.splitlines()[-1].startswith("error: ")
    assert results["debug_flag"][1].splitlines()[-1] == _error(results["bad_value"])[0]


def test_a_bug_keeps_its_traceback(results):
    status, err = results["bug"]
    assert status == 1 and "Traceback" in err and "KeyError: 'a bug'" in err


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def test_train_py_from_the_shell_prints_only_the_error(tmp_path):
    proc = _run(sys.executable, str(ROOT / "train.py"), "fit", "-c", DEMO, "--trainer.max_stpes", "3", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: trainer.max_stpes: no such key (did you mean trainer.max_steps? `python train.py fit --help` lists them)\n"
    )


def test_analysis_from_the_shell_with_debug(tmp_path):
    proc = _run(sys.executable, "-m", "analysis", "intrinsic-dim", "--array", "nowhere.npy", "--debug", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and proc.stderr.splitlines()[-1].startswith("error: --array nowhere.npy: no such")
