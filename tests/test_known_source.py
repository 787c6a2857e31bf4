"""The known-entropy source, the generator's q over its prototypes, and D(p||q) against d(eps)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from analysis.divergence_entropy import entropy_bits, solve_exact
from core.noise import NoiseSpec
from datamodules import KnownSourceDataModule
from datamodules.known_source import largest_remainder_counts, law_probabilities
from evaluation.known_source import (
    enumerate_discrete_noise,
    known_source_report,
    nearest_prototype,
    plot_tradeoff,
    prototype_counts,
)
from lightning_modules.nets.dcgan import DCGANGenerator
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "noise_dim" / "known_source.yaml")


@pytest.mark.parametrize("law, param", [("geometric", 0.6), ("zipf", 1.2), ("uniform", 0.0)])
def test_the_data_follows_p_exactly(law, param):
    dm = KnownSourceDataModule(num_prototypes=8, law=law, law_param=param, resolution=8, num_images=1000)
    dm.setup("fit")
    p = dm.probabilities
    images, labels = dm.train_set.tensors
    counts = np.bincount(labels.numpy(), minlength=8)
    assert counts.sum() == 1000 and np.all(np.abs(counts - 1000 * p) < 1)
    # Pearson's chi-square against p: far below even its median under i.i.d. sampling (6.35 for 7
    # degrees of freedom), and within the rounding bound sum 1 / (N p_k) of |count - N p| < 1.
    stat = float(((counts - 1000 * p) ** 2 / (1000 * p)).sum())
    assert stat < chi2.ppf(0.5, df=7) / 100 and stat < (1 / (1000 * p)).sum()
    # Every image is exactly the prototype of its label.
    assert torch.equal(images, dm.prototypes[labels])
    assert dm.entropy_bits == pytest.approx(entropy_bits(p))
    # One epoch of the shuffled training loader (drop_last leaves out fewer than one batch).
    seen = torch.cat([y for _, y in dm.train_dataloader()])
    assert abs(len(seen) - 1000) < dm.batch_size
    assert np.all(np.abs(np.bincount(seen.numpy(), minlength=8) / len(seen) - p) < 0.02)


def test_laws_and_given_probabilities():
    assert np.allclose(law_probabilities(3, "geometric", 0.5), np.array([4, 2, 1]) / 7)
    assert np.allclose(law_probabilities(3, "zipf", 1.0), np.array([1, 1 / 2, 1 / 3]) / (11 / 6))
    dm = KnownSourceDataModule(num_prototypes=3, probs=[0.5, 0.25, 0.25], resolution=8, num_images=40)
    assert dm.entropy_bits == pytest.approx(1.5)
    counts = largest_remainder_counts(np.array([0.5, 0.3, 0.2]), 7)
    assert counts.tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4: the one left over goes to the largest remainder
    # Distinct prototypes: digits 0..7, then the second image of digit 0.
    protos = KnownSourceDataModule(num_prototypes=11, law="uniform", resolution=8, num_images=110).prototypes
    assert torch.cdist(protos.flatten(1), protos.flatten(1)).add(torch.eye(11) * 99).min() > 0


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"probs": [0.5, 0.5]}, "probs"),
        ({"num_prototypes": 2, "probs": [0.5, 0.6]}, "probs"),
        ({"law": "geometric", "law_param": 1.5}, "law_param"),
        ({"law": "zipf", "law_param": 1.0, "num_images": 4, "num_prototypes": 8}, "num_images"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        KnownSourceDataModule(**{"num_prototypes": 3, **kwargs})


def test_discrete_noise_is_enumerated_once_per_value():
    spec = NoiseSpec(dim=3, distribution="discrete", bits=2)
    z = enumerate_discrete_noise(spec)
    assert z.shape == (64, 3) and torch.unique(z, dim=0).shape[0] == 64
    assert set(z.flatten().tolist()) == set(spec.levels().tolist())


class _Collapsed(torch.nn.Module):
    """A 'generator' that maps the sign of z_0 to one of two prototypes (1 bit used)."""

    def __init__(self, prototypes, first=0, second=0):
        super().__init__()
        self.prototypes, self.first, self.second = prototypes, first, second

    def forward(self, z):
        pick = torch.where(z[:, 0] < 0, self.first, self.second)
        return self.prototypes[pick] + 0.01 * torch.randn_like(self.prototypes[pick])


@pytest.mark.parametrize("noise", [NoiseSpec(dim=1, distribution="discrete", bits=1),
                                   NoiseSpec(dim=2, distribution="discrete", bits=3)])
def test_a_collapsed_generator_lies_above_the_curve(noise):
    dm = KnownSourceDataModule(num_prototypes=4, probs=[0.4, 0.3, 0.2, 0.1], resolution=8, num_images=100)
    eps = noise.entropy_bits()
    # Always one prototype: q is a point mass.
    counts, method = prototype_counts(_Collapsed(dm.prototypes), noise, dm.prototypes)
    assert method == "exact" and counts.tolist() == [2**eps, 0, 0, 0]
    report = known_source_report(dm.probabilities, counts, eps)
    assert report["D_kl"] == math.inf and report["H_q_bits"] == 0
    for name in ("kl", "js", "tv"):
        assert report[f"above_curve_{name}"] and report[f"D_{name}"] >= report[f"d_eps_{name}"]
    assert report["D_tv"] == pytest.approx(0.6)  # TV to the point mass on the most likely prototype
    # The result is the gap D - d(eps) >= 0 (inf where D is); D >= d(eps) itself holds by construction.
    assert report["gap_tv"] == pytest.approx(0.6 - report["d_eps_tv"]) and report["gap_kl"] == math.inf
    assert all(report[f"gap_{d}"] >= 0 for d in ("js", "tv"))
    # Two prototypes, half the noise each: q = (1/2, 1/2, 0, 0).
    counts, _ = prototype_counts(_Collapsed(dm.prototypes, 0, 1), noise, dm.prototypes)
    report = known_source_report(dm.probabilities, counts, eps)
    assert report["q"] == [0.5, 0.5, 0.0, 0.0] and report["H_q_bits"] == pytest.approx(1.0)
    assert report["d_eps_js"] == pytest.approx(solve_exact(dm.probabilities, eps, "js").d)
    assert report["D_js"] >= report["d_eps_js"] and report["D_tv"] == pytest.approx(0.3)
    # The smoothed KL is finite (a documented estimate, not bound by the theorem).
    assert math.isfinite(report["kl_smoothed_bits"]) and report["smoothing"] == 0.5


@pytest.mark.parametrize("bits, dim", [(1, 1), (1, 3), (2, 2), (4, 2)])
def test_entropy_of_q_never_exceeds_the_noise_entropy(bits, dim):
    torch.manual_seed(bits * 10 + dim)
    dm = KnownSourceDataModule(num_prototypes=8, resolution=8, num_images=200)
    spec = NoiseSpec(dim=dim, distribution="discrete", bits=bits)
    g = DCGANGenerator(dim, 8, 1, width=8).eval()
    counts, method = prototype_counts(g, spec, dm.prototypes)
    assert method == "exact" and counts.sum() == 2 ** (bits * dim)
    report = known_source_report(dm.probabilities, counts, spec.entropy_bits())
    assert report["H_q_bits"] <= spec.entropy_bits() + 1e-12  # at most 2^eps distinct outputs, each 2^-eps
    assert all(report[f"above_curve_{d}"] for d in ("kl", "js", "tv"))


def test_continuous_noise_is_sampled():
    dm = KnownSourceDataModule(num_prototypes=4, law="uniform", resolution=8, num_images=100)
    g = DCGANGenerator(3, 8, 1, width=4).eval()
    counts, method = prototype_counts(g, NoiseSpec(dim=3), dm.prototypes, num_samples=500)
    assert method == "sampled" and counts.sum() == 500
    # The nearest prototype of a prototype is itself.
    assert nearest_prototype(dm.prototypes, dm.prototypes).tolist() == [0, 1, 2, 3]


def test_fit_writes_the_report_and_the_plot(tmp_path):
    cli = main(
        [
            "fit",
            "-c",
            CONFIG,
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.max_steps=4",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.log_every_n_steps=1",
            "--trainer.enable_model_summary=false",
            "--model.init_args.g_width=4",
            "--model.init_args.d_width=4",
            "--model.init_args.noise.bits=2",
            "--model.init_args.noise.dim=3",
        ]
    )
    run = Path(cli.trainer.log_dir)
    report = json.loads((run / "known_source.json").read_text())
    assert report["eps_bits"] == 6 and report["method"] == "exact" and sum(report["counts"]) == 64
    assert report["H_p_bits"] == pytest.approx(2.3022, abs=1e-4)
    assert all(report[f"above_curve_{d}"] for d in ("kl", "js", "tv"))
    assert "known_source/D_js" in cli.trainer.callback_metrics
    path = plot_tradeoff([report, {**report, "eps_bits": 2.0, "D_kl": 0.5}], str(tmp_path / "tradeoff.png"))
    assert Path(path).stat().st_size > 10_000
