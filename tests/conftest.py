"""Shared fixtures: the `device` every kernel test runs on, seeded random generators, thread-count
and SIMD-level switches that always restore the global setting, and the skip rule for tests marked
`cuda`. Array helpers and the per-family testers live in tests/testing.py."""
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
    why = "cnnops was built without CUDA" if not cnnops.cuda.is_compiled() else "no usable GPU or driver"
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: cnnops.cuda.is_available() is False ({why})")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """The device a kernel test runs on: "cpu" always, "cuda" where a GPU is available (the
    collection hook above skips it elsewhere). tests/testing.py's to_device / to_host move NumPy
    arrays there and back."""
    return request.param


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
def one_thread(threads):
    """Run the test on one thread: finite differences and layer tests run thousands of tiny
    kernels, where OpenMP wake-ups cost more than the work (the op tests cover the threaded
    kernels)."""
    threads(1)


@pytest.fixture
def portable_simd():
    """Run the test with the portable (non-AVX2) kernels, then restore the previous level."""
    before = cnnops.simd_level()
    assert cnnops.set_simd_level("portable") == "portable"
    yield
    cnnops.set_simd_level(before)
    assert cnnops.simd_level() == before
