"""The worked example of docs/adding-a-method.md, run as written: a sixth method trains through train.py."""

from __future__ import annotations

import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import train

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "adding-a-method.md"


def _blocks() -> dict[str, str]:
    """The page's code blocks whose first line is ``# file: <path>``, by path."""
    found = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", PAGE.read_text(), flags=re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            found[first[len("# file: "):].strip()] = rest
    return found


@pytest.fixture()
def lsgan(monkeypatch):
    """The example's two Python files, imported under the module names the page gives them."""
    blocks = _blocks()
    assert set(blocks) == {"lightning_modules/nets/lsgan.py", "lightning_modules/lsgan.py", "configs/lsgan/digits.yaml"}
    for path in ("lightning_modules/nets/lsgan.py", "lightning_modules/lsgan.py"):
        name = path[: -len(".py")].replace("/", ".")
        module = types.ModuleType(name)
        module.__file__ = str(PAGE)
        monkeypatch.setitem(sys.modules, name, module)
        exec(compile(blocks[path], f"{PAGE}:{path}", "exec"), module.__dict__)
    code_lines = sum(len(b.strip().splitlines()) for b in blocks.values())
    assert code_lines <= 100, f"the worked example has grown to {code_lines} lines"
    return sys.modules["lightning_modules.lsgan"], blocks["configs/lsgan/digits.yaml"]


def test_the_example_losses_are_least_squares(lsgan):
    module, _ = lsgan
    model = module.LSGAN(noise={"dim": 4}, resolution=8, channels=1, width=8)
    last = model.discriminator.net[-1]
    with torch.no_grad():  # D outputs the constant c on every image
        last.weight.zero_()
        last.bias.fill_(0.3)
    real = torch.zeros(5, 1, 8, 8)
    d_loss, logs = model.d_loss(real)
    assert d_loss.item() == pytest.approx(0.5 * (0.3 - 1) ** 2 + 0.5 * 0.3**2)
    g_loss, _ = model.g_loss(real)
    assert g_loss.item() == pytest.approx(0.5 * (0.3 - 1) ** 2)
    assert model.generate(batch_size=3).shape == (3, 1, 8, 8)


def test_the_example_trains_through_train_py(lsgan, tmp_path, monkeypatch):
    _, config = lsgan
    path = tmp_path / "digits.yaml"
    path.write_text(config)
    monkeypatch.setitem(train.TRAINER_DEFAULTS, "callbacks", [])
    cli = train.main([
        "fit", "-c", str(path), f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
        "--trainer.max_steps=6", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1",
        "--trainer.check_val_every_n_epoch=1", "--trainer.log_every_n_steps=1", "--model.init_args.width=16",
    ])  # fmt: skip
    assert cli.trainer.global_step == 6 and cli.model.d_steps == 3
    logged = cli.trainer.callback_metrics
    assert all(math.isfinite(float(logged[k])) for k in ("train/loss_d", "train/loss_g", "train/d_real"))
    assert list(tmp_path.rglob("last.ckpt")) and list(tmp_path.rglob("*.png"))  # checkpoint and sample grid
