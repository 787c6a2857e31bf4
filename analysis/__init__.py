"""Information-theoretic tools behind the experiments (no GAN training needed)."""

from analysis.float_entropy import monte_carlo_entropy_bits
from core.float_entropy import FORMATS, entropy_bits, resolve_format

__all__ = ["FORMATS", "entropy_bits", "monte_carlo_entropy_bits", "resolve_format"]
