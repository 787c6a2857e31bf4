"""Deprecated alias of ``python -m tools ganz`` (removed in the next release)."""

from core.errors import run_alias

run_alias("python -m lightning_modules.ganz", "tools", "ganz")
