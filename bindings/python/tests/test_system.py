"""Foundation bindings: loading, ABI checks, errors as exceptions, system info, threads, logs."""
import ctypes
import subprocess
import sys
import threading

import numpy as np
import pytest

import hmst
from hmst import _lib


def test_version_matches_package():
    assert hmst.version() == hmst.__version__
    assert hmst.abi_version() == _lib.ABI_VERSION


def test_struct_sizes_match_library():
    for name, cls in _lib.STRUCTS.items():
        assert _lib.lib.hmst_sizeof(name.encode()) == ctypes.sizeof(cls)
    assert _lib.lib.hmst_sizeof(b"no_such_struct") == 0


def test_struct_integer_fields_refuse_what_they_would_wrap():
    """ctypes stores an integer field modulo its width without a word (2**32 + 16 in an int32 reads
    16, -1 in a uint64 reads 2**64 - 1); every struct of the header refuses such values instead."""
    for name, cls in _lib.STRUCTS.items():
        assert issubclass(cls, _lib._Struct), name
    p = _lib.ContextParams()
    int_fields = [f for f, t in _lib.ContextParams._fields_ if t in (ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64)]
    assert "n_ctx" in int_fields
    with pytest.raises(hmst.HMSTError, match=r"n_ctx 4294967312 must be in -2147483648 \.\.\. 2147483647") as e:
        p.n_ctx = 2**32 + 16
    assert e.value.status_name == "INVALID_ARGUMENT"
    p.n_ctx = 2**31 - 1
    assert p.n_ctx == 2**31 - 1
    p.n_ctx = np.int64(512)
    assert p.n_ctx == 512
    with pytest.raises(TypeError, match="n_ctx must be an int, not float"):
        p.n_ctx = 512.0
    with pytest.raises(TypeError, match="not bool"):
        p.n_ctx = True
    t = _lib.TrainerParams()
    with pytest.raises(hmst.HMSTError, match="seed -1 must be in 0 ... 18446744073709551615"):
        t.seed = -1
    t.seed = 2**64 - 1
    assert t.seed == 2**64 - 1


def test_system_info_dict():
    info = hmst.system_info()
    assert info["version"] == hmst.version()
    assert info["n_cpus"] >= 1 and info["n_threads"] >= 1
    assert "OpenBLAS" in info["blas_config"]
    assert info["numa_nodes"] >= 1
    assert isinstance(info["numa_policy_permitted"], bool)
    assert info["faiss_version"].count(".") == 2
    assert isinstance(info["simd"], list)


def test_system_info_struct_agrees_with_json():
    s = _lib.SystemInfo(struct_size=ctypes.sizeof(_lib.SystemInfo))
    assert _lib.lib.hmst_system_info(ctypes.byref(s)) == 0
    info = hmst.system_info()
    assert s.version.decode() == info["version"]
    assert s.simd_flags == info["simd_flags"]
    assert s.faiss_version.decode() == info["faiss_version"]
    assert s.kernels.decode() == info["kernels"] in ("avx512-bf16", "avx512", "avx2", "portable")
    assert s.int8_kernels.decode() == info["int8_kernels"] in ("avx512-vnni", "avx2", "portable")


def test_errors_raise_with_status_and_message():
    with pytest.raises(hmst.HMSTError) as e:
        hmst.set_threads(-5)
    assert e.value.status == _lib.INVALID_ARGUMENT
    assert e.value.status_name == "INVALID_ARGUMENT"
    assert "-5" in e.value.message
    with pytest.raises(hmst.HMSTError):
        hmst.set_threads(5000)
    with pytest.raises(hmst.HMSTError):
        hmst.set_threads(2**40)  # would wrap in a C int32: rejected before the call
    with pytest.raises(TypeError):
        hmst.set_threads("4")


def test_threads_round_trip():
    hmst.set_threads(1)
    assert hmst.get_threads() == 1
    assert hmst.system_info()["blas_threads"] == 1
    hmst.set_threads(2)
    assert hmst.get_threads() == 2
    hmst.set_threads(0)
    assert hmst.get_threads() >= 1


def test_log_handler_receives_messages():
    seen = []
    hmst.set_log_handler(lambda level, msg: seen.append((level, msg)), level="info")
    try:
        hmst.set_threads(1)
    finally:
        hmst.set_log_handler(None)
    assert any(level == "info" and "thread" in msg for level, msg in seen)
    with pytest.raises(ValueError):
        hmst.set_log_handler(None, level="loud")


def test_log_handlers_swapped_from_threads_stay_alive():
    """hmst_log_set may return while the previous callback still runs on another thread, so a
    replaced handler's ctypes thunk must stay alive (freeing it crashed the interpreter)."""
    code = """
import threading, hmst
def swap():
    for i in range(150):
        hmst.set_log_handler(lambda l, m: None, level="debug")
        hmst.set_threads(1 + i % 2)
        hmst.set_log_handler(None)
def fail():
    for i in range(150):
        try: hmst.Tokenizer("/nonexistent")
        except hmst.HMSTError: pass
ts = [threading.Thread(target=f) for f in (swap, fail, swap, fail)]
[t.start() for t in ts]; [t.join() for t in ts]
print("done")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(__import__("os").environ, HMST_NUM_THREADS="2"))
    assert r.returncode == 0 and "done" in r.stdout, (r.returncode, r.stderr[-2000:])
    assert "Exception ignored" not in r.stderr, r.stderr[-2000:]


def test_last_error_is_per_thread():
    errors = {}

    def fail():
        try:
            hmst.set_threads(-7)
        except hmst.HMSTError as e:
            errors["t"] = e.message

    t = threading.Thread(target=fail)
    t.start()
    t.join()
    assert "-7" in errors["t"]
    _lib.lib.hmst_clear_error()
    assert _lib.lib.hmst_last_error() == b""


def test_bad_library_path_is_a_clear_import_error(tmp_path):
    code = "import hmst"
    env = {"HMST_LIBRARY": str(tmp_path / "nope.so"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "cannot load libhmst" in r.stderr and "HMST_LIBRARY" in r.stderr


def test_blas_kernels_match_cpu_even_when_openblas_misdetects():
    # OPENBLAS_CORETYPE=Prescott reproduces OpenBLAS's fallback on CPUs it does not know;
    # loading libhmst from Python must still leave kernels that match the CPU.
    code = ("import hmst, json; i = hmst.system_info(); "
            "print(json.dumps([i['blas_core_at_load'], i['blas_core'], i['blas_below_capability']]))")
    import json
    import os
    env = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    at_load, core, below = json.loads(out.stdout)
    assert below is False
    if "avx" in open("/proc/cpuinfo").read():
        assert at_load == "Prescott" and core != "Prescott"
    info = hmst.system_info()
    assert info["blas_below_capability"] is False
    assert info["mixed_precision_compute"] in ("f32", "bf16")
    assert info["bf16_weight_compute"] in ("f32", "bf16") and info["bf16_weight_compute_reason"]
    assert info["bf16_decode_compute"] in ("f32", "bf16") and info["bf16_decode_compute_reason"]
    assert info["f32_gemm"] in ("hmst", "openblas") and info["f32_gemm_16bit_weights"] in ("hmst", "openblas")
    assert info["f32_gemm_reason"]
    # int8 prompts: multiplied in bf16 where bf16 weights are, else in f32 on the f32 GEMM chosen for 16-bit weights
    want = "bf16" if info["bf16_weight_compute"] == "bf16" else \
        {"hmst": "hmst-f32", "openblas": "openblas-f32"}[info["f32_gemm_16bit_weights"]]
    assert info["int8_prompts"] == want and info["int8_gemv_max_tokens"] >= 1
    flags = open("/proc/cpuinfo").read()
    if not all(f in flags for f in (" avx2", " fma", " f16c")):
        assert info["f32_gemm"] == info["f32_gemm_16bit_weights"] == "openblas"
    assert info["cpu"]


def test_openblas_idle_workers_sleep_soon_unless_the_user_says_otherwise():
    # hmst shortens OpenBLAS's idle spin (2^28 cycles by default, which took a core from decode
    # right after every prompt) to 2^20 at load; OPENBLAS_THREAD_TIMEOUT, when set, is kept
    import json
    import os
    code = ("import hmst, json; i = hmst.system_info(); "
            "print(json.dumps([i['blas_thread_timeout_log2_cycles'], i['blas_thread_timeout_set_by_hmst']]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [20, True]
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, OPENBLAS_THREAD_TIMEOUT="25"), capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == [25, False]
