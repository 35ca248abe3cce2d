"""benchmarks/grid_kernel_speed.py runs on a few points and reports both paths agreeing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from nerfseg.radiance import _grid_kernel


@pytest.mark.skipif(not _grid_kernel.enabled(), reason="numba is not installed")
def test_grid_kernel_benchmark_prints_ratios_of_agreeing_paths():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "grid_kernel_speed.py"
    out = subprocess.run([sys.executable, str(script), "--points", "4096", "--threads", "1", "--repeats", "1"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    diff = float(re.search(r"feature difference: (\S+)", out).group(1))
    assert diff < 1e-5
    rows = re.findall(r"^\s+1\s+(forward[^\n]*?)\s+([\d.]+)ms\s+([\d.]+)ms\s+([\d.]+)x$", out, flags=re.M)
    assert [r[0] for r in rows] == ["forward, no gradients", "forward + backward"]
    for _, old, new, ratio in rows:
        assert float(ratio) == pytest.approx(float(old) / float(new), rel=0.05, abs=0.01)
