"""The classifier: the plain net, the LightningModule and configs/classifier/digits.yaml end to end."""

import time
from pathlib import Path

import pytest
import torch

from lightning_modules.classifier import Classifier, random_translate
from lightning_modules.nets.classifier import ConvClassifier, num_stages
from train import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "configs" / "classifier" / "digits.yaml")
# The config trains in about 20 s on 2 CPU cores.  The fit below runs torch on one thread:
# as fast here, and on a machine busy with other work two spinning threads can be 5x slower.
FIT_BUDGET_S = 120  # a guard against a config that grew, with headroom for busy machines


def _args(tmp_path, *extra, config=DIGITS, subcommand="fit"):
    return [
        subcommand,
        "-c",
        config,
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [8, 28, 32])
def test_net_shapes_and_gradients(channels, resolution):
    torch.manual_seed(0)
    net = ConvClassifier(channels, resolution, num_classes=7, width=4, num_features=12)
    x = torch.randn(3, channels, resolution, resolution, requires_grad=True)
    logits = net(x)
    assert logits.shape == (3, 7) and net.features(x).shape == (3, 12)
    logits.logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_stages_pool_down_to_at_most_4x4():
    assert [num_stages(r) for r in (8, 9, 16, 28, 32, 64, 128)] == [1, 1, 2, 3, 3, 4, 5]


def test_net_rejects_tiny_images_and_wrong_channels():
    with pytest.raises(ValueError, match=">= 8"):
        ConvClassifier(1, 4, 10)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        ConvClassifier(3, 8, 10, width=4)(torch.zeros(2, 1, 8, 8))


def test_random_translate_shifts_whole_images_without_wrapping():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    out = random_translate(x, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # some shift (dy, dx) in [-2, 2]^2 of the replicate-padded image
        padded = torch.nn.functional.pad(x[i : i + 1], (2, 2, 2, 2), mode="replicate")[0, 0]
        assert any(torch.equal(out[i, 0], padded[r : r + 8, c : c + 8]) for r in range(5) for c in range(5))
    assert random_translate(x, 0) is x


def test_inference_api_runs_in_eval_mode_and_keeps_the_mode():
    torch.manual_seed(0)
    model = Classifier(channels=1, resolution=8, num_classes=10, width=4).train()
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    f1 = model.features(x)
    f2 = model.features(x[:2])  # eval mode: a sample's features do not depend on its batch
    assert torch.allclose(f1[:2], f2, atol=1e-6) and model.training and model.net.training
    assert f1.shape == (5, model.num_features)
    probs = model.predict_proba(x)
    assert torch.allclose(probs.sum(1), torch.ones(5))
    labels = model.predict_labels(x, batch_size=2)
    assert labels.dtype == torch.int64 and torch.equal(labels, probs.argmax(1))
    assert model.accuracy_of(x, labels) == 1.0
    with pytest.raises(ValueError, match=r"\(1, 8, 8\)"):
        model.features(torch.zeros(2, 1, 16, 16))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """configs/classifier/digits.yaml as `python train.py fit -c ...` runs it, timed."""
    tmp = tmp_path_factory.mktemp("classifier")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        cli = main(_args(tmp))
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return cli, seconds, tmp


def test_digits_config_reaches_97_percent(digits_run):
    cli, seconds, tmp = digits_run
    val_acc = float(cli.trainer.callback_metrics["val/acc"])
    best = float(cli.trainer.checkpoint_callback.best_model_score)
    assert val_acc >= 0.97 and best >= val_acc
    assert seconds < FIT_BUDGET_S, f"fit took {seconds:.0f} s"
    print(f"digits classifier: val/acc {val_acc:.4f} (best {best:.4f}) in {seconds:.1f} s")
    run = Path(cli.trainer.log_dir)
    assert run == tmp / "classifier" / "digits" / "version_0"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-epoch=") for name in checkpoints)
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(cli.trainer.logged_metrics) | set(
        cli.trainer.callback_metrics
    )


def test_checkpoint_round_trip_gives_identical_features(digits_run):
    cli, _, _ = digits_run
    path = cli.trainer.checkpoint_callback.best_model_path
    loaded = Classifier.load_from_checkpoint(path, map_location="cpu")
    assert loaded.num_features == 64 and loaded.hparams.channels == 1 and loaded.hparams.resolution == 32
    images, labels = next(iter(cli.datamodule.val_dataloader()))
    reference = Classifier.load_from_checkpoint(path, map_location="cpu")
    assert torch.equal(loaded.features(images), reference.features(images))
    # The best checkpoint classifies the validation batch as well as the logged accuracy says.
    assert loaded.accuracy_of(images, labels) >= 0.95


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_test_subcommand_logs_test_accuracy(digits_run, tmp_path):
    cli, _, _ = digits_run
    best = cli.trainer.checkpoint_callback.best_model_path
    test = main(_args(tmp_path, f"--ckpt_path={best}", subcommand="test"))
    assert float(test.trainer.callback_metrics["test/acc"]) >= 0.95
    predict = main(_args(tmp_path, f"--ckpt_path={best}", "--trainer.limit_predict_batches=1", subcommand="predict"))
    probs = predict.trainer.predict_loop.predictions[0]
    assert probs.shape == (64, 10) and torch.allclose(probs.sum(1), torch.ones(64))


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--model.init_args.num_classes=5", "model.init_args.num_classes"),
        ("--model.init_args.resolution=16", "model.init_args.resolution"),
        ("--model.init_args.channels=3", "channels"),
    ],
)
def test_model_must_match_the_data(tmp_path, override, fragment):
    with pytest.raises(ValueError, match=fragment):
        main(_args(tmp_path, override, "--trainer.fast_dev_run=true"))


def test_an_endless_run_is_refused_with_a_hint(tmp_path):
    with pytest.raises(ValueError, match="max_epochs"):
        main(_args(tmp_path, "--trainer.max_epochs=-1"))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_dataset_configs_parse(name, capsys):
    config = str(ROOT / "configs" / "classifier" / f"{name}.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", config, "--print_config"])
    assert exc.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "lightning_modules.Classifier" in printed and f"root: data/{name}" in printed


def _write_tiny_mnist(root: Path, per_class: int = 4) -> None:
    """The four IDX files (big-endian int32 magic and sizes, then uint8 data) in root/MNIST/raw."""
    import numpy as np

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 10 * per_class), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(np.array([2051, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">i4").tobytes() + labels.tobytes())


def _write_tiny_cifar10(root: Path, per_batch: int = 10) -> None:
    """The python-version pickles (data uint8 [n, 3072], labels) in root/cifar-10-batches-py."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": list(range(per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


@pytest.mark.parametrize("name, write", [("mnist", _write_tiny_mnist), ("cifar10", _write_tiny_cifar10)])
def test_dataset_configs_run_on_tiny_fixtures(tmp_path, name, write):
    """The MNIST / CIFAR-10 configs build and take one step on tiny datasets in the native formats."""
    write(tmp_path / "data")
    config = str(ROOT / "configs" / "classifier" / f"{name}.yaml")
    cli = main(
        _args(
            tmp_path,
            f"--data.init_args.root={tmp_path / 'data'}",
            "--data.init_args.batch_size=4",
            "--data.init_args.num_workers=0",
            "--data.init_args.val_fraction=0.25",
            "--trainer.fast_dev_run=true",
            config=config,
        )
    )
    assert cli.trainer.global_step == 1
    assert cli.datamodule.image_shape == (cli.model.hparams.channels, 32, 32)
