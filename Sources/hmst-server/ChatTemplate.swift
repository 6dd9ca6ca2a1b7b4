// ChatTemplate: how chat messages become one prompt. A checkpoint may carry chat_template.json:
//   {"system": "System: {content}\n", "user": "User: {content}\n",
//    "assistant": "Assistant: {content}\n", "generation_prompt": "Assistant:",
//    "stop": ["\nUser:"]}
// Each message is its role's pattern with {content} replaced; the generation prompt follows the
// last message; "stop" strings are added to every chat request's own. Without the file the
// default above is used (README, "hmst serve"). No Jinja: patterns only, on purpose.
import HMSTCore

struct ChatTemplate: Sendable {
    var system = "System: {content}\n"
    var user = "User: {content}\n"
    var assistant = "Assistant: {content}\n"
    var generationPrompt = "Assistant:"
    var stop = ["\nUser:"]

    static let fileName = "chat_template.json"

    /// The checkpoint's chat_template.json, or the default when it has none.
    static func load(checkpoint: String) throws -> ChatTemplate {
        var t = ChatTemplate()
        let path = checkpoint + "/" + fileName
        guard FileIO.exists(path) else { return t }
        let j = try JSONValue.parse(file: path)
        func str(_ k: String, _ into: inout String) throws {
            guard let v = j[k] else { return }
            guard let s = v.string, k == "generation_prompt" || s.contains("{content}") else {
                throw HMSTError.badFormat("\(path): \"\(k)\" must be a string containing {content}")
            }
            into = s
        }
        try str("system", &t.system)
        try str("user", &t.user)
        try str("assistant", &t.assistant)
        try str("generation_prompt", &t.generationPrompt)
        if let s = j["stop"] {
            guard let a = s.array, a.allSatisfy({ $0.string != nil }) else { throw HMSTError.badFormat("\(path): \"stop\" must be an array of strings") }
            t.stop = a.compactMap(\.string)
        }
        return t
    }

    /// messages: (role, content) with role system, user, assistant (developer = system, tool = user).
    /// The patterns are markup (a special token written in the template is that token); each
    /// message's content is literal text, so a user cannot type a role marker or end-of-text.
    func render(_ messages: [(role: String, content: String)]) -> PromptText {
        var out = PromptText()
        for m in messages {
            let pattern: String
            switch m.role {
            case "system", "developer": pattern = system
            case "assistant": pattern = assistant
            default: pattern = user
            }
            for (i, part) in pattern.components(separatedBy: "{content}").enumerated() {
                if i > 0 { out.literal(m.content) }
                out.markup(part)
            }
        }
        out.markup(generationPrompt)
        return out
    }
}

#if canImport(Foundation)
import Foundation
#endif
