"""Lightning callbacks shared by the methods."""

from callbacks.paths import run_dir
from callbacks.sample_grid import SampleGrid

__all__ = ["SampleGrid", "run_dir"]
