// POST /tokenize and POST /detokenize, as llama.cpp's server has them: the served model's
// tokenizer on its own, for clients that count or build prompts in token ids (a completion's
// prompt may be ids). /tokenize {"content", "with_pieces"} -> {"tokens": [id] or [{id, piece}]};
// /detokenize {"tokens": [id]} -> {"content"}. A piece that is not whole UTF-8 (a byte of a
// character) is its bytes with U+FFFD, as completions send text.
import HMSTCore
import Hummingbird

struct TokenizeRoutes {
    let state: ServerState
    static let maxTokens = 1 << 20

    func tokenize(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let f = try Fields(body: try await request.collectBody(upTo: state.limits.maxBodyBytes))
        guard let content = try f.string("content", required: true) else { throw APIError.invalid("'content' is required", param: "content") }
        let pieces = try f.bool("with_pieces") ?? false
        let ids = state.encode(content)
        let tokens: [JSONValue] = try ids.map { id in
            guard pieces else { return .number(Double(id)) }
            let piece = try state.tokenizer.decode([id])
            return .object([("id", .number(Double(id))), ("piece", .string(String(decoding: piece, as: UTF8.self)))])
        }
        return json(.object([("tokens", .array(tokens))]))
    }

    func detokenize(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let f = try Fields(body: try await request.collectBody(upTo: state.limits.maxBodyBytes))
        guard let list = f["tokens"]?.array else { throw APIError.invalid("'tokens' must be an array of token ids", param: "tokens") }
        guard list.count <= TokenizeRoutes.maxTokens else {
            throw APIError.invalid("'tokens' has \(list.count) ids; at most \(TokenizeRoutes.maxTokens)", param: "tokens")
        }
        let V = state.tokenizer.vocabSize
        let ids: [Int32] = try list.map {
            guard let i = $0.int, i >= 0, i < V else { throw APIError.invalid("'tokens' must hold token ids in 0..<\(V)", param: "tokens") }
            return Int32(i)
        }
        let bytes = try state.tokenizer.decode(ids)
        return json(.object([("content", .string(String(decoding: bytes, as: UTF8.self)))]))
    }

    private func json(_ v: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: v.serialized + "\n")))
    }
}
