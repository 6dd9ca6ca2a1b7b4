"""hmst.Tokenizer: byte-level BPE in HF tokenizer.json format, with numpy ids."""
import ctypes
import os

import numpy as np

from . import _lib
from .api import HMSTError, _check, _int, _path, _Progress, _read_string, _Resource, _text


def _encode_call(fn, handle, text):
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:   # bytes(123) would be 123 NUL bytes
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
    n = ctypes.c_size_t(0)
    rc = fn(handle, data, len(data), None, 0, ctypes.byref(n))
    if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
        _check(rc)
    out = np.zeros(n.value, dtype=np.int32)
    if n.value:
        _check(fn(handle, data, len(data), out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), n.value, ctypes.byref(n)))
    return out


def _decode_call(fn, handle, ids):
    arr = np.asarray(ids).reshape(-1)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, not {arr.dtype}")
    if arr.size and (arr.min() < -2**31 or arr.max() >= 2**31):
        raise HMSTError(_lib.INVALID_ARGUMENT, "token ids must fit int32")
    arr = np.ascontiguousarray(arr, dtype=np.int32)
    ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    n = ctypes.c_size_t(0)
    rc = fn(handle, ptr, arr.size, None, 0, ctypes.byref(n))
    if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
        _check(rc)
    buf = ctypes.create_string_buffer(max(1, n.value))
    if n.value:
        _check(fn(handle, ptr, arr.size, buf, n.value, ctypes.byref(n)))
    return buf.raw[:n.value]


class Tokenizer(_Resource):
    """A byte-level BPE tokenizer.

        tok = hmst.Tokenizer("ckpt/tokenizer.json")
        ids = tok.encode("Hello")          # int32 numpy array
        tok.decode(ids) == "Hello"
        tok = hmst.Tokenizer.train(["corpus.txt"], vocab_size=8000)
        tok.save("out/tokenizer.json")
    """
    _kind = "tokenizer"
    _free = staticmethod(lambda h: _lib.lib.hmst_tokenizer_free(h))

    def __init__(self, path):
        self._h = None
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_tokenizer_load(_path(path), ctypes.byref(h)))
        self._h = h

    @classmethod
    def train(cls, files, vocab_size=8192, min_frequency=2, special_tokens=None, progress=None):
        """Trains on text files (deterministic; merges match HF tokenizers' BpeTrainer)."""
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        paths = (ctypes.c_char_p * len(files))(*[_path(f, "files") for f in files])
        p = _lib.lib.hmst_tokenizer_train_default_params()
        p.vocab_size, p.min_frequency = vocab_size, min_frequency   # range-checked by the struct
        keep = []
        if special_tokens is not None:
            if isinstance(special_tokens, (str, bytes)):
                special_tokens = [special_tokens]
            special_tokens = [_text(s, "special token") for s in special_tokens]
            arr = (ctypes.c_char_p * len(special_tokens))(*special_tokens)
            keep.append(arr)
            p.special_tokens = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            p.n_special_tokens = len(special_tokens)
        reporter = _Progress(progress) if progress is not None else None
        if reporter is not None:
            p.progress = reporter.c
        self = cls.__new__(cls)
        self._h = None
        h = ctypes.c_void_p()
        rc = _lib.lib.hmst_tokenizer_train(paths, len(files), ctypes.byref(p), ctypes.byref(h))
        if reporter is not None:
            reporter.check(rc, release=lambda: _lib.lib.hmst_tokenizer_free(h))
        _check(rc)
        self._h = h
        return self

    def save(self, path):
        _check(_lib.lib.hmst_tokenizer_save(self._handle(), _path(path)))

    @property
    def vocab_size(self):
        v = ctypes.c_int32()
        _check(_lib.lib.hmst_tokenizer_vocab_size(self._handle(), ctypes.byref(v)))
        return v.value

    def __len__(self):
        return self.vocab_size

    def encode(self, text):
        """str or bytes -> int32 array."""
        return _encode_call(_lib.lib.hmst_tokenizer_encode, self._handle(), text)

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def decode_bytes(self, ids):
        """ids -> the exact bytes that were encoded."""
        return _decode_call(_lib.lib.hmst_tokenizer_decode, self._handle(), ids)

    def decode(self, ids):
        """ids -> str (invalid UTF-8 replaced)."""
        return self.decode_bytes(ids).decode("utf-8", "replace")

    def id_to_piece(self, token_id):
        return _read_string(lambda b, c, n: _lib.lib.hmst_tokenizer_id_to_piece(self._handle(), _int("token_id", token_id, -2**31), b, c, n))

    def piece_to_id(self, piece):
        """The id of a piece as written in tokenizer.json, or None."""
        out = ctypes.c_int32()
        rc = _lib.lib.hmst_tokenizer_piece_to_id(self._handle(), _text(piece, "piece"), ctypes.byref(out))
        if rc == _lib.NOT_FOUND:
            return None
        _check(rc)
        return out.value
