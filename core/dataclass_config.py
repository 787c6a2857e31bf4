"""Config values that are dataclasses (the noise spec, the RNI options): built from their dict form.

LightningCLI gives a nested group of keys; checkpoints store the plain dict (so they load
with ``weights_only``).  :func:`coerce_dataclass` accepts either and names unknown keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["coerce_dataclass"]


def coerce_dataclass(cls: type[T], value: Any, key: str) -> T:
    """``value`` if it is a ``cls``, else ``cls(**value)`` from a dict; unknown keys name ``key``."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {key} key(s): {', '.join(sorted(unknown))}")
        return cls(**value)
    raise TypeError(f"expected a {cls.__name__} or a dict, got {type(value).__name__}")
