"""Dense, lexical (BM25) and hybrid retrieval over a SemanticMemory or an EpisodicMemory, with
the score and rank of each part per hit, as numpy arrays.

    r = hmst.retrieve(sem, "Which city is the capital of France?", model, mode="hybrid", k=4)
    r.ids, r.scores                      # int64 (n,), float32 (n,): best first
    r.dense_scores, r.dense_ranks        # float32 NaN / int32 0 where the dense part missed the hit
    r.lexical_scores, r.lexical_ranks    # the same for BM25
    r.texts                              # list of n str

Modes: "hybrid" (reciprocal rank fusion of both parts' top n_candidates), "dense" and
"lexical" (needs no model). See include/hmst.h ("retrieval") for the formulas.
"""
import ctypes

import numpy as np

from . import _lib
from .api import HMSTError, _check, _int
from .memory import EpisodicMemory, SemanticMemory, _ptr, _text

_MODES = _lib.RETRIEVAL_MODES

# struct hmst_retrieval_hit as a numpy record (C layout, 8-byte aligned), so C fills the arrays
HIT_DTYPE = np.dtype([("id", np.int64), ("score", np.float32), ("dense_score", np.float32),
                      ("lexical_score", np.float32), ("dense_rank", np.int32), ("lexical_rank", np.int32)], align=True)
assert HIT_DTYPE.itemsize == ctypes.sizeof(_lib.RetrievalHit)


class RetrievalResult:
    """The hits of one retrieval, best first, one numpy array per field (all of length n)."""

    def __init__(self, hits, texts, mode):
        self.ids = hits["id"].copy()
        self.scores = hits["score"].copy()
        self.dense_scores = hits["dense_score"].copy()
        self.dense_ranks = hits["dense_rank"].copy()
        self.lexical_scores = hits["lexical_score"].copy()
        self.lexical_ranks = hits["lexical_rank"].copy()
        self.texts = texts
        self.mode = mode

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        rows = ", ".join(f"({i}, {s:.4f})" for i, s in zip(self.ids.tolist(), self.scores.tolist()))
        return f"RetrievalResult(mode={self.mode!r}, [(id, score)] = [{rows}])"


def _params(mode, k, n_candidates, rrf_k, dense_weight, lexical_weight, bm25_k1, bm25_b, nprobe, min_coverage=0.0):
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {sorted(_MODES)}")
    p = _lib.lib.hmst_retrieval_default_params()
    p.mode, p.k, p.n_candidates = _MODES[mode], _int("k", k, -2**31), _int("n_candidates", n_candidates, -2**31)
    p.rrf_k, p.dense_weight, p.lexical_weight = float(rrf_k), float(dense_weight), float(lexical_weight)
    p.bm25_k1, p.bm25_b, p.nprobe = float(bm25_k1), float(bm25_b), _int("nprobe", nprobe, -2**31)
    p.min_coverage = float(min_coverage)
    return p


def retrieve(memory, text, model=None, *, query=None, mode="hybrid", k=5, n_candidates=50, rrf_k=60.0,
             dense_weight=1.0, lexical_weight=1.0, bm25_k1=1.2, bm25_b=0.75, nprobe=0, min_coverage=0.0):
    """The k best entries of `memory` for `text`. The dense part embeds the text with `model`
    (semantic: or uses `query`, a (dim,) float32 vector, when given); lexical mode needs no
    model. min_coverage in [0, 1] drops hits holding less than that share of the query's
    idf-weighted terms (0 keeps every hit; it needs `text` in every mode). Raises HMSTError
    (INVALID_ARGUMENT) for bad arguments or a missing part."""
    p = _params(mode, k, n_candidates, rrf_k, dense_weight, lexical_weight, bm25_k1, bm25_b, nprobe, min_coverage)
    cap = max(1, p.k)
    hits = np.zeros(cap, dtype=HIT_DTYPE)
    n = ctypes.c_size_t()
    model_h = None if model is None else model._handle()
    txt = None if text is None else _text(text)
    if isinstance(memory, SemanticMemory):
        q, nq = None, 0
        if query is not None:
            qa = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
            if qa.shape[0] != memory.dim:
                raise HMSTError(_lib.INVALID_ARGUMENT, f"query must have {memory.dim} values, got {qa.shape[0]}")
            q, nq = _ptr(qa, ctypes.c_float), qa.shape[0]
        _check(_lib.lib.hmst_semantic_retrieve(memory._handle(), model_h, txt, q, nq, ctypes.byref(p),
                                               hits.ctypes.data, cap, ctypes.byref(n)))
    elif isinstance(memory, EpisodicMemory):
        if query is not None:
            raise TypeError("query vectors are for a SemanticMemory; the episodic memory encodes the text")
        _check(_lib.lib.hmst_episodic_retrieve(memory._handle(), model_h, txt, ctypes.byref(p), hits.ctypes.data,
                                               cap, ctypes.byref(n)))
    else:
        raise TypeError(f"memory must be a SemanticMemory or an EpisodicMemory, not {type(memory).__name__}")
    hits = hits[:n.value]
    return RetrievalResult(hits, [memory.text(int(i)) for i in hits["id"]], mode)
