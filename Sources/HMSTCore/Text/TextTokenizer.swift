// TextTokenizer: what generation, the server and the data tools need of a tokenizer. The BPE
// Tokenizer (Tokenizer.swift) is the one hmst ships; tests use a byte tokenizer.

public protocol TextTokenizer: AnyObject, Sendable {
    var vocabSize: Int { get }
    /// The end-of-text token that ends generation, if the vocabulary has one.
    var eosId: Int32? { get }
    func encode(bytes: [UInt8]) -> [Int32]
    /// A prompt whose literal ranges get no special tokens (PromptText).
    func encode(_ prompt: PromptText) -> [Int32]
    /// Throws on an id outside the vocabulary.
    func decode(_ ids: [Int32]) throws -> [UInt8]
}

extension TextTokenizer {
    /// For a tokenizer without special tokens every byte is literal already.
    public func encode(_ prompt: PromptText) -> [Int32] { encode(bytes: prompt.bytes) }
}
