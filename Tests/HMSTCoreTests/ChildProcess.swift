// Test support for kill -9 tests: re-run this test binary as a child process running one test
// (stdout and stderr to /dev/null), and wait for a file to change.
import XCTest
@testable import HMSTCore

enum ChildProcess {
    /// Starts this test binary running `test` ("Module.Class/testName") with `env` only.
    static func spawnSelf(_ test: String, env: [String]) throws -> pid_t {
        var exe = [CChar](repeating: 0, count: 4096)
        guard readlink("/proc/self/exe", &exe, exe.count - 1) > 0 else { throw HMSTError.io("cannot read /proc/self/exe") }
        let path = String(cString: exe)
        var pid = pid_t()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [String] = [path, test]
        var cArgv = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        let rc = posix_spawn(&pid, path, &actions, nil, &cArgv, &cEnv)
        posix_spawn_file_actions_destroy(&actions)
        (cArgv + cEnv).forEach { free($0) }
        guard rc == 0 else { throw HMSTError.io("posix_spawn failed: \(rc)") }
        return pid
    }

    /// Waits (up to 30 s) until the file's content differs from `before`.
    static func waitForChange(_ path: String, from before: String) {
        let t0 = Clock.nowMs()
        while ((try? FileIO.readText(path)) ?? "") == before, Clock.nowMs() - t0 < 30_000 { usleep(2000) }
    }

    /// SIGKILLs the child after a random delay below maxMicroseconds and reaps it.
    static func killAfter(_ pid: pid_t, maxMicroseconds: UInt64, rng: inout RNG) {
        usleep(UInt32(rng.next() % maxMicroseconds))
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
