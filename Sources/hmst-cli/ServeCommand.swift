// hmst serve: runs the HTTP server, which is its own executable (hmst-server, built beside
// hmst) so that the CLI and libhmst.so never link HTTP. Every argument is handed over as is;
// `hmst-server --help` lists the server's options.
import ArgumentParser
import Foundation
import HMSTCore

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a checkpoint over an OpenAI-compatible HTTP API (runs hmst-server).",
        discussion: """
            hmst serve CKPT [--memory DIR] [--host 127.0.0.1] [--port 8080] [--slots 4] [--api-key KEY] ...
            Runs the hmst-server executable installed beside hmst (or $HMST_SERVER) with these arguments; \
            `hmst-server --help` lists them all.
            """)

    @Argument(parsing: .allUnrecognized, help: "CKPT and the server's options (see hmst-server --help).")
    var arguments: [String] = []

    static func serverPath() -> String? {
        if let env = ProcessInfo.processInfo.environment["HMST_SERVER"], !env.isEmpty { return env }
        // beside this executable (build/bin/hmst -> build/bin/hmst-server; .build/debug likewise)
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("hmst-server").path
    }

    func run() throws {
        try runReportingErrors {
            guard let path = ServeCommand.serverPath(), FileManager.default.isExecutableFile(atPath: path) else {
                throw HMSTError.notFound("""
                    hmst serve needs the hmst-server executable beside hmst (\(ServeCommand.serverPath() ?? "?")) or named by \
                    HMST_SERVER; build it with `make all` (build/bin/hmst-server) or `swift build --product hmst-server`
                    """)
            }
            let argv = [path] + arguments
            var cargs = argv.map { strdup($0) } + [nil]
            execv(path, &cargs)
            throw HMSTError.io("could not run \(path): \(String(cString: strerror(errno)))")
        }
    }
}
