"""Keep freed memory inside a training process, so that each step's big tensors reuse the same pages.

glibc's malloc serves every block above its mmap threshold (adjusted as the
process runs, but never above 32 MB) with a fresh mmap, and unmaps it when it
is freed; the next step's tensor of the same size then faults its way, page by
page, into new zeroed memory. A CPU training step makes many such tensors
(the logits of a batch, the codec's activations over a batch of audio), and
on a 2-core machine the kernel spent more time handing out pages than the
codec spent encoding a batch of sentences. With the thresholds raised (what
the environment variables MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_
do, set here with `mallopt` so that every way of starting a run gets it)
freed blocks stay in the heap for the next step: the sentence pool is made
about twice as fast and the speech LM's step is a fifth shorter
(bench/bench_pool.py, bench/bench_lm_train_step.py; docs/benchmarks.md).
The price is that the process keeps its peak memory until it exits, which a
training run does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30
"""Blocks up to 1 GB come from the heap (a batch's largest tensors are a few hundred MB)."""
TRIM_THRESHOLD = 2**31 - 1
"""Free memory at the heap's top is never given back while the run lasts."""


def keep_freed_memory() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process (and the workers it forks later).
    True when applied; False where the C library has no mallopt (not glibc), which changes nothing else."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD))
                and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(TRIM_THRESHOLD)))
