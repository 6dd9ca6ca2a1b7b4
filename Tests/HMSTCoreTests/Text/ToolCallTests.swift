// Tool calls: the format read from a chat template; replies of each family parsed into content and
// calls (and broken calls left as content); the grammars of tool_choice required / named /
// generic accept the calls each family writes and refuse others; messages prepared for the
// template (arguments as objects, the generic format's system message).
import XCTest
@testable import HMSTCore

final class ToolCallTests: XCTestCase {
    let tools = try! JSONValue.parse("""
        [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                         "required": ["city"]}}},
         {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
         {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "array", "uniqueItems": true}}}}}]
        """)

    func format(_ s: ToolCallFormat.Syntax) -> ToolCallFormat { ToolCallFormat(s) }

    func check(_ g: Grammar, _ text: String) throws -> (ok: Bool, complete: Bool) {
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        let ok = c.acceptBytes(Array(text.utf8))
        return (ok, ok && c.canEnd)
    }

    func testFormatFromTemplate() throws {
        XCTAssertEqual(ToolCallFormat(template: ChatTemplate()).syntax, .generic)
        let cases: [(String, ToolCallFormat.Syntax)] = [
            ("{% for t in tools %}{{ t | tojson }}{% endfor %}<tool_call>{{ messages[0].content }}", .hermes),
            ("[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS][TOOL_CALLS]", .mistral),
            ("<|start_header_id|>ipython<|end_header_id|>{{ tools | tojson }}", .llama3),
            ("<|start_header_id|>user<|end_header_id|>{{ messages[0].content }}", .generic),
            ("<|im_start|>user\n{{ messages[0].content }}", .generic),
            ("{% if tools %}{{ tools | tojson }}{% endif %}<|im_start|>user\n{{ messages[0].content }}", .other),
        ]
        for (src, want) in cases {
            XCTAssertEqual(ToolCallFormat(template: try ChatTemplate(jinja: src)).syntax, want, src)
        }
    }

    func testHermesReplies() {
        let f = format(.hermes)
        let r = f.parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                        + "<tool_call>{\"name\": \"now\", \"arguments\": \"{}\"}</tool_call>")
        XCTAssertEqual(r.content, "Let me check.")
        XCTAssertEqual(r.calls.map(\.name), ["get_weather", "now"])
        XCTAssertEqual(r.calls.map(\.arguments), ["{\"city\":\"Paris\"}", "{}"])
        XCTAssertTrue(r.calls.allSatisfy { $0.id.hasPrefix("call_") && $0.id.count == 29 })
        XCTAssertNotEqual(r.calls[0].id, r.calls[1].id)
        // unclosed at the end of the reply (the end-of-turn token came first): still a call
        XCTAssertEqual(f.parse("<tool_call>{\"name\": \"now\", \"arguments\": {}}").calls.count, 1)
        // broken calls stay text
        for text in ["<tool_call>{\"name\": \"now\", \"arguments\": {}</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>",
                     "<tool_call>{\"name\": \"now\", \"arguments\": [1]}</tool_call>", "no call here", ""] {
            XCTAssertEqual(f.parse(text), ToolCallReply(content: text, calls: []), text)
        }
        XCTAssertEqual(f.parse("two\n<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>\n", parallel: false).calls.count, 1)
    }

    func testMistralReplies() {
        let f = format(.mistral)
        let nemo = f.parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, \"id\": \"abc123XYZ\"}, {\"name\": \"now\", \"arguments\": {}}]")
        XCTAssertEqual(nemo.content, "")
        XCTAssertEqual(nemo.calls.map(\.name), ["get_weather", "now"])
        XCTAssertEqual(nemo.calls[0].id, "abc123XYZ")
        XCTAssertEqual(nemo.calls[1].id.count, 9, "Mistral's templates need 9 characters")
        XCTAssertTrue(nemo.calls[1].id.allSatisfy { $0.isLetter || $0.isNumber })
        let small = f.parse("Sure. [TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}[TOOL_CALLS]now[ARGS]{}")
        XCTAssertEqual(small.content, "Sure.")
        XCTAssertEqual(small.calls.map(\.name), ["get_weather", "now"])
        XCTAssertEqual(small.calls[0].arguments, "{\"city\":\"Rome\"}")
        for text in ["[TOOL_CALLS][{\"name\": \"x\"", "[TOOL_CALLS]get_weather{}", "[TOOL_CALLS][{\"name\": \"now\", \"arguments\": {}}] and more"] {
            XCTAssertEqual(f.parse(text).calls, [], text)
            XCTAssertEqual(f.parse(text).content, text)
        }
    }

    func testLlama3Replies() {
        let f = format(.llama3)
        let r = f.parse(" {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Lima\", \"days\": 2}}")
        XCTAssertEqual(r.calls.map(\.name), ["get_weather"])
        XCTAssertEqual(r.calls[0].arguments, "{\"city\":\"Lima\",\"days\":2}")
        XCTAssertEqual(f.parse("<|python_tag|>{\"name\": \"now\", \"parameters\": {}}; {\"name\": \"now\", \"arguments\": {}}").calls.count, 2)
        for text in ["The weather is {\"name\": \"now\"}", "{\"name\": \"now\", \"parameters\": {}} and text", "{\"city\": \"x\"}", "{"] {
            XCTAssertEqual(f.parse(text), ToolCallReply(content: text, calls: []), text)
        }
    }

    func testGenericReplies() {
        let f = format(.generic)
        let r = f.parse("{\"tool_calls\": [{\"name\": \"now\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}]}")
        XCTAssertEqual(r.calls.map(\.name), ["now", "get_weather"])
        XCTAssertEqual(f.parse("{\"tool_call\": {\"name\": \"now\", \"arguments\": {}}}").calls.count, 1)
        XCTAssertEqual(f.parse("{\"response\": \"It is sunny.\"}"), ToolCallReply(content: "It is sunny.", calls: []))
        XCTAssertEqual(f.parse("plain words"), ToolCallReply(content: "plain words", calls: []))
        XCTAssertEqual(f.parse("{\"response\": \"It is su"), ToolCallReply(content: "It is su", calls: []), "cut short by max_tokens")
        XCTAssertEqual(f.parse("{\"tool_calls\": [{\"name\": \"now\"}, 3]}").calls, [])
    }

    /// A template with its own tool syntax: every parser is tried; a required call is one JSON object.
    func testOtherTemplatesTryEveryParser() throws {
        let f = format(.other)
        XCTAssertEqual(f.parse("<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>").calls.map(\.name), ["now"])
        XCTAssertEqual(f.parse("[TOOL_CALLS]now[ARGS]{}").calls.map(\.name), ["now"])
        XCTAssertEqual(f.parse("{\"name\": \"now\", \"arguments\": {}}").calls.map(\.name), ["now"])
        XCTAssertEqual(f.parse("{\"tool_calls\": [{\"name\": \"now\", \"arguments\": {}}]}").calls.map(\.name), ["now"])
        XCTAssertEqual(f.parse("Just text."), ToolCallReply(content: "Just text.", calls: []))
        let g = try XCTUnwrap(try f.grammar(tools: tools, choice: .required, parallel: true))
        XCTAssertTrue(try check(g, "{\"name\": \"now\", \"arguments\": {}}").complete)
        XCTAssertNil(try f.grammar(tools: tools, choice: .auto, parallel: true))
        XCTAssertTrue(f.templateRendersTools)
        XCTAssertFalse(format(.generic).templateRendersTools)
    }

    func testGrammarsHoldRepliesToCalls() throws {
        let call = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}"
        let hermes = try XCTUnwrap(try format(.hermes).grammar(tools: tools, choice: .required, parallel: true))
        XCTAssertTrue(try check(hermes, "<tool_call>\n\(call)\n</tool_call>").complete)
        let second = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"
        XCTAssertTrue(try check(hermes, "<tool_call>\n\(call)\n</tool_call>\n\(second)").complete, "parallel calls under required")
        XCTAssertEqual(format(.hermes).parse("<tool_call>\n\(call)\n</tool_call>\n\(second)").calls.map(\.name), ["get_weather", "now"])
        let one = try XCTUnwrap(try format(.hermes).grammar(tools: tools, choice: .required, parallel: false))
        XCTAssertFalse(try check(one, "<tool_call>\n\(call)\n</tool_call>\n<").ok, "parallel_tool_calls false: one call")
        XCTAssertTrue(try check(hermes, "<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"q\": \"zebra\", \"any\": [1]}}\n</tool_call>").complete,
                      "a schema the grammar cannot enforce (uniqueItems) holds the arguments to an object")
        XCTAssertFalse(try check(hermes, "Sure").ok)
        XCTAssertFalse(try check(hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 3}}").ok, "city is required")
        XCTAssertFalse(try check(hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"P\", \"days\": 9}}").ok, "days <= 7")
        XCTAssertFalse(try check(hermes, "<tool_call>\n{\"name\": \"delete_all\"").ok)
        XCTAssertEqual(try format(.hermes).grammar(tools: tools, choice: .auto, parallel: true)?.triggers?.words, ["<tool_call>"],
                       "auto: a grammar that waits for a call to start")
        XCTAssertNil(try format(.other).grammar(tools: tools, choice: .auto, parallel: true))
        XCTAssertNil(try ToolCallFormat(.mistral, argsMarker: true).grammar(tools: tools, choice: .auto, parallel: true),
                     "name[ARGS]{...}: its markers are special tokens a grammar cannot write")
        XCTAssertNil(try format(.hermes).grammar(tools: tools, choice: .none, parallel: true))

        let named = try XCTUnwrap(try format(.hermes).grammar(tools: tools, choice: .function("now"), parallel: true))
        XCTAssertTrue(try check(named, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>").complete)
        XCTAssertFalse(try check(named, "<tool_call>\n{\"name\": \"get_weather\"").ok)
        XCTAssertFalse(try check(named, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>\n<").ok, "a named function: one call")
        XCTAssertThrowsError(try format(.hermes).grammar(tools: tools, choice: .function("nope"), parallel: true)) {
            XCTAssertTrue("\($0)".contains("not among the tools"))
        }

        let mistral = try XCTUnwrap(try format(.mistral).grammar(tools: tools, choice: .required, parallel: true))
        XCTAssertTrue(try check(mistral, "[TOOL_CALLS][\(call), {\"name\": \"now\", \"arguments\": {}}]").complete)
        let single = try XCTUnwrap(try format(.mistral).grammar(tools: tools, choice: .required, parallel: false))
        XCTAssertFalse(try check(single, "[TOOL_CALLS][\(call), {").ok)

        let llama = try XCTUnwrap(try format(.llama3).grammar(tools: tools, choice: .required, parallel: true))
        XCTAssertTrue(try check(llama, "{\"name\": \"now\", \"parameters\": {}}").complete)
        XCTAssertFalse(try check(llama, "{\"name\": \"now\", \"arguments\"").ok)

        let generic = try XCTUnwrap(try format(.generic).grammar(tools: tools, choice: .auto, parallel: true))
        XCTAssertTrue(try check(generic, "{\"tool_calls\": [\(call)]}").complete)
        XCTAssertTrue(try check(generic, "{\"response\": \"Hello\"}").complete)
        XCTAssertFalse(try check(generic, "Hello").ok)
        let genericRequired = try XCTUnwrap(try format(.generic).grammar(tools: tools, choice: .required, parallel: true))
        XCTAssertFalse(try check(genericRequired, "{\"response\"").ok)

        // each grammar's sentences parse back into the call
        XCTAssertEqual(format(.hermes).parse("<tool_call>\n\(call)\n</tool_call>").calls.first?.arguments, "{\"city\":\"Paris\",\"days\":3}")
    }

    /// Review findings: references inside a tool's schema ($defs, as Pydantic writes them), an
    /// unconstrained object in Mistral's list syntax (the shared "value" rule), calls of unknown
    /// tools, Llama 3 JSON without arguments, Mistral's [CALL_ID], a reasoning block.
    func testSchemasWithReferencesNamesAndVariants() throws {
        let pydantic = try JSONValue.parse("""
            [{"type": "function", "function": {"name": "book", "parameters": {
              "$defs": {"Seat": {"type": "object", "properties": {"row": {"type": "integer", "minimum": 1, "maximum": 40}}, "required": ["row"]}},
              "type": "object", "properties": {"seat": {"$ref": "#/$defs/Seat"}}, "required": ["seat"]}}},
             {"type": "function", "function": {"name": "any", "parameters": {"type": "object"}}}]
            """)
        for syntax in ToolCallFormat.Syntax.allCases {
            let g = try XCTUnwrap(try format(syntax).grammar(tools: pydantic, choice: .required, parallel: true), "\(syntax)")
            let key = syntax == .llama3 ? "parameters" : "arguments"
            let call = "{\"name\": \"book\", \"\(key)\": {\"seat\": {\"row\": 12}}}"
            let any = "{\"name\": \"any\", \"\(key)\": {\"x\": [1, \"a\"], \"y\": {}}}"
            let wrap: (String) -> String = {
                switch syntax {
                case .hermes: return "<tool_call>\n\($0)\n</tool_call>"
                case .mistral: return "[TOOL_CALLS][\($0)]"
                case .llama3, .other: return $0
                case .generic: return "{\"tool_calls\": [\($0)]}"
                }
            }
            XCTAssertTrue(try check(g, wrap(call)).complete, "\(syntax)")
            XCTAssertTrue(try check(g, wrap(any)).complete, "\(syntax): any object for a schema without properties")
            XCTAssertFalse(try check(g, wrap("{\"name\": \"book\", \"\(key)\": {\"seat\": {\"row\": 41}}}")).ok, "\(syntax)")
        }
        let names: Set<String> = ["now"]
        XCTAssertEqual(format(.hermes).parse("<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>", names: names).calls, [])
        XCTAssertEqual(format(.hermes).parse("<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>", names: names).calls.count, 1)
        let person = "{\"name\": \"Alice\", \"age\": 30}"
        XCTAssertEqual(format(.llama3).parse(person), ToolCallReply(content: person, calls: []), "JSON without arguments is not a call")
        XCTAssertEqual(format(.other).parse(person).calls, [])
        let withID = format(.mistral).parse("[TOOL_CALLS]now[CALL_ID]a1b2c3d4e[ARGS]{}")
        XCTAssertEqual(withID.calls.map(\.name), ["now"])
        XCTAssertEqual(withID.calls.first?.id, "a1b2c3d4e")
        let thinking = format(.hermes).parse("<think>I could use <tool_call> here.</think>\n\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>")
        XCTAssertEqual(thinking.calls.map(\.name), ["now"])
        XCTAssertEqual(thinking.content, "<think>I could use <tool_call> here.</think>")
    }

    /// Generic format: a template without a system turn gets the tool list in the first user
    /// turn; the results of one turn's calls become one user turn.
    func testGenericFormatKeepsRolesAlternating() throws {
        let ms = try JSONValue.parse("""
            [{"role": "user", "content": "Weather?"},
             {"role": "assistant", "content": null, "tool_calls": [
               {"id": "a", "type": "function", "function": {"name": "now", "arguments": "{}"}},
               {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}}]},
             {"role": "tool", "tool_call_id": "a", "content": "noon"},
             {"role": "tool", "tool_call_id": "b", "content": "rain"}]
            """).array!
        let noSystem = ToolCallFormat(template: try ChatTemplate(jinja: "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"))
        XCTAssertEqual(noSystem.syntax, .generic)
        XCTAssertFalse(noSystem.systemTurn)
        let out = try noSystem.messages(ms, tools: tools)
        XCTAssertEqual(out.map { $0["role"]?.string ?? "" }, ["user", "assistant", "user"])
        XCTAssertTrue(out[0]["content"]?.string?.hasPrefix("You can call these tools") == true)
        XCTAssertTrue(out[0]["content"]?.string?.hasSuffix("\n\nWeather?") == true)
        XCTAssertEqual(out[2]["content"]?.string, "Result of a: noon\nResult of b: rain")
    }

    /// A vocabulary of the 256 single bytes: any text is a sequence of its tokens.
    static let bytes = JSONConstraintTests.PiecesTokenizer((0..<256).map { [UInt8($0)] })

    /// tool_choice auto: the reply is free (the mask changes nothing) until it starts a call, then
    /// held to the tools' calls; a reasoning block never triggers; a trigger whose token goes on
    /// with text no call allows leaves the reply free.
    func testAutoHoldsCallsOnceTheyStart() throws {
        func constraint(_ syntax: ToolCallFormat.Syntax, thought: Bool = false) throws -> TriggeredConstraint {
            var g = try XCTUnwrap(try format(syntax).grammar(tools: tools, choice: .auto, parallel: true))
            g.triggers?.startsInThought = thought
            return try TriggeredConstraint(grammar: g, tokenizer: Self.bytes)
        }
        func allowed(_ c: TriggeredConstraint) -> Set<UInt8> {
            var logits = [Float](repeating: 0, count: 256)
            _ = logits.withUnsafeMutableBufferPointer { c.mask($0, eos: []) }
            return Set((0..<256).filter { logits[$0] > -.infinity }.map { UInt8($0) })
        }
        func feed(_ c: TriggeredConstraint, _ text: String) { for b in text.utf8 { c.accept(Int32(b)) } }
        /// `free` leaves the reply free; `trigger` then starts the call.
        func expectTrigger(_ c: TriggeredConstraint, free: String, trigger: String, line: UInt = #line) {
            feed(c, free)
            XCTAssertFalse(c.triggered, free, line: line)
            feed(c, trigger)
            XCTAssertTrue(c.triggered, trigger, line: line)
        }

        let c = try constraint(.hermes)
        feed(c, "Let me check the weather first. ")
        XCTAssertFalse(c.triggered)
        XCTAssertEqual(allowed(c).count, 256, "free text: the mask changes nothing")
        XCTAssertTrue(c.canEnd)
        feed(c, "<tool_")
        XCTAssertFalse(c.triggered)
        feed(c, "call>\n{\"name\": \"")
        XCTAssertTrue(c.triggered)
        XCTAssertEqual(allowed(c), Set("gnl".utf8), "only the tools' names (get_weather, now, lookup)")
        feed(c, "get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": ")
        XCTAssertEqual(allowed(c), Set("1234567".utf8), "the schema's bounds: 1...7")
        feed(c, "3}}\n</tool_call>\n")
        XCTAssertTrue(c.canEnd, "a line break after a call does not force another")
        XCTAssertFalse(c.isComplete, "a second call may follow")
        feed(c, "\n<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>")
        XCTAssertTrue(c.canEnd)
        XCTAssertFalse(allowed(c).contains(UInt8(ascii: "S")), "after the calls, no prose")

        // the token that brings the trigger goes on with what no call allows: free again
        let broken = try constraint(.hermes)
        broken.acceptFree(Array("<tool_call>}".utf8))
        XCTAssertFalse(broken.triggered)
        XCTAssertEqual(allowed(broken).count, 256)
        feed(broken, "<tool_call>")
        XCTAssertFalse(broken.triggered, "one trigger only")

        // a reasoning block that opens the reply, or that the prompt left open, never triggers
        expectTrigger(try constraint(.hermes), free: "\n<think>\nI could write <tool_call> now.\n", trigger: "</think>\n\n<tool_call>")
        expectTrigger(try constraint(.hermes, thought: true), free: "Use <tool_call>? Yes.</think>", trigger: "<tool_call>")
        XCTAssertTrue(ChatTemplate.opensThought(Array("<|im_start|>assistant\n<think>\n".utf8)))
        XCTAssertFalse(ChatTemplate.opensThought(Array("<|im_start|>assistant\n<think>\n\n</think>\n\n".utf8)))
        XCTAssertFalse(ChatTemplate.opensThought(Array("<|im_start|>assistant\n".utf8)))
        XCTAssertFalse(ChatTemplate.opensThought(Array("<|im_start|>user\nWhat does <think> do?<|im_end|>\n<|im_start|>assistant\n".utf8)),
                       "a message that mentions the tag")

        // Llama 3: a reply that opens as {"name" is a call; JSON elsewhere or with another key is not
        let llama = try constraint(.llama3)
        expectTrigger(llama, free: " {\"na", trigger: "me\": \"")
        feed(llama, "now\", \"")
        XCTAssertEqual(allowed(llama), Set("p".utf8), "Llama 3 writes parameters")
        feed(llama, "parameters\": {}}")
        XCTAssertTrue(llama.isComplete)
        for reply in ["The answer: {\"name\": \"now\"", "{\"city\": \"Paris\", \"name\": \"x\"}"] {
            let l = try constraint(.llama3)
            feed(l, reply)
            XCTAssertFalse(l.triggered, reply)
        }
        let late = try constraint(.llama3)
        feed(late, "Let me check.<|python_tag|>{\"name\": \"now\"")
        XCTAssertFalse(late.triggered, "Llama 3's tag counts where the reply opens, as its parser reads it")
        let tagged = try constraint(.llama3)
        expectTrigger(tagged, free: " <|python", trigger: "_tag|>")
        feed(tagged, "{\"name\": \"now\", \"parameters\": {}}")
        XCTAssertTrue(tagged.isComplete)

        // Mistral Nemo: [TOOL_CALLS] then the JSON list
        let nemo = try constraint(.mistral)
        feed(nemo, "Sure. [TOOL_CALLS][{\"name\": \"now\", \"arguments\": {}}")
        XCTAssertTrue(nemo.triggered)
        XCTAssertTrue(allowed(nemo).isSubset(of: Set(",] \n".utf8)), "another call or the list's end")
        XCTAssertTrue(allowed(nemo).contains(UInt8(ascii: "]")))
    }

    /// Where a grammar holds the calls, a streamed reply's calls go out as they are written: a
    /// call's id and name once its name is whole, then its arguments' JSON text in pieces that
    /// join into what the model wrote (nested "name" keys and strings that look like JSON are
    /// arguments); a reply cut short leaves its last call open.
    func testCallsStreamAsTheyAreWritten() throws {
        func stream(_ syntax: ToolCallFormat.Syntax, _ choice: ToolChoice, _ reply: String, step: Int = 3)
            -> (content: String, deltas: [ToolCallDelta], s: ToolCallStream) {
            let f = format(syntax)
            let s = ToolCallStream(setup: ToolCallSetup(format: f, grammar: try! f.grammar(tools: tools, choice: choice, parallel: true),
                                                        parallel: true, names: ["get_weather", "now", "lookup"]))
            var content = "", deltas: [ToolCallDelta] = []
            let chars = Array(reply)
            for i in stride(from: 0, to: chars.count, by: step) {
                content += s.push(String(chars[i..<min(i + step, chars.count)]))
                deltas += s.takeCallDeltas()
            }
            let (rest, calls) = s.finish()
            XCTAssertTrue(calls.isEmpty, "the calls went out as written")
            return (content + rest, deltas + s.takeCallDeltas(flush: true), s)
        }
        func joined(_ deltas: [ToolCallDelta]) -> [(id: String, name: String, arguments: String)] {
            var out: [(id: String, name: String, arguments: String)] = []
            for d in deltas {
                if let id = d.id {
                    XCTAssertEqual(d.index, out.count, "a new call takes the next index")
                    XCTAssertEqual(d.arguments, "")
                    out.append((id, d.name ?? "", ""))
                } else {
                    XCTAssertEqual(d.index, out.count - 1, "pieces of the last announced call")
                    XCTAssertNil(d.name)
                    out[d.index].arguments += d.arguments
                }
            }
            return out
        }

        let weather = #"{"city": "Zürich", "days": 3}"#
        for step in [1, 3, 17] {
            let (content, deltas, s) = stream(.hermes, .auto, "Checking. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": \(weather)}\n</tool_call>\n<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>", step: step)
            XCTAssertEqual(content, "Checking. ")
            let calls = joined(deltas)
            XCTAssertEqual(calls.map(\.name), ["get_weather", "now"])
            XCTAssertEqual(calls.map(\.arguments), [weather, "{}"])
            XCTAssertTrue(calls.allSatisfy { $0.id.hasPrefix("call_") && $0.id.count == 29 })
            XCTAssertNotEqual(calls[0].id, calls[1].id)
            XCTAssertGreaterThan(deltas.count, step == 17 ? 3 : 6, "arguments in several pieces")
            XCTAssertTrue(s.callsComplete && s.streamsCalls)
        }

        // cut short inside the arguments: the call is open
        let (_, cut, s) = stream(.hermes, .required, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"ci")
        XCTAssertEqual(joined(cut).map(\.arguments), [#"{"ci"#])
        XCTAssertFalse(s.callsComplete)

        // arguments that hold "name" keys and JSON-looking strings; Llama 3's parameters
        let nested = #"{"name": "Paris", "inner": {"name": "x", "s": "{\"name\": 1, \"arguments\": [}"}}"#
        let (_, l3, _) = stream(.llama3, .auto, #"{"name": "lookup", "parameters": "# + nested + "}")
        XCTAssertEqual(joined(l3).map(\.name), ["lookup"])
        XCTAssertEqual(joined(l3).map(\.arguments), [nested])

        // Mistral's list after its marker; the generic format's tool_calls, and its response as content
        let (_, m, _) = stream(.mistral, .required, #"[TOOL_CALLS][{"name": "now", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "a", "days": 1}}]"#)
        XCTAssertEqual(joined(m).map(\.name), ["now", "get_weather"])
        XCTAssertEqual(joined(m).map(\.arguments), ["{}", #"{"city": "a", "days": 1}"#])
        let (_, g, gs) = stream(.generic, .auto, #"{"tool_calls": [{"name": "now", "arguments": {}}]}"#)
        XCTAssertEqual(joined(g).map(\.name), ["now"])
        XCTAssertTrue(gs.callsComplete)
        let (answer, none, ns) = stream(.generic, .auto, #"{"response": "It is {\"sunny\"}"}"#)
        XCTAssertEqual(answer, #"It is {"sunny"}"#)
        XCTAssertTrue(none.isEmpty)
        XCTAssertFalse(ns.callsComplete)

        // the stream reads calls from where the constraint triggers, not from every hold: JSON
        // that is no call, a marker inside a reasoning block, then a real call after it
        let (notCall, none2, nc) = stream(.llama3, .auto, #"{"city": "Paris", "name": "x"}"#)
        XCTAssertTrue(none2.isEmpty)
        XCTAssertEqual(notCall, #"{"city": "Paris", "name": "x"}"#)
        XCTAssertFalse(nc.callsComplete)
        let thought = "<think>\nCall <tool_call> with {\"name\": \"now\"}?\n</think>\n\nIt is noon."
        let (noon, none3, _) = stream(.hermes, .auto, thought)
        XCTAssertTrue(none3.isEmpty)
        XCTAssertEqual(noon, thought, "nothing lost")
        let (before, real, _) = stream(.hermes, .auto, "<think>\nMaybe <tool_call>.\n</think>\n\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>")
        XCTAssertEqual(joined(real).map(\.name), ["now"])
        XCTAssertEqual(before, "<think>\nMaybe <tool_call>.\n</think>")
        // the caller's own grammar replaced the tools' grammar: calls come whole from finish()
        let f0 = format(.hermes)
        let mine = ToolCallStream(setup: ToolCallSetup(format: f0, grammar: try f0.grammar(tools: tools, choice: .auto, parallel: true),
                                                       parallel: true, names: ["now"]), grammarHolds: false)
        _ = mine.push("<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call> Done.")
        XCTAssertTrue(mine.takeCallDeltas().isEmpty)
        XCTAssertEqual(mine.finish().1.map(\.name), ["now"])

        // no grammar (Mistral's name[ARGS] syntax under auto): the calls come whole from finish()
        let f = ToolCallFormat(.mistral, argsMarker: true)
        let free = ToolCallStream(setup: ToolCallSetup(format: f, grammar: nil, parallel: true, names: ["now"]))
        XCTAssertEqual(free.push("[TOOL_CALLS]now[ARGS]{}"), "")
        XCTAssertTrue(free.takeCallDeltas().isEmpty)
        XCTAssertEqual(free.finish().1.map(\.name), ["now"])
        XCTAssertFalse(free.streamsCalls)
    }

    /// Streaming: text goes out until a call may begin, the call never does, and content after
    /// a call (or a held reply that was no call) comes at the end.
    func testStreamHoldsCallsBack() {
        func run(_ syntax: ToolCallFormat.Syntax, _ pieces: [String]) -> (sent: String, rest: String, calls: [String]) {
            let s = ToolCallStream(setup: ToolCallSetup(format: format(syntax), grammar: nil, parallel: true, names: ["now"]))
            let sent = pieces.map { s.push($0) }.joined()
            let (rest, calls) = s.finish()
            return (sent, rest, calls.map(\.name))
        }
        let h = run(.hermes, ["\nLet me ", "check.<", "tool_", "call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>", " Done."])
        XCTAssertEqual(h.sent, "\nLet me check.")
        XCTAssertEqual(h.rest, " Done.")
        XCTAssertEqual(h.calls, ["now"])
        let plain = run(.hermes, ["a <", "b ", "<tool", " no"])
        XCTAssertEqual(plain.sent + plain.rest, "a <b <tool no")
        XCTAssertEqual(plain.calls, [])
        let l = run(.llama3, [" {\"name\": \"now\", ", "\"parameters\": {}}"])
        XCTAssertEqual(l.sent, "")
        XCTAssertEqual(l.rest, "")
        XCTAssertEqual(l.calls, ["now"])
        XCTAssertEqual(run(.llama3, ["Hello", " world"]).sent, "Hello world")
        let notCall = run(.llama3, ["{\"a\": ", "1}"])
        XCTAssertEqual(notCall.sent + notCall.rest, "{\"a\": 1}")
        // the generic format's answer streams as its string's text, escapes decoded when whole
        let g = run(.generic, ["{\"resp", "onse\": \"Hel", "lo \\u00e9\\", "n\\ud83d", "\\ude00 \\\"q\\\"", "\"}"])
        XCTAssertEqual(g.sent, "Hello é\n😀 \"q\"")
        XCTAssertEqual(g.rest, "")
        XCTAssertEqual(g.calls, [])
        let gc = run(.generic, ["{\"tool", "_calls\": [{\"name\": \"now\", \"arguments\": {}}]}"])
        XCTAssertEqual(gc.sent, "")
        XCTAssertEqual(gc.calls, ["now"])
        let ws = run(.generic, ["\n{ \"response\"\n  :", " \"ok", "\" }"])
        XCTAssertEqual(ws.sent + ws.rest, "ok")
        XCTAssertEqual(ToolCallStream.decodedPrefix(Array("ab\\u00".utf8)[...]), Array("ab".utf8))
        let m = run(.mistral, ["Sure. [TOOL", "_CALLS][{\"name\": \"now\", \"arguments\": {}}]"])
        XCTAssertEqual(m.sent, "Sure. ")
        XCTAssertEqual(m.rest, "")
        XCTAssertEqual(m.calls, ["now"])
        let unknown = run(.hermes, ["<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>"])
        XCTAssertEqual(unknown.sent + unknown.rest, "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>")
    }

    func testToolsAndChoiceAreChecked() throws {
        for bad in ["{}", "[1]", "[{\"type\": \"function\"}]", "[{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]",
                    "[{\"type\": \"function\", \"function\": {\"name\": \"a\"}}, {\"type\": \"function\", \"function\": {\"name\": \"a\"}}]",
                    "[{\"type\": \"function\", \"function\": {\"name\": \"a\", \"parameters\": 3}}]"] {
            XCTAssertThrowsError(try ToolCallFormat.functions(try JSONValue.parse(bad)), bad)
        }
        XCTAssertEqual(try ToolCallFormat.functions(tools).map(\.name), ["get_weather", "now", "lookup"])
        XCTAssertEqual(try ToolChoice(json: nil), .auto)
        XCTAssertEqual(try ToolChoice(json: .string("required")), .required)
        XCTAssertEqual(try ToolChoice(json: try JSONValue.parse("{\"type\": \"function\", \"function\": {\"name\": \"now\"}}")), .function("now"))
        XCTAssertThrowsError(try ToolChoice(json: .string("always")))
        XCTAssertThrowsError(try ToolChoice(json: .number(1)))
    }

    func testMessagesForTheTemplate() throws {
        let ms = try JSONValue.parse("""
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
             {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
            """).array!
        let hermes = try format(.hermes).messages(ms, tools: tools)
        XCTAssertEqual(hermes.count, 4)
        XCTAssertEqual(hermes[2]["tool_calls"]?.array?.first?["function"]?["arguments"], try JSONValue.parse("{\"city\": \"Paris\"}"))
        XCTAssertEqual(hermes[3]["role"]?.string, "tool")
        XCTAssertEqual(hermes[2]["content"]?.string, "", "null content beside calls becomes a string")

        let generic = try format(.generic).messages(ms, tools: tools)
        XCTAssertEqual(generic.count, 4)
        let system = try XCTUnwrap(generic[0]["content"]?.string)
        XCTAssertTrue(system.hasPrefix("Be brief.\n\nYou can call these tools"))
        XCTAssertTrue(system.contains("- get_weather: Weather in a city\n  arguments: {\"type\":\"object\""))
        XCTAssertEqual(generic[2]["content"]?.string, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]}")
        XCTAssertNil(generic[2]["tool_calls"])
        XCTAssertEqual(generic[3]["role"]?.string, "user")
        XCTAssertEqual(generic[3]["content"]?.string, "Result of call_1: sunny")
        // no system message: one is added first
        let added = try format(.generic).messages([ms[1]], tools: tools)
        XCTAssertEqual(added.first?["role"]?.string, "system")
        // the generic prompt renders with the built-in patterns
        let text = try ChatTemplate().render(messages: generic).string
        XCTAssertTrue(text.contains("User: Result of call_1: sunny"))
    }
}
