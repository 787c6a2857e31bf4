"""Lightning callbacks shared by the methods."""

from callbacks.generative_metrics import GenerativeMetrics
from callbacks.paths import run_dir
from callbacks.sample_grid import SampleGrid

__all__ = ["GenerativeMetrics", "SampleGrid", "run_dir"]
