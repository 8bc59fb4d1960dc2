"""The SIMT emulator (csrc/core/simt): kernels written in CUDA's spelling run on the CPU with
threads as fibers. Its self-test kernels (csrc/core/simt/selftest.cpp) are compared with NumPy:
a block reduction through warp shuffles and shared memory, a tiled transpose through shared
memory, a ballot compaction; and barrier bugs must be reported as deadlocks, not hang."""
from __future__ import annotations

import numpy as np
import pytest

import cnnops

C = cnnops._C


def run(name, x, arg=0.0):
    return np.from_dlpack(C._simt_selftest(name, np.ascontiguousarray(x, np.float32), float(arg)))


@pytest.mark.parametrize("threads", [32, 64, 96, 128, 256, 1024])
@pytest.mark.parametrize("n", [1, 31, 1000, 4097])
def test_block_sum_matches_numpy(rng, threads, n):
    x = rng.standard_normal(n).astype(np.float32)
    got = run("block_sum", x, threads)
    per = 4 * threads
    ref = np.array([x[i:i + per].astype(np.float64).sum() for i in range(0, n, per)])
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (32, 32), (33, 31), (70, 45), (5, 200)])
def test_tiled_transpose_is_exact(rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    assert np.array_equal(run("transpose", a), a.T)


@pytest.mark.parametrize("n", [1, 32, 100, 1000])
def test_ballot_compaction_keeps_order(rng, n):
    y = rng.standard_normal(n).astype(np.float32)
    out = run("compact", y, 0.25)
    warps = (n + 31) // 32
    vals, counts = out[:warps * 32].reshape(warps, 32), out[warps * 32:].astype(int)
    for w in range(warps):
        seg = y[w * 32:(w + 1) * 32]
        kept = seg[seg > 0.25]
        assert counts[w] == kept.size
        assert np.array_equal(vals[w, :counts[w]], kept)


@pytest.mark.parametrize("kernel, message", [
    ("divergent_syncthreads", "__syncthreads reached by some threads while others have returned"),
    ("shuffle_with_returned_lane", "waits for a lane that never comes"),
])
def test_barrier_bugs_are_deadlocks_not_hangs(kernel, message):
    with pytest.raises(RuntimeError, match=f"SIMT emulator: deadlock in block .*{message}"):
        run(kernel, np.zeros(4, np.float32))
    # the emulator is usable again after the error
    np.testing.assert_allclose(run("block_sum", np.ones(10, np.float32), 32), [10.0])


def test_fiber_switch_is_cheap():
    """A switch is user-space code (no system call): far below a microsecond."""
    assert C._simt_switch_ns(20000) < 1000.0


def test_unknown_kernel_and_bad_input_are_refused():
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        run("nope", np.zeros(1))
    with pytest.raises(TypeError, match="expected a contiguous float32 array"):
        C._simt_selftest("block_sum", np.zeros(4, np.float64), 32.0)
