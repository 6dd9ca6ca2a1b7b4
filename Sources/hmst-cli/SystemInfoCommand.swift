// hmst system-info: versions, BLAS, SIMD, NUMA and FAISS, as text or JSON.
import ArgumentParser
import HMSTCore

struct SystemInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system-info", abstract: "Print what hmst sees of this machine.")

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let s = SystemInfo()
            if json {
                print(s.json)
                return
            }
            print("hmst \(s.version) (ABI \(s.abiVersion))")
            print("cpus:     \(s.nCPUs) available, \(s.nThreads) threads (OpenBLAS \(s.blasThreads), OpenMP \(s.ompThreads))")
            print("simd:     \(s.simdNames.joined(separator: " "))")
            print("openblas: \(s.blasCore) — \(s.blasConfig)")
            let policy = s.numa.policyPermitted ? "permitted" : "refused (\(s.numa.policyError ?? "unknown"))"
            print("numa:     \(s.numa.available ? "available" : "unavailable"), \(s.numa.nodeCount) node(s), policy calls \(policy)")
            print("faiss:    \(s.faissVersion)")
        }
    }
}
