"""SemanticMemory.search returns numpy arrays filled by the library: exact answers (checked
against numpy brute force) from an IVF-Flat L2 index searched over every list, padding, shapes,
dtypes and errors."""
import numpy as np
import pytest

import hmst


def _clustered(rng, n, dim):
    centres = 3 * rng.standard_normal((8, dim)).astype(np.float32)
    return (centres[rng.integers(0, 8, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def test_search_fills_numpy_arrays_with_exact_answers():
    rng = np.random.default_rng(4)
    dim = 40
    x = _clustered(rng, 1000, dim)
    q = _clustered(rng, 33, dim)
    with hmst.SemanticMemory(dim, index="IVF8,Flat", metric="l2", nprobe=8) as mem:
        mem.add(x, ids=np.arange(1000, dtype=np.int64) * 2)
        assert mem.stats()["phase"] == "ready"
        ids, scores = mem.search(q, k=5)  # nprobe 8 of 8 lists: exact
        assert ids.shape == (33, 5) and ids.dtype == np.int64
        assert scores.shape == (33, 5) and scores.dtype == np.float32
        assert ids.flags["C_CONTIGUOUS"] and scores.flags["C_CONTIGUOUS"]
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # [33, 1000]
        want = np.argsort(d, axis=1, kind="stable")[:, :5]
        assert (ids == want * 2).all()
        np.testing.assert_allclose(scores, np.take_along_axis(d, want, 1), rtol=1e-4)
        # one query as a 1-D vector: one row, the same answer as in the batch
        one_ids, one_scores = mem.search(q[3], k=5)
        assert one_ids.shape == (1, 5)
        assert (one_ids[0] == ids[3]).all()
        np.testing.assert_allclose(one_scores[0], scores[3], rtol=1e-5)


def test_batched_search_equals_one_query_at_a_time():
    """A batch that shares lists is scanned list by list; its answers are each query's own,
    bit for bit, also when only some lists are probed and with duplicated vectors (ties)."""
    rng = np.random.default_rng(9)
    dim = 24
    x = _clustered(rng, 1200, dim)
    x = np.concatenate([x, x[:100]])  # exact duplicates: equal distances whose order must hold
    q = np.concatenate([_clustered(rng, 60, dim), x[:4]])
    with hmst.SemanticMemory(dim, index="IVF8,Flat", metric="l2") as mem:
        mem.add(x)
        assert mem.stats()["phase"] == "ready"
        for k, nprobe in ((5, 2), (40, 3)):
            ids, scores = mem.search(q, k=k, nprobe=nprobe)
            for i in range(len(q)):
                one_ids, one_scores = mem.search(q[i], k=k, nprobe=nprobe)
                assert np.array_equal(one_ids[0], ids[i]), (k, nprobe, i)
                assert np.array_equal(one_scores[0], scores[i]), (k, nprobe, i)


def test_search_pads_with_minus_one_and_nan():
    with hmst.SemanticMemory(2, index="Flat", metric="l2") as mem:
        mem.add(np.array([[0, 0], [3, 4]], dtype=np.float32))
        ids, scores = mem.search(np.zeros(2, dtype=np.float32), k=4)
        assert ids.tolist() == [[0, 1, -1, -1]]
        assert scores[0, :2].tolist() == [0.0, 25.0]
        assert np.isnan(scores[0, 2:]).all()


def test_search_bad_input_errors():
    with hmst.SemanticMemory(4, index="Flat", metric="l2") as mem:
        with pytest.raises(hmst.HMSTError, match="not_found|empty"):
            mem.search(np.zeros(4, dtype=np.float32), k=1)
        mem.add(np.eye(4, dtype=np.float32))
        with pytest.raises(hmst.HMSTError, match=r"shape \(n, 4\)"):
            mem.search(np.zeros((2, 3), dtype=np.float32))
        with pytest.raises(hmst.HMSTError, match="k 0 must be in 1"):
            mem.search(np.zeros(4, dtype=np.float32), k=0)
        with pytest.raises(hmst.HMSTError, match="non-finite"):
            mem.search(np.array([0, np.nan, 0, 0], dtype=np.float32), k=1)
        with pytest.raises(hmst.HMSTError, match="nprobe"):
            mem.search(np.zeros(4, dtype=np.float32), k=1, nprobe=-1)
