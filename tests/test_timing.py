"""The peak memory a command reports is its own (tokentune.timing)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tokentune.timing import peak_rss_mb


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc: elsewhere ru_maxrss is read")
def test_peak_memory_is_the_programs_own_not_the_parents():
    """ru_maxrss keeps the peak of the process before exec: a command started from a process holding
    400 MB said it had used 400 MB. VmHWM is the running program's alone."""
    held = bytearray(400 * 1024 * 1024)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touch every page: resident
    assert peak_rss_mb() > 400
    code = "from tokentune.timing import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 1 < child < 200, child
    del held
