// swift-tools-version:6.0
// hmst: Hierarchical Memory-State Transformer runtime.
// Targets are grouped by role: system libraries, C/C++ shims, the Swift core, the C API, tools, tests.
// The shared library libhmst.so is the `hmst` dynamic product; the Makefile links it with
// -static-stdlib, a SONAME and a version script (see Makefile and Sources/HMSTCAPI/exports.map).
import PackageDescription

let package = Package(
    name: "hmst",
    products: [
        .library(name: "hmst", type: .dynamic, targets: ["HMSTCAPI"]),
        .executable(name: "hmst-cli", targets: ["hmst-cli"]),
        .executable(name: "hmst-server", targets: ["hmst-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // HTTP for the hmst-server executable only; libhmst.so and the hmst CLI never link it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libnuma-dev, zlib1g-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CNUMA", providers: [.apt(["libnuma-dev"])]),
        // zlib (Debian: zlib1g-dev), to read gzip-compressed data files such as miscfiles' tables.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // C++ shim over FAISS (Debian's libfaiss.a has no C API): every exception is caught there.
        .target(name: "CFAISSShim", dependencies: ["CKernels"],
                cxxSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("faiss"), .linkedLibrary("gomp"),
                                 .linkedLibrary("openblas"), .linkedLibrary("m"),
                                 .linkedLibrary("stdc++")]),

        // C support: the public header (symlink to include/hmst.h), the thread-local error
        // buffer, the log sink and CPU feature detection.
        .target(name: "CHMST", cSettings: [.unsafeFlags(["-O2"])]),

        // OpenMPI loaded at run time with dlopen (Debian: openmpi-bin, libopenmpi-dev), for
        // data-parallel training; nothing links libmpi, so one process needs no MPI at all.
        .target(name: "CMPIShim", cSettings: [.unsafeFlags(["-O2"])]),

        // Numeric kernels OpenBLAS lacks: bf16/f16 conversion and GEMV, AVX-512 with fallbacks.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // Pure Swift engine code.
        .target(name: "HMSTCore",
                dependencies: ["CBLAS", "CNUMA", "CZlib", "CFAISSShim", "CHMST", "CKernels", "CMPIShim"]),

        // Only the exported @_cdecl functions.
        .target(name: "HMSTCAPI", dependencies: ["HMSTCore", "CHMST"], exclude: ["exports.map"]),

        // The command-line tool; every real action is a HMSTCore call.
        .executableTarget(name: "hmst-cli",
                          dependencies: ["HMSTCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // The OpenAI-compatible HTTP server (`hmst serve` execs it): HMSTCore + Hummingbird 2.
        .executableTarget(name: "hmst-server",
                          dependencies: ["HMSTCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Hummingbird", package: "hummingbird"),
                                         .product(name: "HTTPTypes", package: "swift-http-types"),
                                         .product(name: "NIOCore", package: "swift-nio"),
                                         .product(name: "NIOHTTP1", package: "swift-nio"),
                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                         .product(name: "Logging", package: "swift-log")]),

        // Inference benchmarks printing JSON lines (not tests): swift run -c release hmst-bench
        .executableTarget(name: "hmst-bench", dependencies: ["HMSTCore", "CBLAS", "CKernels"]),

        .testTarget(name: "HMSTCoreTests", dependencies: ["HMSTCore"]),
        .testTarget(name: "HMSTCAPITests", dependencies: ["HMSTCAPI", "CHMST"]),
    ],
    swiftLanguageModes: [.v5]
)
