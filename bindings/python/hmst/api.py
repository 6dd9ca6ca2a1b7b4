"""The Pythonic face of libhmst: exceptions, dicts and numpy arrays over the ctypes layer."""
import ctypes
import json
import operator
import threading

import numpy as np

from . import _lib

_STATUS_NAMES = {v: k for k, v in vars(_lib).items() if k.isupper() and isinstance(v, int) and not k.startswith("LOG_")
                 and k != "ABI_VERSION"}


class HMSTError(Exception):
    """A failing hmst call. `status` is the enum hmst_status value, `status_name` its name
    ("INVALID_ARGUMENT", ...), `message` the library's reason (hmst_last_error())."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = _lib.lib.hmst_status_string(status).decode()
        self.message = message
        super().__init__(f"{self.status_name}: {message}")


class _Resource:
    """Owns one library handle (self._h): close() frees it exactly once; `with` blocks and
    __del__ call close(). Subclasses set _kind and _free (the hmst_*_free function)."""
    _kind = "handle"
    _free = None

    def _handle(self):
        if getattr(self, "_h", None) is None:
            raise HMSTError(_lib.INVALID_ARGUMENT, f"{self._kind} is closed")
        return self._h

    def close(self):
        """Releases the handle. Idempotent."""
        if getattr(self, "_h", None) is not None:
            type(self)._free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _check(status):
    if status != _lib.OK:
        raise HMSTError(status, _lib.lib.hmst_last_error().decode("utf-8", "replace"))
    return status


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _int(name, v, lo, hi=INT32_MAX):
    """An integer argument checked against lo ... hi before it meets a fixed-width C type: ctypes
    wraps out-of-range values silently (k = -2**32 + 5000 would reach the library as 5000, past
    a one-row result buffer). Accepts Python and numpy integers, not floats or bools."""
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(v).__name__}") from None
    if not lo <= v <= hi:
        raise HMSTError(_lib.INVALID_ARGUMENT, f"{name} {v} must be in {lo} ... {hi}")
    return v


def _ids(name, values):
    """Ids (an integer array, or an iterable of ints) as a contiguous int64 array. Floats are
    refused rather than truncated (3.7 would remove id 3), as are values outside int64."""
    if isinstance(values, np.ndarray) and values.dtype == object:   # Python ints kept as objects
        values = values.reshape(-1).tolist()
    if isinstance(values, np.ndarray):
        if values.size and (values.dtype.kind not in "iu" or values.dtype == np.bool_):
            raise TypeError(f"{name} must be integers, not {values.dtype}")
        if values.dtype == np.uint64 and values.size and values.max() > INT64_MAX:
            raise HMSTError(_lib.INVALID_ARGUMENT, f"{name}: {int(values.max())} must be in 0 ... 2**63-1")
        return np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be an iterable of integers, not {type(values).__name__}")
    return np.array([_int(name, v, -INT64_MAX - 1, INT64_MAX) for v in values], dtype=np.int64)


class _Progress:
    """A progress(fraction) -> False-to-stop callback as the C API's PROGRESS_CALLBACK. An
    exception the callback raises (KeyboardInterrupt included) stops the call and is raised
    again after it by `check`, instead of surfacing as a CANCELLED status."""

    def __init__(self, progress):
        self.error = None

        def cb(fraction, _ud):
            try:
                return bool(progress(fraction) is not False)
            except BaseException as e:  # never unwind into C
                self.error = e
                return False
        self.c = _lib.PROGRESS_CALLBACK(cb)

    def check(self, rc, release=None):
        """Raises the callback's exception, else the status's. release() frees what a call
        that succeeded made (its last progress report may raise after the work is done)."""
        if self.error is not None:
            if rc == _lib.OK and release is not None:
                release()
            raise self.error
        _check(rc)


def _text(b, name="text"):
    """A str or bytes argument as the NUL-terminated bytes the C API takes (a NUL inside would
    silently cut it short there, so it is refused)."""
    if isinstance(b, str):
        b = b.encode()
    elif not isinstance(b, bytes):
        raise TypeError(f"{name} must be str or bytes, not {type(b).__name__}")
    if b"\0" in b:
        raise ValueError(f"{name} contains a NUL character, which would end it there")
    return b


def _path(p, name="path"):
    """A str, bytes or os.PathLike path as NUL-terminated bytes (os.fsencode), refusing a NUL
    inside, which would cut the path short in C (as Python's own open() refuses it)."""
    import os
    b = os.fsencode(p)
    if b"\0" in b:
        raise ValueError(f"{name} contains a NUL character: {p!r}")
    return b


def _read_string(call):
    """Runs call(buf, cap, n_out) with the size-query-then-fetch protocol; returns str."""
    n = ctypes.c_size_t(0)
    rc = call(None, 0, ctypes.byref(n))
    if rc != _lib.BUFFER_TOO_SMALL:
        _check(rc)
    for _ in range(4):  # the answer can grow between calls (it is live data): retry
        buf = ctypes.create_string_buffer(n.value + 1)
        rc = call(buf, len(buf), ctypes.byref(n))
        if rc == _lib.OK:
            return buf.value.decode("utf-8", "replace")
        if rc != _lib.BUFFER_TOO_SMALL:
            _check(rc)
    _check(rc)


def version():
    """The library's "MAJOR.MINOR.PATCH"."""
    return _lib.lib.hmst_version().decode()


def abi_version():
    return _lib.lib.hmst_abi_version()


def library_path():
    """Where libhmst was loaded from."""
    return _lib.path


def system_info():
    """Versions, OpenBLAS, SIMD features, NUMA topology and FAISS, as a dict."""
    return json.loads(_read_string(_lib.lib.hmst_system_info_json))


def set_threads(n):
    """Threads for every pool (OpenBLAS, OpenMP in FAISS, hmst's workers); 0 = all CPUs."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"thread count must be an int, not {type(n).__name__}")
    if not -2**31 <= n < 2**31:
        raise HMSTError(_lib.INVALID_ARGUMENT, f"thread count {n} is outside 0 ... 1024")
    _check(_lib.lib.hmst_set_n_threads(n))


def get_threads():
    return _lib.lib.hmst_get_n_threads()


_LEVELS = {"debug": _lib.LOG_DEBUG, "info": _lib.LOG_INFO, "warn": _lib.LOG_WARN, "warning": _lib.LOG_WARN,
           "error": _lib.LOG_ERROR, "none": _lib.LOG_NONE}
_log_lock = threading.Lock()
# Every callback ever installed stays alive: hmst_log_set may return while the previous one is
# still running on another thread (hmst.h), so freeing it when it is replaced would let the
# library call freed memory. A handler is a few hundred bytes; handlers are set rarely.
_log_keepalive = []


def set_log_handler(handler, level="warn"):
    """Routes library diagnostics to handler(level_name, message); None restores stderr.
    The handler may be called from library worker threads."""
    if isinstance(level, str):
        if level.lower() not in _LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {sorted(_LEVELS)}")
        level = _LEVELS[level.lower()]
    names = ["debug", "info", "warn", "error"]
    with _log_lock:
        if handler is None:
            _lib.lib.hmst_log_set(_lib.LOG_CALLBACK(), None)
        else:
            def trampoline(lvl, msg, _ud):
                try:
                    handler(names[lvl] if 0 <= lvl < 4 else str(lvl), msg.decode("utf-8", "replace"))
                except Exception:  # an exception must not unwind into C
                    pass
            cb = _lib.LOG_CALLBACK(trampoline)
            _log_keepalive.append(cb)   # before the library can call it
            _lib.lib.hmst_log_set(cb, None)
        _check(_lib.lib.hmst_log_set_level(level))
