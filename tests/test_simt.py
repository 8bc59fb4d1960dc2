"""The SIMT emulator (csrc/core/simt): kernels written in CUDA's spelling run on the CPU with
threads as fibers. Its self-test kernels (csrc/core/simt/selftest.cpp) are compared with NumPy:
a block reduction through warp shuffles and shared memory, a tiled transpose through shared
memory, a ballot compaction; barrier bugs must be reported as deadlocks, not hang. Then the other
device primitives: every atomic on a histogram of many concurrent blocks; cp.async pipelines,
their group semantics and their misuse (poison before the wait, an error for copies left behind);
tensor-core mma against fragment layouts written here from the PTX ISA text, independently of the
emulator's, with tf32/f16/bf16 rounding; ldmatrix; an f16 GEMM combining all three."""
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


# ---- atomics ----

@pytest.mark.parametrize("n, nbins", [(1, 1), (300, 1), (1000, 7), (20000, 64), (5000, 1000)])
def test_atomics_on_a_histogram_are_exact(rng, n, nbins):
    """Blocks of 128 threads on several OS threads update the same cells with every atomic."""
    bins = rng.integers(0, nbins, n)
    quarters = rng.integers(0, 4, n)
    x = (bins + quarters / 4).astype(np.float32)
    out = run("atomics", x, nbins)
    rows, tickets, totals = out[:23 * nbins].reshape(23, nbins), out[23 * nbins:-6].reshape(3, n), out[-6:]
    i = np.arange(n, dtype=np.int64)
    count = np.bincount(bins, minlength=nbins)
    h32 = (i.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    h64 = i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
    ll = (i - n // 2) * 3000000007

    def per_bin(values, reduce, empty):
        res = np.full(nbins, empty, dtype=values.dtype)
        for b in np.unique(bins):
            res[b] = reduce(values[bins == b])
        return res

    u64 = rows.view(np.uint64)
    assert np.array_equal(rows[0], count)                       # shared then global atomicAdd(int)
    assert np.array_equal(rows[1], count)                       # atomicAdd(unsigned)
    assert np.array_equal(u64[2], count.astype(np.uint64))      # atomicAdd(unsigned long long)
    assert np.array_equal(rows[3], np.bincount(bins, quarters, nbins).astype(np.int64))  # float
    assert np.array_equal(rows[4], np.bincount(bins, 4 * bins + quarters, nbins).astype(np.int64))  # double
    assert np.array_equal(rows[5], -count)                      # atomicSub(int)
    assert np.array_equal(rows[6], per_bin(i, np.max, -1))
    assert np.array_equal(rows[7], per_bin(i, np.min, 1 << 30))
    assert np.array_equal(rows[8], per_bin(h32.astype(np.int64), np.max, 0))
    assert np.array_equal(rows[9], per_bin(h32.astype(np.int64), np.min, 0xFFFFFFFF))
    assert np.array_equal(rows[10], per_bin(ll, np.max, -(1 << 62)))
    assert np.array_equal(rows[11], per_bin(ll, np.min, 1 << 62))
    assert np.array_equal(u64[12], per_bin(h64, np.max, np.uint64(0)))
    assert np.array_equal(u64[13], per_bin(h64, np.min, np.uint64(2**64 - 1)))
    bit32 = np.left_shift(np.uint64(1), (i % 32).astype(np.uint64))
    bit64 = np.left_shift(np.uint64(1), (i % 64).astype(np.uint64))
    assert np.array_equal(rows[14], per_bin(bit32, np.bitwise_or.reduce, np.uint64(0)).astype(np.int64))
    assert np.array_equal(rows[15], 0xFFFFFFFF & ~per_bin(bit32, np.bitwise_or.reduce, np.uint64(0)).astype(np.int64))
    assert np.array_equal(rows[16], per_bin(h32, np.bitwise_xor.reduce, np.uint64(0)).astype(np.int64))
    assert np.array_equal(u64[17], per_bin(bit64, np.bitwise_or.reduce, np.uint64(0)))
    assert np.array_equal(u64[18], ~per_bin(bit64, np.bitwise_or.reduce, np.uint64(0)))
    x4 = (4 * x).astype(np.int64)
    present = count > 0
    assert np.array_equal(rows[19][present], per_bin(x4, np.max, 0)[present])  # float max by atomicCAS(int)
    assert np.array_equal(rows[20][present], per_bin(x4, np.min, 0)[present])  # double min by atomicCAS(ull)
    assert np.array_equal(rows[21], present.astype(np.int64))  # one successful claim per bin
    claimed = rows[22][present]
    assert np.array_equal(bins[claimed], np.flatnonzero(present))  # ... by an element of that bin
    for t in tickets:  # atomicAdd, atomicInc, atomicDec hand out every ticket exactly once
        assert np.array_equal(np.sort(t), i)
    assert totals[0] == 0 and totals[1] == n - 1  # atomicInc wrapped to 0, atomicDec to the limit
    assert list(totals[2:5]) == [n * (n + 1) // 2] * 3  # atomicExch: nothing lost or duplicated
    assert totals[5] == (i % 1024).sum()


# ---- cp.async ----

POISON = 0xFFFFFFFF  # what the emulator writes into a cp.async destination until the copy is waited for


@pytest.mark.parametrize("nbytes", [4, 8, 16])
@pytest.mark.parametrize("n", [1, 3, 255, 256, 1000, 5001])
def test_cp_async_pipeline_copies_and_zero_fills(rng, nbytes, n):
    x = rng.standard_normal(n).astype(np.float32)
    out = run("cp_async_pipeline", x, nbytes)
    tiles = -(-n // 256)
    np.testing.assert_array_equal(out[:n], 2 * x)
    padded = np.zeros(tiles * 256, np.float32)
    padded[:n] = x
    ref = padded.reshape(tiles, 4, 64).astype(np.float64).sum(axis=1).ravel()  # zero-filled tail, not poison
    np.testing.assert_allclose(out[n:], ref, rtol=1e-6, atol=1e-6)


def test_cp_async_read_before_wait_sees_poison(rng):
    x = rng.standard_normal(128).astype(np.float32)
    out = run("cp_async_missing_wait", x)
    assert np.all(out[:64].view(np.uint32) == POISON)
    np.testing.assert_array_equal(out[64:], np.roll(x[:64], -1))


def test_cp_async_wait_group_completes_all_but_the_newest(rng):
    x = rng.standard_normal(128).astype(np.float32)
    rec = run("cp_async_groups", x).view(np.uint32)  # (record, destination, lane)
    data = x.reshape(4, 32).view(np.uint32)
    landed = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # after wait_group 2, 1, 0 of three groups
    for r, row in enumerate(landed):
        for g, done in enumerate(row):
            np.testing.assert_array_equal(rec[r, g], data[g] if done else POISON)
    assert np.all(rec[3, 3] == POISON)  # a copy not committed is not waited for by wait_group 0
    np.testing.assert_array_equal(rec[3, :3], data[:3])
    np.testing.assert_array_equal(rec[4], data)  # wait_all commits it, then waits


CULPRIT = r"thread \(5, 0, 0\) of block \(1, 0, 0\)"


@pytest.mark.parametrize("mode, message", [
    (0, CULPRIT + r" returned with 1 cp.async copies never waited for \(0 not committed\)"),
    (1, CULPRIT + r" returned with 1 cp.async copies never waited for \(1 not committed\)"),
    (2, r"cp.async of 16 bytes needs 16-byte aligned addresses, got a destination 0 and a source 4 .*\(" + CULPRIT),
])
def test_cp_async_misuse_is_an_error(mode, message):
    with pytest.raises(RuntimeError, match="SIMT emulator: " + message):
        run("cp_async_misuse", np.zeros(128, np.float32), mode)
    np.testing.assert_allclose(run("block_sum", np.ones(10, np.float32), 32), [10.0])


# ---- number formats (NumPy references written from the format definitions) ----

def f32_bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)


def tf32_rna(a):
    """cvt.rna.tf32.f32 of finite values: nearest, ties away from zero (add half a unit, truncate)."""
    return ((f32_bits(a) + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)


def tf32_trunc(a):
    return (f32_bits(a) & 0xFFFFE000).astype(np.uint32).view(np.float32)


def bf16_bits(a):
    """bfloat16 of finite values, round to nearest even."""
    u = f32_bits(a)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(a):
    return (bf16_bits(a).astype(np.uint32) << 16).view(np.float32)


def f16_round(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def test_to_tf32_rounds_to_nearest_ties_away(rng):
    x = (rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000)).astype(np.float32)
    ties = (f32_bits(x[:200]) & ~np.uint64(0x1FFF)) | 0x1000  # exactly halfway between two tf32 values
    x[:200] = ties.astype(np.uint32).view(np.float32)
    got = run("to_tf32", x)
    np.testing.assert_array_equal(got.view(np.uint32), tf32_rna(x).view(np.uint32))
    assert np.all(np.abs(got[:200]) > np.abs(x[:200]))  # ties go away from zero (not to even)
    special = np.array([np.inf, -np.inf, np.finfo(np.float32).max, np.nan, 0.0, -0.0], np.float32)
    got = run("to_tf32", special)
    assert got[0] == np.inf and got[1] == -np.inf and got[2] == np.inf and np.isnan(got[3])
    assert np.array_equal(got[4:].view(np.uint32), special[4:].view(np.uint32))


def test_pack_f16x2_rounds_like_numpy(rng):
    x = (rng.standard_normal(4000) * 2.0 ** rng.integers(-28, 18, 4000)).astype(np.float32)  # subnormal to overflow
    ties = (f32_bits(x[:400]) & ~np.uint64(0x1FFF)) | 0x1000  # halfway between two normal halves
    x[:400] = ties.astype(np.uint32).view(np.float32)
    x[400:408] = [65504, 65519.996, 65520, -65520, 2**-24, 2**-25, 3 * 2**-26, 0.0]
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16).astype(np.uint32)
    got = run("pack_f16x2", x).view(np.uint32)
    np.testing.assert_array_equal(got, ref[0::2] | ref[1::2] << 16)


def test_pack_bf16x2_rounds_to_nearest_even(rng):
    x = (rng.standard_normal(4000) * 10.0 ** rng.integers(-30, 30, 4000)).astype(np.float32)
    ties = (f32_bits(x[:400]) & ~np.uint64(0xFFFF)) | 0x8000
    x[:400] = ties.astype(np.uint32).view(np.float32)
    ref = bf16_bits(x).astype(np.uint32)
    got = run("pack_bf16x2", x).view(np.uint32)
    np.testing.assert_array_equal(got, ref[0::2] | ref[1::2] << 16)
    assert np.any(ref[:400] & 1 == 0) and np.all(ref[:400] & 1 == 0)  # every tie went to the even neighbour


def test_toolkit_half_conversions_agree(rng):
    """Where the CUDA headers are on the include path, kernels get cuda_fp16.h / cuda_bf16.h too."""
    x = (rng.standard_normal(1000) * 2.0 ** rng.integers(-20, 15, 1000)).astype(np.float32)
    try:
        got = run("toolkit_half", x).view(np.uint32)
    except NotImplementedError:
        pytest.skip("built without the CUDA toolkit headers")
    np.testing.assert_array_equal(got[:, 0], x.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(got[:, 1], bf16_bits(x))


def test_vector_types_load_and_store(rng):
    x = rng.standard_normal(4 * 300).astype(np.float32)
    np.testing.assert_array_equal(run("reverse4", x), x.reshape(-1, 4)[:, ::-1].ravel())


# ---- tensor cores: fragment layouts as the PTX ISA states them ("Matrix Fragments for
# mma.m16n8k8 / mma.m16n8k16"), groupID = lane >> 2, threadID_in_group = lane % 4 ----

K_OF = {"tf32": 8, "f16": 16, "bf16": 16}
TYPE_ID = {"tf32": 0, "f16": 1, "bf16": 2}


def layout(kind):
    """Per lane: the (row, col) of A, B and C held by each element, elements numbered low to high
    (tf32: one per register; f16/bf16: two per register, the first in the low 16 bits)."""
    a, b, c = [], [], []
    for lane in range(32):
        g, t = lane >> 2, lane % 4
        if kind == "tf32":
            a.append([(g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)])  # a0 a1 a2 a3
            b.append([(t, g), (t + 4, g)])  # b0 b1
        else:
            a.append([(g if i in (0, 1, 4, 5) else g + 8, t * 2 + (i & 1) + (8 if i >= 4 else 0)) for i in range(8)])
            b.append([(t * 2 + (i & 1) + (8 if i >= 2 else 0), g) for i in range(4)])
        c.append([(g if i < 2 else g + 8, t * 2 + (i & 1)) for i in range(4)])
    return np.array(a), np.array(b), np.array(c)


def encode(kind, m):
    """Matrix elements (already representable in the type) to the bits of a register element."""
    if kind == "tf32":
        return np.asarray(m, np.float32).view(np.uint32).astype(np.uint64)
    if kind == "f16":
        return np.asarray(m, np.float16).view(np.uint16).astype(np.uint64)
    return bf16_bits(m).astype(np.uint64)


def fragments(kind, A, B, C):
    """(problems, 32, 10) register files: a[0..3], b[0..1] as bit patterns, then c[0..3]."""
    la, lb, lc = layout(kind)
    per = 1 if kind == "tf32" else 2
    regs = np.zeros((len(A), 32, 10), np.uint32)
    for p in range(len(A)):
        ea = encode(kind, A[p][la[..., 0], la[..., 1]])  # (32, elements)
        eb = encode(kind, B[p][lb[..., 0], lb[..., 1]])
        if per == 2:
            ea = ea[:, 0::2] | ea[:, 1::2] << 16
            eb = eb[:, 0::2] | eb[:, 1::2] << 16
        regs[p, :, 0:4] = ea
        regs[p, :, 4:6] = eb
        regs[p, :, 6:10] = np.asarray(C[p], np.float32)[lc[..., 0], lc[..., 1]].view(np.uint32)
    return regs.view(np.float32)


def gather_d(d):
    """(problems, 32, 4) accumulator registers back to (problems, 16, 8) matrices."""
    _, _, lc = layout("tf32")
    out = np.zeros((len(d), 16, 8), np.float32)
    out[:, lc[..., 0], lc[..., 1]] = d
    return out


def rounded(kind, m):
    return {"tf32": tf32_rna, "f16": f16_round, "bf16": bf16_round}[kind](m)


def accum_tol(A, B, C):
    """fp32 accumulation of K products and C: (K + 1) units of 2**-24 of the sum of magnitudes."""
    K = A.shape[-1]
    return (K + 1) * 2.0**-24 * (np.abs(A).astype(np.float64) @ np.abs(B) + np.abs(C)) + 1e-30


@pytest.mark.parametrize("kind", ["tf32", "f16", "bf16"])
def test_mma_on_fragments_matches_numpy(rng, kind):
    K, P = K_OF[kind], 6
    A = rounded(kind, rng.standard_normal((P, 16, K)))
    B = rounded(kind, rng.standard_normal((P, K, 8)))
    C = rng.standard_normal((P, 16, 8)).astype(np.float32)
    D = gather_d(run("mma_fragments", fragments(kind, A, B, C), TYPE_ID[kind]))
    ref = A.astype(np.float64) @ B + C
    assert np.all(np.abs(D - ref) <= accum_tol(A, B, C))


@pytest.mark.parametrize("kind", ["tf32", "f16", "bf16"])
def test_mma_fragment_layout_one_hot(rng, kind):
    """Every element of A, of B and of C alone: D must be exactly that element's row/column."""
    K = K_OF[kind]
    ints = rng.integers(-8, 9, (16, K)).astype(np.float32)  # exact in every type
    probs = []
    for r in range(16):
        for k in range(K):
            A = np.zeros((16, K), np.float32)
            A[r, k] = 1
            probs.append((A, ints[:K, :8], np.zeros((16, 8), np.float32), ("A", r, k)))
    for k in range(K):
        for n in range(8):
            B = np.zeros((K, 8), np.float32)
            B[k, n] = 1
            probs.append((ints, B, np.zeros((16, 8), np.float32), ("B", k, n)))
    Z = np.zeros((16, 8), np.float32)
    probs.append((np.zeros((16, K), np.float32), np.zeros((K, 8), np.float32), np.arange(128.0).reshape(16, 8), ("C",)))
    A, B, C = (np.stack([p[i] for p in probs]) for i in range(3))
    D = gather_d(run("mma_fragments", fragments(kind, A, B, C), TYPE_ID[kind]))
    for d, (a, b, c, what) in zip(D, probs):
        want = Z.copy()
        if what[0] == "A":
            want[what[1]] = b[what[2]]
        elif what[0] == "B":
            want[:, what[2]] = a[:, what[1]]
        else:
            want = c
        np.testing.assert_array_equal(d, want, err_msg=str(what))


@pytest.mark.parametrize("kind", ["tf32", "tf32_round", "f16", "bf16"])
@pytest.mark.parametrize("M, N, K", [(16, 8, 16), (32, 24, 32), (48, 16, 64)])
def test_mma_tiles_loaded_by_a_kernel(rng, kind, M, N, K):
    """Fragments loaded from row-major matrices by the kernel; the conversions are the kernel's
    (tf32 as is: the tensor core ignores the low 13 bits; tf32_round: cnnops_to_tf32 first)."""
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    C = rng.standard_normal((M, N)).astype(np.float32)
    header = np.array([M, N, K], np.float32)
    mode = {"tf32": 0, "tf32_round": 1, "f16": 2, "bf16": 3}[kind]
    D = run("mma_tile", np.concatenate([header, A.ravel(), B.ravel(), C.ravel()]), mode)
    conv = {"tf32": tf32_trunc, "tf32_round": tf32_rna, "f16": f16_round, "bf16": bf16_round}
    Ar, Br = conv[kind](A), conv[kind](B)
    tol = accum_tol(Ar, Br, C)
    assert np.all(np.abs(D - (Ar.astype(np.float64) @ Br + C)) <= tol)
    # the tolerance tells the conversions apart: a different one (or none) would fail it
    wrong = {"tf32": [tf32_rna], "tf32_round": [tf32_trunc], "f16": [tf32_trunc, bf16_round], "bf16": [f16_round]}
    for f in wrong[kind] + [lambda m: m]:
        assert np.any(np.abs(D - (f(A).astype(np.float64) @ f(B) + C)) > tol)


def test_ldmatrix_layout(rng):
    """Lane l gives the address of one row; lanes 8m..8m+7 the rows of matrix m. Lane l receives
    row l/4, columns 2(l%4) and 2(l%4)+1 of each matrix (of its transpose with .trans)."""
    tile = rng.integers(0, 65536, (32, 8))
    perm = rng.permutation(32)
    out = run("ldmatrix", np.concatenate([tile.ravel(), perm]).astype(np.float32)).view(np.uint32)
    rows = tile[perm]  # the row each lane points at
    for l in range(32):
        plain = [rows[8 * m + l // 4, 2 * (l % 4)] | rows[8 * m + l // 4, 2 * (l % 4) + 1] << 16 for m in range(4)]
        trans = [rows[8 * m + 2 * (l % 4), l // 4] | rows[8 * m + 2 * (l % 4) + 1, l // 4] << 16 for m in range(4)]
        want = plain[:1] + plain[:2] + plain + trans[:1] + trans[:2] + trans
        np.testing.assert_array_equal(out[l], want, err_msg=f"lane {l}")


@pytest.mark.parametrize("b_kmajor", [0, 1])
@pytest.mark.parametrize("M, N, K", [(32, 16, 16), (64, 48, 64), (96, 32, 160)])
def test_f16_gemm_with_cp_async_ldmatrix_mma(rng, b_kmajor, M, N, K):
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    header = np.array([M, N, K], np.float32)
    got = run("gemm_f16", np.concatenate([header, A.ravel(), B.ravel(), np.zeros(M * N, np.float32)]), b_kmajor)
    Ar, Br = f16_round(A), f16_round(B)
    zero = np.zeros((M, N))
    assert np.all(np.abs(got - Ar.astype(np.float64) @ Br) <= accum_tol(Ar, Br, zero))
