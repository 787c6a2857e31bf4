import os
from pathlib import Path

import pytest
from runs_guard import RunsReadGuard

# Lightning's CLI calls jsonargparse APIs that jsonargparse has deprecated; not ours to fix.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

RUNS = Path(__file__).resolve().parents[1] / "runs"


@pytest.fixture(autouse=True)
def no_reads_of_earlier_runs():
    """Fail a test that reads files under the repository's runs/ it did not write (see runs_guard.py)."""
    with RunsReadGuard(str(RUNS)) as guard:
        yield
    if guard.unwritten_reads:
        shown = ", ".join(sorted(set(guard.unwritten_reads))[:3])
        pytest.fail(
            f"the test read {shown} under {RUNS}/ without writing it: it passes only where that run was made. "
            "Write what the test reads (tmp_path), or override the config key that points there.",
            pytrace=False,
        )
