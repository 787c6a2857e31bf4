"""Deprecated alias of ``python -m tools synthetic-data`` (removed in the next release)."""

from core.errors import run_alias

run_alias("python -m datamodules.synthetic", "tools", "synthetic-data")
