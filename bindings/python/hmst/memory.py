"""Semantic memory (FAISS), episodic memory (Mamba SSM states) and consolidation, with numpy
vectors in and out.

    with hmst.Model("ckpt/") as model, hmst.SemanticMemory(model.n_embd) as sem, \\
            hmst.EpisodicMemory(model) as epi:
        epi.add("the meeting moved to Tuesday", importance=0.9)
        hmst.consolidate(epi, sem, model)
        for hit in sem.search_text(model, "when is the meeting?", k=3):
            print(hit.id, hit.score, hit.text)
"""
import ctypes
import json

import numpy as np

from . import _lib
from .api import HMSTError, INT64_MAX, _check, _ids, _int, _path, _read_string, _Resource, _text

MAX_K = 1 << 20   # the library's limit on k (hits a query)

_HIT_DTYPE = np.dtype(_lib.MemoryHit)  # {id: int64, score: float32}, 16 bytes

_METRICS = {"cosine": _lib.METRIC_COSINE, "inner_product": _lib.METRIC_INNER_PRODUCT, "ip": _lib.METRIC_INNER_PRODUCT,
            "l2": _lib.METRIC_L2}


class Hit:
    """One search result: id, score (cosine/inner product: higher is closer; l2: squared
    distance, lower is closer) and the entry's text."""
    __slots__ = ("id", "score", "text")

    def __init__(self, id, score, text):
        self.id, self.score, self.text = id, score, text

    def __repr__(self):
        return f"Hit(id={self.id}, score={self.score:.4f}, text={self.text!r})"


def _vectors(x, dim, name):
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != dim:
        raise HMSTError(_lib.INVALID_ARGUMENT, f"{name} must have shape (n, {dim}), got {np.shape(x)}")
    return a


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


class _Memory(_Resource):
    _get_text = None
    _stats = None

    def _hits(self, raw, n):
        out = []
        for h in raw[:n]:
            if h.id < 0:
                break
            out.append(Hit(h.id, float(h.score), self.text(h.id)))
        return out

    def text(self, id):
        """The text stored with entry `id` (HMSTError NOT_FOUND if absent)."""
        fn = type(self)._get_text
        return _read_string(lambda buf, cap, n: fn(self._handle(), _int("id", id, -INT64_MAX - 1, INT64_MAX), buf, cap, n))

    def stats(self):
        fn = type(self)._stats
        return json.loads(_read_string(lambda buf, cap, n: fn(self._handle(), buf, cap, n)))

    def __len__(self):
        return self.stats()["count"]


class SemanticMemory(_Memory):
    """A FAISS vector store with ids, texts and lazy IVF training. Thread-safe."""
    _kind = "semantic memory"
    _free = staticmethod(lambda h: _lib.lib.hmst_semantic_free(h))
    _get_text = staticmethod(lambda *a: _lib.lib.hmst_semantic_get_text(*a))
    _stats = staticmethod(lambda *a: _lib.lib.hmst_semantic_stats_json(*a))

    def __init__(self, dim, index="IVF4096,Flat", metric="cosine", nprobe=32, *, _handle=None):
        self._h = None
        if _handle is not None:
            self._h = _handle
        else:
            if metric not in _METRICS:
                raise ValueError(f"unknown metric {metric!r}; use one of {sorted(_METRICS)}")
            p = _lib.lib.hmst_semantic_default_params()
            p.dim, p.metric, p.nprobe = _int("dim", dim, 1), _METRICS[metric], _int("nprobe", nprobe, 1)
            self._index = _text(index)
            p.index_description = self._index
            h = ctypes.c_void_p()
            _check(_lib.lib.hmst_semantic_create(ctypes.byref(p), ctypes.byref(h)))
            self._h = h
        self.dim = self.stats()["dim"]

    @classmethod
    def load(cls, directory):
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_semantic_load(_path(directory, "directory"), ctypes.byref(h)))
        return cls(0, _handle=h)

    def save(self, directory):
        """Atomic: a crash leaves the previous or the new memory."""
        _check(_lib.lib.hmst_semantic_save(self._handle(), _path(directory, "directory")))

    def reencoded(self, model):
        """A new memory with the same entries (ids, texts, owners) embedded by `model`. The
        memory records the model that embedded its texts; text calls with another model (other
        weights; a bf16/f16/int8 copy of the same ones still matches) raise HMSTError."""
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_semantic_reencode(self._handle(), model._handle(), ctypes.byref(h)))
        return SemanticMemory(0, _handle=h)

    def add(self, vectors, texts=None, ids=None, source=None):
        """vectors: (n, dim) or (dim,); texts: n strings or None; ids: n ints or None (assigned).
        Returns the ids as an int64 array."""
        x = _vectors(vectors, self.dim, "vectors")
        n = x.shape[0]
        id_arr = None
        if ids is not None:
            id_arr = _ids("ids", ids)
            if id_arr.shape[0] != n:
                raise HMSTError(_lib.INVALID_ARGUMENT, f"{n} vectors but {id_arr.shape[0]} ids")
        text_arr = None
        if texts is not None:
            if isinstance(texts, (str, bytes)):
                texts = [texts]
            texts = [_text(t) for t in texts]
            if len(texts) != n:
                raise HMSTError(_lib.INVALID_ARGUMENT, f"{n} vectors but {len(texts)} texts")
            text_arr = (ctypes.c_char_p * n)(*texts)
        out = np.zeros(n, dtype=np.int64)
        _check(_lib.lib.hmst_semantic_add(self._handle(), _ptr(x, ctypes.c_float), n,
                                          None if id_arr is None else _ptr(id_arr, ctypes.c_int64),
                                          text_arr, None if source is None else _text(source), _ptr(out, ctypes.c_int64)))
        return out

    def train_in_background(self, enabled=True):
        """IVF training on a library thread instead of inside the add that reaches the
        threshold; call wait_training() before the process ends to keep the trained index."""
        _check(_lib.lib.hmst_semantic_set_background_training(self._handle(), bool(enabled)))

    def wait_training(self):
        """Blocks until no training is in progress."""
        _check(_lib.lib.hmst_semantic_wait_training(self._handle()))

    def add_text(self, model, text, source=None):
        """Embeds text with the model (Model.embed) and stores it; returns its id."""
        out = ctypes.c_int64()
        _check(_lib.lib.hmst_semantic_add_text(self._handle(), model._handle(), _text(text),
                                               None if source is None else _text(source), ctypes.byref(out)))
        return out.value

    def search(self, queries, k=10, nprobe=0):
        """queries: (n, dim) or (dim,) -> (ids int64 (n, k), scores float32 (n, k)); id -1 pads."""
        q = _vectors(queries, self.dim, "queries")
        n, k = q.shape[0], _int("k", k, 1, MAX_K)
        # the library writes struct hmst_memory_hit rows straight into a numpy array (no per-hit
        # Python work); pointers go as addresses, which ctypes passes without building objects
        hits = np.empty(max(1, n * k), dtype=_HIT_DTYPE)
        _check(_lib.semantic_search_by_address(self._handle(), q.ctypes.data, n, k, _int("nprobe", nprobe, 0), hits.ctypes.data))
        hits = hits[:n * k].reshape(n, k)
        return hits["id"].copy(), hits["score"].copy()

    def search_text(self, model, text, k=10, nprobe=0):
        """The k nearest entries to the text's embedding, as Hit objects."""
        k = _int("k", k, 1, MAX_K)
        hits = (_lib.MemoryHit * k)()
        n = ctypes.c_int32()
        _check(_lib.lib.hmst_semantic_search_text(self._handle(), model._handle(), _text(text), k, _int("nprobe", nprobe, 0),
                                                  hits, ctypes.byref(n)))
        return self._hits(hits, n.value)

    def remove(self, ids):
        """Removes the ids present; returns how many were (0 for no ids)."""
        a = _ids("ids", ids)
        if a.shape[0] == 0:
            return 0
        out = ctypes.c_int64()
        _check(_lib.lib.hmst_semantic_remove(self._handle(), _ptr(a, ctypes.c_int64), a.shape[0], ctypes.byref(out)))
        return out.value


class EpisodicMemory(_Memory):
    """Recent texts compressed by a Mamba SSM into state vectors (keys), bounded, with
    retrieval by cosine similarity. Thread-safe."""
    _kind = "episodic memory"
    _free = staticmethod(lambda h: _lib.lib.hmst_episodic_free(h))
    _get_text = staticmethod(lambda *a: _lib.lib.hmst_episodic_get_text(*a))
    _stats = staticmethod(lambda *a: _lib.lib.hmst_episodic_stats_json(*a))

    def __init__(self, model=None, max_entries=1000, state_size=256, max_tokens=8192, seed=0, *, _handle=None):
        self._h = None
        if _handle is not None:
            self._h = _handle
        else:
            if model is None:
                raise TypeError("EpisodicMemory needs the model whose hidden states it compresses")
            p = _lib.lib.hmst_episodic_default_params()
            p.max_entries, p.state_size, p.max_tokens = _int("max_entries", max_entries, 1), _int("state_size", state_size, 1), _int("max_tokens", max_tokens, 1)
            p.seed = _int("seed", seed, 0, 2**64 - 1)
            h = ctypes.c_void_p()
            _check(_lib.lib.hmst_episodic_create(model._handle(), ctypes.byref(p), ctypes.byref(h)))
            self._h = h
        self.state_size = self.stats()["state_size"]

    @classmethod
    def load(cls, directory):
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_episodic_load(_path(directory, "directory"), ctypes.byref(h)))
        return cls(_handle=h)

    def save(self, directory):
        _check(_lib.lib.hmst_episodic_save(self._handle(), _path(directory, "directory")))

    def reencoded(self, model):
        """A new memory with the same entries (ids, texts, times, importance, owners) encoded by
        `model` (and its trained episodic SSM when it has one). As SemanticMemory.reencoded, the
        memory refuses text calls with another model than the one that encoded it."""
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_episodic_reencode(self._handle(), model._handle(), ctypes.byref(h)))
        return EpisodicMemory(_handle=h)

    def add(self, model, text, importance=0.5):
        """Encodes text with the model and the SSM and stores it; returns its id."""
        out = ctypes.c_int64()
        _check(_lib.lib.hmst_episodic_add_text(self._handle(), model._handle(), _text(text), float(importance),
                                               ctypes.byref(out)))
        return out.value

    def add_key(self, key, text="", importance=0.5):
        k = _vectors(key, self.state_size, "key").reshape(-1)
        out = ctypes.c_int64()
        _check(_lib.lib.hmst_episodic_add_key(self._handle(), _ptr(k, ctypes.c_float), k.shape[0], _text(text),
                                              float(importance), ctypes.byref(out)))
        return out.value

    def search(self, model, text, k=5):
        k = _int("k", k, 1, MAX_K)
        hits = (_lib.MemoryHit * k)()
        n = ctypes.c_int32()
        _check(_lib.lib.hmst_episodic_search_text(self._handle(), model._handle(), _text(text), k, hits,
                                                  ctypes.byref(n)))
        return self._hits(hits, n.value)

    def search_key(self, key, k=5):
        q = _vectors(key, self.state_size, "key").reshape(-1)
        k = _int("k", k, 1, MAX_K)
        hits = (_lib.MemoryHit * k)()
        n = ctypes.c_int32()
        _check(_lib.lib.hmst_episodic_search_key(self._handle(), _ptr(q, ctypes.c_float), q.shape[0], k, hits,
                                                 ctypes.byref(n)))
        return self._hits(hits, n.value)

    def remove(self, ids):
        """Removes the ids present; returns how many were (0 for no ids)."""
        a = _ids("ids", ids)
        if a.shape[0] == 0:
            return 0
        out = ctypes.c_int64()
        _check(_lib.lib.hmst_episodic_remove(self._handle(), _ptr(a, ctypes.c_int64), a.shape[0], ctypes.byref(out)))
        return out.value

    def entries(self):
        """Every entry's id, access count, surprise, importance, timestamp and token count."""
        return self.stats()["entries"]


def _consolidate_params(threshold, max_per_run, remove, half_life):
    p = _lib.lib.hmst_consolidate_default_params()
    p.threshold, p.max_per_run, p.remove_from_episodic, p.half_life_seconds = (float(threshold), max_per_run,
                                                                               bool(remove), float(half_life))
    return p


def consolidate(episodic, semantic, model, threshold=0.5, max_per_run=256, remove=True, half_life=3600.0):
    """One pass: important episodic entries become semantic entries (model embeddings).
    Returns how many moved."""
    p = _consolidate_params(threshold, max_per_run, remove, half_life)
    n = ctypes.c_int32()
    _check(_lib.lib.hmst_consolidate(episodic._handle(), semantic._handle(), model._handle(), ctypes.byref(p),
                                     ctypes.byref(n)))
    return n.value


class Consolidator:
    """Consolidates every `interval` seconds on a library thread until stop() (or the end of a
    `with` block). The memories and model must stay open meanwhile."""

    def __init__(self, episodic, semantic, model, interval=60.0, threshold=0.5, max_per_run=256, remove=True,
                 half_life=3600.0):
        p = _consolidate_params(threshold, max_per_run, remove, half_life)
        self._h = ctypes.c_void_p()
        self._keep = (episodic, semantic, model)
        _check(_lib.lib.hmst_consolidator_start(episodic._handle(), semantic._handle(), model._handle(), ctypes.byref(p),
                                                float(interval), ctypes.byref(self._h)))
        self.passes = self.moved = 0

    def stop(self):
        """Stops the thread (a pass in progress finishes); returns (passes, moved). Idempotent."""
        if self._h is not None:
            passes, moved = ctypes.c_int32(), ctypes.c_int32()
            _lib.lib.hmst_consolidator_stop(self._h, ctypes.byref(passes), ctypes.byref(moved))
            self._h = None
            self.passes, self.moved = passes.value, moved.value
        return self.passes, self.moved

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass
