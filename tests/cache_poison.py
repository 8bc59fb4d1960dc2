"""NaN-poisoning of cnnops' block cache, shared by the test files whose kernels write large
outputs: an element a kernel forgets to write then stays NaN instead of an old value that might
happen to be right."""
from __future__ import annotations

import numpy as np

import cnnops


def poison_cache(nbytes, copies=1):
    """Leave NaN-filled blocks of `nbytes` in cnnops' block cache (outputs of 1 MB or more are
    recycled from it), so an output element a kernel forgets to write stays NaN."""
    cnnops.empty_cache()
    n = nbytes // 8
    blocks = [cnnops.upsample_nearest1d(np.full((1, 1, 1), np.nan), size=n) for _ in range(copies)]
    assert all(np.isnan(b).all() for b in blocks)
    del blocks
