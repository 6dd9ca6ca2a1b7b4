// Platform: the C library (libm, pthreads, mmap, file calls), imported once for the module and
// re-exported to its importers (the C API, the CLI, the server, the benchmarks), instead of a
// conditional import in every file that calls it.
#if canImport(Glibc)
@_exported import Glibc
#elseif canImport(Darwin)
@_exported import Darwin
#endif
