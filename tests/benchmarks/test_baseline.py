"""``--baseline``: another version's ``dispatcher run`` measured next to this one's.

No timing is asserted: only that the baseline's source tree comes first on the child's path and
that its run is a contender of its own, checked by the emulator like the others.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: import it from the repository
    sys.path.insert(0, str(REPO))

from benchmarks.records import Sizes  # noqa: E402  # needs the path above
from benchmarks.suite import BASELINE, Suite  # noqa: E402

SIZES = Sizes(n=40, naive_n=10, validate_ns=(10,), run_n=10, pacing_n=2, rate=10.0)


def test_the_baseline_source_tree_comes_first_on_the_childrens_path(tmp_path: Path) -> None:
    baseline = tmp_path / "other-version"
    suite = Suite(tmp_path, SIZES, baseline)
    first, *rest = suite.baseline_env()["PYTHONPATH"].split(os.pathsep)
    assert first == str(baseline)
    assert str(REPO) in rest  # benchmarks/ itself still imports


@pytest.mark.slow
def test_the_baseline_runs_as_a_contender_of_its_own_checked_by_the_emulator(
    tmp_path: Path,
) -> None:
    suite = Suite(tmp_path, SIZES, REPO)  # this very tree stands for the other version
    found = suite.dispatcher("short", baseline=True)
    assert (found.name, found.shape, found.n) == (BASELINE, "short", 40)
    assert found.check.ok, found.check
    assert found.run.returncode == 0
