"""Lightning callbacks shared by the methods."""

from callbacks.checkpoint import Checkpoint
from callbacks.condition_number import ConditionNumber
from callbacks.de_gan_eval import DEGANEvaluation
from callbacks.generative_metrics import GenerativeMetrics
from callbacks.known_source import KnownSourceEvaluation
from callbacks.nan_guard import NonFiniteGuard, NonFiniteLossError
from callbacks.paths import run_dir
from callbacks.robustness import NoiseRobustness
from callbacks.sample_grid import SampleGrid
from callbacks.slurm_requeue import RequeueAtBatchEnd
from callbacks.step_seed import StepSeed, step_seed

__all__ = [
    "Checkpoint",
    "ConditionNumber",
    "DEGANEvaluation",
    "GenerativeMetrics",
    "KnownSourceEvaluation",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "NoiseRobustness",
    "RequeueAtBatchEnd",
    "SampleGrid",
    "StepSeed",
    "run_dir",
    "step_seed",
]
