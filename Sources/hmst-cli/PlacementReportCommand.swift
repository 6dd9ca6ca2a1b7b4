// hmst placement-report: load a checkpoint with a NUMA strategy and print, as one JSON object,
// where its weight pages and worker threads really are (HMSTCore/System/PlacementInspection).
// With --hold it then keeps the model loaded until stdin closes, so a check script can compare
// against /proc/PID/numa_maps and /proc/PID/task/*/status (tools/numa-vm/guest-check.sh).
import ArgumentParser
import Foundation
import HMSTCore

struct PlacementReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "placement-report",
        abstract: "Load a checkpoint with a NUMA strategy and report, as JSON, which node holds each weight tensor's pages and where worker threads may run.")

    @Argument(help: "Checkpoint directory.")
    var checkpoint: String

    @Option(help: "NUMA placement: disabled, distribute, isolate, numactl.")
    var numa = "disabled"

    @Flag(help: "Copy the weights into anonymous memory bound with the strategy's policy (the C API's numa_copy).")
    var copy = false

    @Flag(help: "Before counting, read every weight page on the calling thread, as a first forward pass would (the numactl strategy leaves pages to fault in on first use).")
    var touch = false

    @Flag(name: .customLong("per-tensor"), help: "List every tensor's page counts, not only the totals.")
    var perTensor = false

    @Flag(help: "After printing, keep the model loaded until stdin reaches end of file.")
    var hold = false

    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if NUMAStrategy(name: numa) == nil { throw ValidationError("--numa must be disabled, distribute, isolate or numactl") }
    }

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            var load = ModelLoadOptions()
            load.loadTokenizer = false
            load.placement.strategy = NUMAStrategy(name: numa) ?? .disabled
            load.placement.copyToAnonymous = copy
            let model = try LanguageModel.load(path: checkpoint, options: load)
            let r = model.report.placement
            let tensors = model.placedTensors()
            if touch { for t in tensors { PlacementInspection.touch(t.base, nBytes: t.nBytes) } }

            func num(_ i: Int) -> JSONValue { .number(Double(i)) }
            func ints<S: Sequence>(_ xs: S) -> JSONValue where S.Element: BinaryInteger { .array(xs.map { num(Int($0)) }) }
            func counts(_ c: PageNodeCounts) -> JSONValue {
                .object([("pages", num(c.pages)),
                         ("by_node", .object(c.byNode.keys.sorted().map { (String($0), num(c.byNode[$0] ?? 0)) })),
                         ("not_present", num(c.notPresent)), ("unknown", num(c.unknown))])
            }
            // totals over the whole weight range: summing tensors would count twice the pages
            // that two neighbouring tensors share
            var total = PageNodeCounts()
            if let first = tensors.first, let last = tensors.last {
                total = PlacementInspection.pageNodes(first.base, nBytes: last.base + last.nBytes - first.base)
            }
            let rows: [JSONValue] = !perTensor ? [] : tensors.map { t in
                .object([("name", .string(t.name)), ("bytes", num(t.nBytes)),
                         ("pages", counts(PlacementInspection.pageNodes(t.base, nBytes: t.nBytes)))])
            }
            var o: [(String, JSONValue)] = [
                ("pid", num(Int(getpid()))), ("requested", .string(r.requested.name)), ("applied", .string(r.applied.name)),
                ("nodes", num(r.nodes)), ("copied", .bool(r.copied)), ("summary", .string(r.summary)),
                ("warnings", .array(r.warnings.map { .string($0) })),
                ("node_cpus", .array(PlacementInspection.nodeCPUs().map { ints($0) })),
                ("caller_cpus", ints(PlacementInspection.callerCPUs())),
                ("workers", .array(PlacementInspection.workerCPUs().map { ints($0) })),
                ("tensors", num(tensors.count)),
            ]
            if let first = tensors.first, let last = tensors.last {
                // the weights' first and one-past-last byte, to find their mapping in /proc/PID/numa_maps
                o.append(("weights_begin", .string(String(UInt(bitPattern: first.base), radix: 16))))
                o.append(("weights_end", .string(String(UInt(bitPattern: last.base + last.nBytes), radix: 16))))
                if let p = PlacementInspection.policy(at: first.base) {
                    o.append(("policy", .object([("mode", .string(p.mode)), ("nodes", ints(p.nodes))])))
                }
            }
            o.append(("total", counts(total)))
            if perTensor { o.append(("per_tensor", .array(rows))) }
            print(JSONValue.object(o).serialized)
            fflush(stdout)
            if hold { while readLine() != nil {} }
            withExtendedLifetime(model) {}
        }
    }
}
