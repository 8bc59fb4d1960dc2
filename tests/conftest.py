"""Shared fixtures: seeded random generators, thread-count and SIMD-level switches that always
restore the global setting, and the skip rule for tests marked `cuda`."""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

import cnnops

# reference.py sits next to this file; make `import reference` work however pytest is invoked.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(config, items):
    if cnnops.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU available (cnnops.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's node id: fixed across runs, different between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def threads():
    """Yields cnnops.set_num_threads; the thread count in force before the test is restored."""
    before = cnnops.get_num_threads()
    yield cnnops.set_num_threads
    cnnops.set_num_threads(before)


@pytest.fixture
def portable_simd():
    """Run the test with the portable (non-AVX2) kernels, then restore the previous level."""
    before = cnnops.simd_level()
    assert cnnops.set_simd_level("portable") == "portable"
    yield
    cnnops.set_simd_level("portable" if before == "portable" else "avx2")
    assert cnnops.simd_level() == before
