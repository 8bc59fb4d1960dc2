"""Package-level checks: info(), thread and SIMD settings, CUDA queries, the command line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cnnops

INFO_KEYS = {"version", "build", "simd", "cpu_avx2_fma", "cpu_avx512", "openmp", "threads", "cuda_compiled",
             "cuda_available"}


def test_version():
    assert isinstance(cnnops.__version__, str) and cnnops.__version__.count(".") >= 2
    assert cnnops.info()["version"] == cnnops.__version__


def test_info_keys_and_types():
    d = cnnops.info()
    assert INFO_KEYS <= set(d), f"missing keys: {INFO_KEYS - set(d)}"
    assert isinstance(d["build"], str) and d["build"]
    assert d["simd"] in ("avx512", "avx2+fma", "portable") and d["simd"] == cnnops.simd_level()
    assert isinstance(d["cpu_avx2_fma"], bool) and isinstance(d["cpu_avx512"], bool)
    assert d["cpu_avx2_fma"] or not d["cpu_avx512"]
    assert isinstance(d["openmp"], int) and d["openmp"] > 0
    assert d["threads"] == cnnops.get_num_threads()
    assert isinstance(d["cuda_compiled"], bool) and isinstance(d["cuda_available"], bool)
    if d["cuda_available"]:
        assert d["cuda_compiled"]
        assert len(d["cuda_devices"]) == cnnops.cuda.device_count() >= 1
    else:
        assert "cuda_devices" not in d
    if d["cuda_compiled"]:
        assert "cuda_runtime" in d


def test_threads_get_set(threads):
    n0 = cnnops.get_num_threads()
    assert isinstance(n0, int) and n0 >= 1
    for n in (1, 3, n0):
        threads(n)
        assert cnnops.get_num_threads() == n
        assert cnnops.info()["threads"] == n


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad, threads):
    n0 = cnnops.get_num_threads()
    with pytest.raises(ValueError, match=rf">= 1 and below 2\*\*31, got {bad}"):
        cnnops.set_num_threads(bad)
    assert cnnops.get_num_threads() == n0  # unchanged by the failed call


def test_threads_setting_is_used(threads, rng):
    """A kernel run with 1 thread and with 2 gives the same forward result."""
    x = rng.standard_normal((2, 8, 12, 13)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    threads(1)
    y1 = cnnops.conv2d(x, w, padding=1, algo="direct")
    threads(2)
    y2 = cnnops.conv2d(x, w, padding=1, algo="direct")
    np.testing.assert_array_equal(y1, y2)


def test_simd_level_switch(portable_simd):
    assert cnnops.simd_level() == "portable"
    got = cnnops.set_simd_level("avx2")
    # clamped to what the CPU supports
    assert got == ("avx2+fma" if cnnops.info()["cpu_avx2_fma"] else "portable")
    assert cnnops.simd_level() == got
    with pytest.raises(ValueError, match=r"'portable', 'avx2' or 'avx512', got 'sse'"):
        cnnops.set_simd_level("sse")
    assert cnnops.simd_level() == got


def test_cuda_queries():
    avail = cnnops.cuda.is_available()
    assert isinstance(avail, bool)
    assert isinstance(cnnops.cuda.is_compiled(), bool)
    n = cnnops.cuda.device_count()
    assert isinstance(n, int) and n >= 0
    if not cnnops.cuda.is_compiled():
        assert not avail and n == 0
    if not avail:
        with pytest.raises(RuntimeError, match=r"CUDA|GPU"):
            cnnops.cuda.device_name()
    else:
        assert n >= 1


@pytest.mark.cuda
def test_cuda_device_name():
    name = cnnops.cuda.device_name(0)
    assert isinstance(name, str) and name


def test_cli_info():
    r = subprocess.run([sys.executable, "-m", "cnnops", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "version" in r.stdout and cnnops.__version__ in r.stdout
    assert "simd" in r.stdout and "cuda_available" in r.stdout


def test_cli_rejects_unknown_command():
    r = subprocess.run([sys.executable, "-m", "cnnops", "frobnicate"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0


def test_host_block_cache_recycles_and_empties():
    """Large outputs are recycled through the host cache; empty_cache() gives them back."""
    x = np.random.default_rng(0).standard_normal((1, 1, 600, 600)).astype(np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    cnnops.empty_cache()
    y = cnnops.conv2d(x, w)  # 1.44 MB output: cacheable
    np.testing.assert_array_equal(y, x)
    del y
    held = cnnops._C.cached_bytes()
    assert held >= 600 * 600 * 4
    y2 = cnnops.conv2d(2 * x, w)  # reuses the block; its contents are all rewritten
    np.testing.assert_array_equal(y2, 2 * x)
    assert cnnops._C.cached_bytes() < held  # the cached block was taken, not a fresh one
    del y2
    cnnops.empty_cache()
    assert cnnops._C.cached_bytes() == 0


def test_jax_arrays_in_and_out():
    """JAX (CPU) arrays are read through DLPack and the result comes back as a JAX array."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    cpu = jax.devices("cpu")[0]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xj, wj = jax.device_put(jnp.asarray(x), cpu), jax.device_put(jnp.asarray(w), cpu)
    y = cnnops.conv2d(xj, wj, padding=1)
    assert isinstance(y, jax.Array)
    np.testing.assert_allclose(np.asarray(y), cnnops.conv2d(x, w, padding=1), rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
def test_cupy_arrays_in_and_out(rng):
    """CuPy arrays cross through DLPack without copies: convolution (forward, backward, a
    channels-last view read in place) and pooling take them and return CuPy arrays on the same
    device with the CPU kernels' values."""
    cp = pytest.importorskip("cupy")
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xc, wc = cp.asarray(x), cp.asarray(w)
    y = cnnops.conv2d(xc, wc, padding=1)
    assert isinstance(y, cp.ndarray) and y.device == xc.device
    ref = cnnops.conv2d(x, w, padding=1)
    np.testing.assert_allclose(cp.asnumpy(y), ref, rtol=1e-5, atol=1e-5)
    x_cl = cp.ascontiguousarray(xc.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels last in memory
    y_cl = cnnops.conv2d(x_cl, wc, padding=1)
    assert isinstance(y_cl, cp.ndarray) and y_cl.strides[1] == y_cl.itemsize
    np.testing.assert_allclose(cp.asnumpy(y_cl), ref, rtol=1e-5, atol=1e-5)
    gx, gw, gb = cnnops.conv2d_backward(cp.ones_like(y), xc, wc, padding=1)
    refs = cnnops.conv2d_backward(np.ones_like(ref), x, w, padding=1)
    for got, want in zip((gx, gw, gb), refs):
        assert isinstance(got, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-4, atol=1e-4)
    p = cnnops.max_pool2d(xc, 2)
    assert isinstance(p, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(p), cnnops.max_pool2d(x, 2))
