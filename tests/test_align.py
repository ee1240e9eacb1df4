"""DTW between two renderings of the same words: a monotone path with bounded slopes, from end to end."""

from __future__ import annotations

import numpy as np
import pytest

from audio.align import dtw_path


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_sequence_aligns_with_itself_on_the_diagonal():
    a = unit(np.random.default_rng(0).standard_normal((30, 8)))
    assert np.array_equal(dtw_path(a, a), np.stack([np.arange(30)] * 2, axis=1))


def test_a_slowed_copy_is_found_frame_by_frame():
    a = unit(np.random.default_rng(1).standard_normal((40, 8)))
    slow = np.repeat(a, 3, axis=0)[::2]  # 1.5 x longer: every frame of a held for 1.5 frames
    path = dtw_path(a, slow)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (39, len(slow) - 1)
    steps = np.diff(path, axis=0)
    assert (steps >= 0).all() and (steps.sum(axis=1) >= 1).all()  # monotone, always moving
    for i, j in path:  # each frame of the copy is matched with the frame it repeats
        assert np.allclose(slow[j], a[i]) or np.allclose(slow[j], a[min(i + 1, 39)]) or np.allclose(slow[j], a[i - 1])


def test_lengths_beyond_the_slope_limits_are_refused():
    a = unit(np.ones((10, 4)))
    with pytest.raises(ValueError, match="factor of 2"):
        dtw_path(a, unit(np.ones((25, 4))))
