"""A training process keeps freed memory: the next step's big tensor reuses the pages of the last one."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import sys
import numpy as np
from duplex.server.process import rss_mb
from training.malloc_tuning import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
block = np.ones(200_000_000 // 8)  # a step's 200 MB tensor, every page touched
held = rss_mb()
del block
print(held - rss_mb())
"""


def given_back_mb(mode: str) -> float:
    """How much resident memory a process gives back when it frees a 200 MB block."""
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


def test_a_freed_big_block_stays_in_the_process_for_the_next_step():
    assert given_back_mb("as it comes") > 150  # unmapped: the next one faults in zeroed pages anew
    assert given_back_mb("tuned") < 10  # kept in the heap, where the next block of its size is served from
