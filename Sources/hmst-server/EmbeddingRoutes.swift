// POST /v1/embeddings: the model's pooled embedding of each input (the mean of the final-norm
// hidden states over all tokens, unit length: LanguageModel.embed, Inference/Encode.swift),
// as floats or as base64 little-endian float32 (encoding_format, which the openai client sets).
import Foundation
import HMSTCore
import Hummingbird

struct EmbeddingRoutes {
    let state: ServerState
    static let maxTokensPerInput = 8192

    func handle(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let f = try Fields(body: try await request.collectBody(upTo: state.limits.maxBodyBytes))
        _ = try f.string("model")
        let format = try f.string("encoding_format") ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalid("'encoding_format' must be float or base64", param: "encoding_format")
        }
        let C = state.model.dims.C
        if let d = try f.int("dimensions", in: 1...Int(Int32.max)), d != C {
            throw APIError.invalid("'dimensions' must be \(C), this model's embedding size", param: "dimensions")
        }
        _ = try f.string("user")
        let inputs = try tokenized(f)
        let model = state.model
        let vectors = try await state.pool.run { _ in try model.embed(batch: inputs) }
        let promptTokens = inputs.reduce(0) { $0 + $1.count }
        state.metrics.embedded(promptTokens: promptTokens)
        context.stats.add(prompt: promptTokens)
        let data: [JSONValue] = vectors.enumerated().map { i, v in
            let e: JSONValue
            if format == "base64" {
                var le = v.map { $0.bitPattern.littleEndian }
                let b64 = Data(bytes: &le, count: le.count * 4).base64EncodedString()
                e = .string(b64)
            } else {
                e = .array(v.map { .number(Double($0)) })
            }
            return .object([("object", .string("embedding")), ("index", .number(Double(i))), ("embedding", e)])
        }
        let obj: JSONValue = .object([
            ("object", .string("list")), ("data", .array(data)), ("model", .string(state.modelName)),
            ("usage", .object([("prompt_tokens", .number(Double(promptTokens))), ("total_tokens", .number(Double(promptTokens)))])),
        ])
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: obj.serialized + "\n")))
    }

    /// input: a string, an array of strings, an array of token ids, or an array of such arrays.
    private func tokenized(_ f: Fields) throws -> [[Int32]] {
        guard let input = f["input"] else { throw APIError.invalid("'input' is required", param: "input") }
        let V = state.tokenizer.vocabSize
        func ids(_ a: [JSONValue]) throws -> [Int32] {
            try a.map {
                guard let i = $0.int, i >= 0, i < V else { throw APIError.invalid("token ids in 'input' must be integers in 0..<\(V)", param: "input") }
                return Int32(i)
            }
        }
        var out: [[Int32]]
        if let s = input.string { out = [state.encode(PromptText(literal: s))] }
        else if let a = input.array, !a.isEmpty {
            if a.allSatisfy({ $0.string != nil }) { out = a.compactMap(\.string).map { state.encode(PromptText(literal: $0)) } }
            else if a.allSatisfy({ $0.number != nil }) { out = [try ids(a)] }
            else if a.allSatisfy({ $0.array != nil }) { out = try a.compactMap(\.array).map(ids) }
            else { throw APIError.invalid("'input' must be a string, an array of strings, an array of token ids or an array of such arrays", param: "input") }
        } else {
            throw APIError.invalid("'input' must be a non-empty string or array", param: "input")
        }
        guard out.count <= state.limits.maxEmbeddingInputs else {
            throw APIError.invalid("'input' holds \(out.count) inputs; at most \(state.limits.maxEmbeddingInputs)", param: "input")
        }
        for (i, t) in out.enumerated() {
            guard !t.isEmpty else { throw APIError.invalid("input \(i) has no tokens", param: "input") }
            guard t.count <= EmbeddingRoutes.maxTokensPerInput else {
                throw APIError.invalid("input \(i) has \(t.count) tokens; at most \(EmbeddingRoutes.maxTokensPerInput)", param: "input",
                                       code: "context_length_exceeded")
            }
        }
        return out
    }
}
