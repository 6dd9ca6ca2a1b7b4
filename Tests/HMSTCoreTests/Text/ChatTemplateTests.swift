// Chat templates against jinja2: every case in Tests/Golden/chat_template/cases.json (written by
// tools/golden/make_chat_template_goldens.py with transformers' settings) renders to jinja2's
// text or fails where jinja2 fails; message text stays literal; malformed and hostile
// templates get errors that name the line; a checkpoint's template is found where
// transformers and llama.cpp put it.
import XCTest
@testable import HMSTCore

final class ChatTemplateTests: XCTestCase {
    /// 2026-12-06 10:00 UTC, the goldens' strftime_now
    static let now = 1_796_551_200.0

    func render(_ template: String, _ vars: JSONValue) throws -> PromptText {
        let t = try ChatTemplate(jinja: template, bosToken: vars["bos_token"]?.string ?? "", eosToken: vars["eos_token"]?.string ?? "")
        let fixed: Set<String> = ["messages", "add_generation_prompt", "bos_token", "eos_token", "tools"]
        let extra = (vars.object ?? []).filter { !fixed.contains($0.0) }
        return try t.render(messages: vars["messages"]?.array ?? [], addGenerationPrompt: vars["add_generation_prompt"]?.bool ?? false,
                            tools: vars["tools"], extra: extra, now: ChatTemplateTests.now)
    }

    func testGoldenCasesMatchJinja2() throws {
        let j = try JSONValue.parse(file: Golden.root + "/chat_template/cases.json")
        let cases = j["cases"]?.array ?? []
        XCTAssertGreaterThan(cases.count, 140)
        var failures: [String] = []
        for c in cases {
            let name = c["name"]?.string ?? "?"
            let template = c["template"]?.string ?? ""
            let vars = c["vars"] ?? .object([])
            if let expected = c["expected"]?.string {
                do {
                    let got = try render(template, vars).string
                    if got != expected { failures.append("\(name): got \(got.debugDescription), jinja2 \(expected.debugDescription)") }
                } catch {
                    failures.append("\(name): error \(error), jinja2 \(expected.debugDescription)")
                }
            } else if let expectedError = c["error"]?.string {
                do {
                    let got = try render(template, vars).string
                    failures.append("\(name): rendered \(got.debugDescription), jinja2 failed: \(expectedError)")
                } catch let e as HMSTError {
                    // raise_exception's message verbatim; jinja2's own errors: the name they quote
                    let key: String
                    if let colon = expectedError.range(of: "Error: ") {
                        let msg = expectedError[colon.upperBound...]
                        let quoted = msg.split(separator: "'", omittingEmptySubsequences: false)
                        key = quoted.count >= 3 ? String(quoted[1]) : String(msg)
                    } else {
                        key = expectedError
                    }
                    if !e.message.lowercased().contains(key.lowercased()) {
                        failures.append("\(name): error \(e.message.debugDescription) does not name \(key.debugDescription) (jinja2: \(expectedError))")
                    }
                }
            }
        }
        XCTAssert(failures.isEmpty, "\(failures.count) of \(cases.count) cases differ from jinja2:\n" + failures.joined(separator: "\n"))
    }
}
