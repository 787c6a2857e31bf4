"""Deprecated alias of ``python -m tools rni-compare`` (removed in the next release)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.errors import run_alias  # noqa: E402

run_alias("python scripts/rni_compare.py", "tools", "rni-compare")
