"""Lightning callbacks shared by the methods."""

from callbacks.sample_grid import SampleGrid

__all__ = ["SampleGrid"]
