// hmst grammar: the GBNF grammar a JSON Schema becomes (what `generate --json-schema` and the
// server's response_format json_schema follow; llama.cpp's json_schema_to_grammar), or a check
// of a GBNF file (`generate --grammar-file`) without loading a model.
import ArgumentParser
import HMSTCore

struct GrammarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grammar",
        abstract: "Print the GBNF grammar of a JSON Schema, or check a GBNF grammar file.")

    @Option(name: .customLong("json-schema"), help: ArgumentHelp("A JSON Schema (its JSON text).", valueName: "JSON"))
    var jsonSchema: String?

    @Option(name: .customLong("json-schema-file"), help: "A JSON Schema file.")
    var jsonSchemaFile: String?

    @Option(help: ArgumentHelp("Check this GBNF grammar file: its rules, or what is wrong and where.", valueName: "FILE"))
    var check: String?

    func validate() throws {
        if [jsonSchema, jsonSchemaFile, check].compactMap({ $0 }).count != 1 {
            throw ValidationError("give one of --json-schema, --json-schema-file, --check")
        }
    }

    func run() throws {
        try runReportingErrors {
            if let path = check {
                let g = try withSource(path) { try Grammar.parse(gbnf: try readUTF8(path)) }
                print("\(path): reads: \(g.ruleNames.count) rules (groups and repetitions included), starting at root")
                return
            }
            let text = try jsonSchemaFile.map { f in try withSource(f) { try readUTF8(f) } } ?? jsonSchema ?? ""
            // the grammar's source: the GBNF text, checked by reading it back
            let g = try withSource(jsonSchemaFile ?? "--json-schema") { try JSONSchemaGrammar.grammar(schemaText: text) }
            StandardStream.output.write(g.source)
        }
    }
}

/// A grammar or schema file's text; not UTF-8 is an error (a lossy reading would change what it says).
func readUTF8(_ path: String) throws -> String {
    guard let s = String(validating: try FileIO.readAll(path), as: UTF8.self) else {
        throw HMSTError.invalidArgument("not UTF-8")
    }
    return s
}

/// Runs body; an INVALID_ARGUMENT it throws names `source` (a file or an option) first.
func withSource<T>(_ source: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as HMSTError where e.status == .invalidArgument {
        throw HMSTError.invalidArgument("\(source): \(e.message)")
    }
}
