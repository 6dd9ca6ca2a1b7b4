"""The smallest Python host: what libhmst sees of this machine, and an error as an exception."""
import hmst

info = hmst.system_info()
print(f"libhmst {hmst.version()} from {hmst.library_path()}")
print(f"{info['n_cpus']} CPUs, {info['n_threads']} threads, OpenBLAS {info['blas_core']}, FAISS {info['faiss_version']}")
print(f"SIMD: {' '.join(info['simd'])}")
print(f"NUMA: {info['numa_nodes']} node(s), policy calls {'permitted' if info['numa_policy_permitted'] else 'refused'}")
try:
    hmst.set_threads(-1)
except hmst.HMSTError as e:
    print(f"set_threads(-1) -> {e.status_name}: {e.message}")
