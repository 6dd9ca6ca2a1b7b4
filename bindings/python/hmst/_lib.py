"""Low-level ctypes declarations of include/hmst.h, in header order. Nothing else lives here.

The library is located through HMST_LIBRARY, then the package folder, then the system path.
At load time the ABI version and the sizes of the versioned structs are checked against what
this module declares, so a mismatched libhmst fails loudly at import instead of corrupting memory.
"""
import ctypes
import ctypes.util
import os

ABI_VERSION = 1  # HMST_ABI_VERSION these declarations match

# enum hmst_status
OK = 0
INVALID_ARGUMENT = -1
BUFFER_TOO_SMALL = -2
IO = -3
BAD_FORMAT = -4
OUT_OF_MEMORY = -5
UNSUPPORTED = -6
CANCELLED = -7
NOT_FOUND = -8
INTERNAL = -99

# enum hmst_log_level
LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NONE = range(5)


class SystemInfo(ctypes.Structure):
    """struct hmst_system_info"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("version", ctypes.c_char * 16),
        ("abi_version", ctypes.c_int32),
        ("n_cpus", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("blas_threads", ctypes.c_int32),
        ("blas_core", ctypes.c_char * 32),
        ("blas_config", ctypes.c_char * 128),
        ("simd_flags", ctypes.c_uint64),
        ("simd_names", ctypes.c_char * 128),
        ("numa_available", ctypes.c_int32),
        ("numa_nodes", ctypes.c_int32),
        ("numa_policy_permitted", ctypes.c_int32),
        ("faiss_version", ctypes.c_char * 16),
    ]


# struct name in hmst.h -> ctypes class, checked against hmst_sizeof() at load
STRUCTS = {"hmst_system_info": SystemInfo}

LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _candidates():
    env = os.environ.get("HMST_LIBRARY")
    if env:
        yield env, "HMST_LIBRARY"
        return  # an explicit choice is never silently replaced by another library
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libhmst.so", "libhmst.so.0"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            yield path, "package folder"
    found = ctypes.util.find_library("hmst")
    for name in ([found] if found else []) + ["libhmst.so.0", "libhmst.so"]:
        yield name, "system library path"


def _load():
    errors = []
    for path, origin in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path} ({origin}): {e}")
    raise ImportError("hmst: cannot load libhmst. Tried: " + "; ".join(errors) +
                      ". Build it with `make lib` and set HMST_LIBRARY=/path/to/libhmst.so, "
                      "or `make install`.")


lib, path = _load()


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_declare("hmst_status_string", ctypes.c_char_p, ctypes.c_int)
_declare("hmst_last_error", ctypes.c_char_p)
_declare("hmst_clear_error", None)
_declare("hmst_version", ctypes.c_char_p)
_declare("hmst_abi_version", ctypes.c_int)
_declare("hmst_sizeof", ctypes.c_size_t, ctypes.c_char_p)
_declare("hmst_log_set", None, LOG_CALLBACK, ctypes.c_void_p)
_declare("hmst_log_set_level", ctypes.c_int, ctypes.c_int)
_declare("hmst_system_info", ctypes.c_int, ctypes.POINTER(SystemInfo))
_declare("hmst_system_info_json", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))
_declare("hmst_set_n_threads", ctypes.c_int, ctypes.c_int32)
_declare("hmst_get_n_threads", ctypes.c_int32)


def _check_abi():
    abi = lib.hmst_abi_version()
    if abi != ABI_VERSION:
        raise ImportError(f"hmst: {path} has ABI version {abi}, these bindings need {ABI_VERSION}")
    for name, cls in STRUCTS.items():
        size = lib.hmst_sizeof(name.encode())
        if size != ctypes.sizeof(cls):
            raise ImportError(f"hmst: struct {name} is {size} bytes in {path} but {ctypes.sizeof(cls)} "
                              "in these bindings; reinstall matching versions")


_check_abi()
