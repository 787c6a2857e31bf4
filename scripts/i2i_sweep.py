"""Deprecated alias of ``python -m tools sweep-i2i`` (removed in the next release)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.errors import run_alias  # noqa: E402

run_alias("python scripts/i2i_sweep.py", "tools", "sweep-i2i")
