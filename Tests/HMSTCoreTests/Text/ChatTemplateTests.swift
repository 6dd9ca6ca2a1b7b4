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
        var t = try ChatTemplate(jinja: template, bosToken: vars["bos_token"]?.string ?? "", eosToken: vars["eos_token"]?.string ?? "")
        t.allowsNonTextParts = true   // jinja2 renders the image placeholders of the multimodal case
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

extension ChatTemplateTests {
    static func message(_ role: String, _ content: String) -> JSONValue {
        .object([("role", .string(role)), ("content", .string(content))])
    }

    /// Message text is literal (its special tokens are plain text); the template's text,
    /// bos/eos and what the template computes from its own literals are markup.
    func testMessageTextIsLiteralTemplateTextIsMarkup() throws {
        let t = try ChatTemplate(jinja: "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}",
                                 bosToken: "<s>")
        let p = try t.render(messages: [ChatTemplateTests.message("user", " <|im_end|>x ")], addGenerationPrompt: false)
        XCTAssertEqual(p.string, "<s><|im_start|>user\n<|im_end|>x<|im_end|>\n")
        let literal = p.literalRanges.map { String(decoding: p.bytes[$0], as: UTF8.self) }
        XCTAssertEqual(literal, ["user", "<|im_end|>x"])
        // a tokenizer with <|im_end|> as a special token sees one special token, typed text stays text
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hf_tokenizer.json")
        let plain = tok.encode(bytes: Array(p.bytes))
        XCTAssertGreaterThanOrEqual(tok.encode(p).count, plain.count)
    }

    func expectError(_ template: String, _ fragment: String, messages: [JSONValue] = [ChatTemplateTests.message("user", "hi")],
                     file: StaticString = #filePath, line: UInt = #line) {
        do {
            var t = try ChatTemplate(jinja: template)
            t.limits = JinjaRenderLimits(maxOutputBytes: 1 << 20, maxSteps: 200_000, maxCallDepth: 64)
            let out = try t.render(messages: messages)
            XCTFail("rendered \(out.string.prefix(80).debugDescription), expected an error with \(fragment)", file: file, line: line)
        } catch let e as HMSTError {
            XCTAssertTrue(e.message.contains(fragment), "\(e.message) lacks \(fragment)", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    /// Malformed and hostile templates: errors naming the line, never a hang, trap or deep stack.
    func testMalformedAndHostileTemplates() {
        expectError("a\n{% if x %}\nno end", "line 2: {% if %} without {% endif %}")
        expectError("{{ 1 + }}", "line 1: expected an expression")
        expectError("{{ 'abc }}", "unterminated string")
        expectError("{% for %}{% endfor %}", "expected a loop variable")
        expectError("{% endfor %}", "unexpected 'endfor'")
        expectError("{% include 'x' %}", "unknown tag 'include'")
        expectError("{{ x | nope }}", "no filter named 'nope'")
        expectError("{{ x is nope }}", "no test named 'nope'")
        expectError("{# open", "unterminated comment")
        expectError("{{ foo.bar }}", "'foo' is undefined")
        expectError("{{ messages[0].missing.x }}", "'dict object' has no attribute 'missing'")
        expectError("{{ raise_exception('Only user and assistant roles are supported') }}", "Only user and assistant roles are supported")
        expectError("{{ 1 // 0 }}", "division or modulo by zero")
        expectError("{{ 9223372036854775807 + 1 }}", "integer overflow")
        expectError("{{ 2 ** 64 }}", "integer overflow")
        expectError("{% break %}", "break or continue outside a loop")
        expectError("{{ messages.append(1) }}", "'append' of 'list' object is unsafe")
        expectError("{% set x = 1 %}{% set x.y = 2 %}", "'x' is not a namespace()")
        expectError("{% for a, b in [1] %}{% endfor %}", "cannot unpack int into 2 loop variables")
        // bounded: nesting, work, output, recursion, sizes
        expectError("{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}", "nested deeper than 100")
        expectError(String(repeating: "{% if true %}", count: 300), "nested deeper than 100")
        expectError("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "more than 200000 steps")
        expectError("{% for i in range(100000000) %}{% endfor %}", "at most 1048576")
        expectError("{{ 'x' * 100000000000 }}", "string repetition too long")
        expectError("{{ 'x' * 2000000 }}", "string repetition too long")
        expectError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deep")
        expectError("{% set s = 'xxxxxxxxxxxxxxxx' * 40000 %}{{ s }}{{ s }}", "passed 1048576 bytes")
        expectError("{{ range(3)[::0] }}", "slice step cannot be zero")
    }

    /// Random edits of the golden templates: each renders or throws, never traps or hangs.
    func testMutatedTemplatesNeverTrap() throws {
        let j = try JSONValue.parse(file: Golden.root + "/chat_template/cases.json")
        let sources = (j["cases"]?.array ?? []).compactMap { $0["template"]?.string }
        var rng = RNG(seed: 7)
        let alphabet = Array("{}%#-+|()[]'\".,:=~ \nabcifnorstx0123_".unicodeScalars)
        var rendered = 0, failed = 0
        for i in 0..<3000 {
            var s = Array(sources[i % sources.count].unicodeScalars)
            for _ in 0..<(1 + Int(rng.next() % 4)) where !s.isEmpty {
                let at = Int(rng.next() % UInt64(s.count))
                switch rng.next() % 3 {
                case 0: s.remove(at: at)
                case 1: s.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: s[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                }
            }
            var text = String.UnicodeScalarView()
            text.append(contentsOf: s)
            do {
                var t = try ChatTemplate(jinja: String(text))
                t.limits = JinjaRenderLimits(maxOutputBytes: 1 << 20, maxSteps: 100_000, maxCallDepth: 16)
                _ = try t.render(messages: [ChatTemplateTests.message("system", "s"), ChatTemplateTests.message("user", "u")])
                rendered += 1
            } catch is HMSTError {
                failed += 1
            }
        }
        XCTAssertGreaterThan(rendered, 300)
        XCTAssertGreaterThan(failed, 300)
    }

    /// Where a checkpoint's template is found: chat_template.jinja, then chat_template.json
    /// (transformers' form or hmst's patterns), then tokenizer_config.json (a string or named
    /// templates), else the built-in patterns; bos/eos from tokenizer_config.json.
    func testCheckpointTemplateDiscovery() throws {
        let dir = "/tmp/hmst-chat-template-\(getpid())"
        _ = system("rm -rf '\(dir)'")
        defer { _ = system("rm -rf '\(dir)'") }
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hf_tokenizer.json")
        let m = try LanguageModel.random(config: try MixtralConfig.preset("micro"), seed: 1, tokenizer: tok)
        try m.save(directory: dir)
        func template() throws -> ChatTemplate { try LanguageModel.load(path: dir).chatTemplate() }
        func write(_ name: String, _ text: String) throws { try FileIO.writeAtomically(dir + "/" + name, Array(text.utf8)) }
        XCTAssertEqual(try template().origin, "built-in")
        XCTAssertEqual(try template().render(messages: [ChatTemplateTests.message("user", "hi")]).string, "User: hi\nAssistant:")

        try write("tokenizer_config.json", #"{"bos_token": {"content": "<B>"}, "eos_token": "<E>", "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D{{ eos_token }}"}]}"#)
        XCTAssertEqual(try template().render(messages: []).string, "<B>D<E>")
        try write("chat_template.json", #"{"chat_template": "J{{ messages | length }}"}"#)
        XCTAssertEqual(try template().render(messages: [ChatTemplateTests.message("user", "hi")]).string, "J1")
        try write("chat_template.json", #"{"user": "<u>{content}</u>", "generation_prompt": "<a>", "stop": ["</a>"]}"#)
        let patterns = try template()
        XCTAssertEqual(try patterns.render(messages: [ChatTemplateTests.message("user", "hi")]).string, "<u>hi</u><a>")
        XCTAssertEqual(patterns.stop, ["</a>"])
        try write("chat_template.jinja", "{{ 'JJ' }}")
        XCTAssertEqual(try template().render(messages: []).string, "JJ")
        XCTAssertTrue(try template().origin.hasSuffix("chat_template.jinja"))
        try write("chat_template.jinja", "{% if %}")
        XCTAssertThrowsError(try template()) { e in XCTAssertTrue("\(e)".contains("chat_template.jinja: chat template line 1"), "\(e)") }
        try write("chat_template.jinja", "{{ messages[0].content }}")
        // typed text parts are joined for a template that prints content as a string
        let parts: JSONValue = .object([("role", .string("user")), ("content", .array([
            .object([("type", .string("text")), ("text", .string("a"))]), .object([("type", .string("text")), ("text", .string("b"))])]))])
        XCTAssertEqual(try template().render(messages: [parts]).string, "ab")
        XCTAssertThrowsError(try template().render(messages: [.object([("role", .string("user")), ("content", .number(3))])]))
        XCTAssertThrowsError(try template().render(messages: [.object([("content", .string("no role"))])]))
    }
}

extension ChatTemplateTests {
    func render(_ template: String, messages: [JSONValue] = [ChatTemplateTests.message("user", "hi")]) throws -> String {
        var t = try ChatTemplate(jinja: template)
        t.limits = JinjaRenderLimits(maxOutputBytes: 1 << 20, maxSteps: 200_000, maxCallDepth: 16)
        return try t.render(messages: messages).string
    }

    /// What a review found: chains, deep or exponential values, stored callers, integer edges,
    /// output-multiplying operations, quadratic work; and jinja2's answers where it has one.
    func testBoundsAndJinja2EdgesFromReview() throws {
        // left-associative chains count as nesting
        expectError("{{ " + String(repeating: "x~", count: 50_000) + "x }}", "nested deeper than")
        expectError("{{ x" + String(repeating: "|trim", count: 500) + " }}", "nested deeper than")
        expectError("{{ a" + String(repeating: ".b", count: 500) + " }}", "nested deeper than")
        // values a variable holds are bounded in depth and size; exponential sharing is charged
        expectError("{% set ns = namespace(a=[]) %}{% for i in range(100) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}",
                    "nested more than 64 deep")
        expectError("{% set ns = namespace(a=[1]) %}{% for i in range(62) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}",
                    "steps")
        // a caller kept past its macro still counts its calls
        expectError("{% set ns = namespace(c=none) %}{% macro m() %}{% set ns.c = caller %}{% endmacro %}"
                    + "{% call m() %}{{ ns.c() }}{% endcall %}{{ ns.c() }}", "deep")
        // output-multiplying operations are checked before they build
        expectError("{{ ([('x' * 60000)] * 100) | join }}", "at most 1048576")
        expectError("{{ ('x' * 1000) | replace('x', 'y' * 60000) }}", "at most 1048576")
        expectError("{{ ('\\n' * 100000) | indent(100, true, true) }}", "at most 1048576")
        expectError("{{ ('{0}' * 1000).format('x' * 60000) }}", "at most 1048576")
        expectError("{{ [('x' * 60000)] * 100 }}", "passed 1048576 bytes")
        expectError("{{ ([('x' * 60000)] * 100) | tojson }}", "passed 1048576 bytes")
        // quadratic work is charged
        expectError("{{ range(100000) | unique | length }}", "steps")
        XCTAssertEqual(try render("{{ ('a' * 100000).split('a' * 50000 ~ 'b') | length }}"), "1")
        // integer edges: jinja2's answers, or errors, never traps
        XCTAssertEqual(try render("{{ 'abc'[1::9223372036854775807] }}"), "b")
        XCTAssertEqual(try render("{{ (-9223372036854775807 - 1) is divisibleby(-1) }}"), "True")
        expectError("{{ range(-9223372036854775807, 9223372036854775807) | length }}", "at most 1048576")
        XCTAssertEqual(try render("{{ range(0, -1, -9223372036854775807 - 1) | length }}"), "1")
        XCTAssertTrue(try render("{{ '%d' | format(1e300) }}").hasPrefix("10000000000000000525"))
        expectError("{{ '%d' | format('nan' | float) }}", "cannot convert float nan")
        // jinja2's results
        XCTAssertEqual(try render("{{ {'b': 1, 'a': 2}.items() | sort }}"), "[('a', 2), ('b', 1)]")
        XCTAssertEqual(try render("{{ '-' * -1 }}|{{ (1, 2) * 2 }}|{{ 'a b c'.split(None, 1) }}|{{ 7 | round(-1) }}"),
                       "|(1, 2, 1, 2)|['a', 'b c']|10")
        XCTAssertEqual(try render("{{ 15 | round(-1) }} {{ 25 | round(-1) }} {{ 2.5 | round }}"), "20 20 2.0")
        XCTAssertEqual(try render("{{ 'é' == 'e\u{301}' }} {{ 'a\u{301}' in 'xá' }}"), "False False")
        XCTAssertEqual(try render("{{ {'a': 'é😀'} | tojson(true) }}"), #"{"a": "\u00e9\ud83d\ude00"}"#)
        XCTAssertEqual(try render("{{ [1] | tojson(false, 2) }}"), "[\n  1\n]")
        expectError("{% macro m() %}{% break %}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}", "break or continue outside a loop")
        XCTAssertEqual(try render("{{ none | selectattr('a') | list }}{{ none | map('upper') | list }}"), "[][]")
        XCTAssertEqual(try render(#"{{ "'<"|safe + "<b>" }}|{{ "<" ~ "<"|safe }}"#), "'<&lt;b&gt;|<<")
    }

    /// Caller text stays literal through strftime_now's format and indent's width.
    func testCallerTextThroughFormatsStaysLiteral() throws {
        let t = try ChatTemplate(jinja: "{{ strftime_now(messages[0].content) }}|{{ 'a\nb' | indent(messages[0].content) }}")
        let p = try t.render(messages: [ChatTemplateTests.message("user", "<|im_end|>")])
        XCTAssertEqual(p.string, "<|im_end|>|a\n<|im_end|>b")
        XCTAssertEqual(p.literalRanges.count, 2)
        XCTAssertEqual(p.literalRanges.reduce(0) { $0 + $1.count }, p.bytes.count - 1)   // all but "|"
    }

    /// Templates as deep as the limits allow render on a thread with a 1 MiB stack in a debug
    /// build (whose frames are several times a release build's): a crash here is a stack
    /// overflow the limits let through.
    func testDeepestTemplateFitsASmallStack() throws {
        let blocks = String(repeating: "{% if true %}", count: 40) + "{{ " + String(repeating: "(", count: 20) + "1"
            + String(repeating: ")", count: 20) + " }}" + String(repeating: "{% endif %}", count: 40)
        let macros = "{% macro f(n) %}{% if n > 0 %}" + String(repeating: "{% if true %}", count: 10) + "{{ f(n - 1) }}"
            + String(repeating: "{% endif %}", count: 10) + "{% else %}x{% endif %}{% endmacro %}{{ f(6) }}"
        let deepest = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}" + String(repeating: "{% if true %}", count: 90) + "{{ f(0) }}"
            + String(repeating: "{% endif %}", count: 90)
        XCTAssertEqual(try onSmallStack(blocks), "1")
        XCTAssertEqual(try onSmallStack(macros), "x")
        XCTAssertThrowsError(try onSmallStack(deepest)) { e in XCTAssertTrue("\(e)".contains("deep"), "\(e)") }
    }

    final class StackJob: @unchecked Sendable {
        let source: String
        var result: Result<String, Error>?
        init(_ source: String) { self.source = source }
    }

    func onSmallStack(_ source: String) throws -> String {
        let job = StackJob(source)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setstacksize(&attr, 1 << 20)
        var thread = pthread_t()
        let arg = Unmanaged.passRetained(job).toOpaque()
        guard pthread_create(&thread, &attr, { raw in
            let j = Unmanaged<StackJob>.fromOpaque(raw!).takeRetainedValue()
            j.result = Result { try ChatTemplate(jinja: j.source).render(messages: []).string }
            return nil
        }, arg) == 0 else { throw HMSTError.invalidArgument("pthread_create failed") }
        pthread_join(thread, nil)
        return try XCTUnwrap(job.result).get()
    }
}
