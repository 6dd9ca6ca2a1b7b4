// Adding special tokens to a trained tokenizer, as HF tokenizers' add_special_tokens does: each
// new token takes the next id after the vocabulary, is cut out of raw text before BPE (so it is
// never split and plain text without its string never produces it) and is saved in
// tokenizer.json's added_tokens with special = true.

extension Tokenizer {
    /// A tokenizer with `contents` appended as special added tokens (ids vocabSize, vocabSize+1,
    /// ... in order); contents that already are added tokens keep their ids. Throws if a content
    /// is empty or already a plain vocabulary piece (it would then have two ids).
    public func addingSpecialTokens(_ contents: [String]) throws -> Tokenizer {
        var pieces = model.pieces
        var added = addedTokens
        var seen = Set(addedTokens.map(\.content))
        for c in contents where !seen.contains(c) {
            guard !c.isEmpty else { throw HMSTError.invalidArgument("a special token cannot be empty") }
            if model.ids[Array(c.utf8)] != nil {
                throw HMSTError.invalidArgument("\"\(c)\" is already a plain vocabulary piece; it cannot also be a special token")
            }
            added.append(AddedToken(id: Int32(pieces.count), content: c, special: true))
            pieces.append(Array(c.utf8))
            seen.insert(c)
        }
        if added.count == addedTokens.count { return self }
        let bpe = try BPEModel(pieces: pieces, ids: model.ids, mergeList: model.mergeList, ignoreMerges: model.ignoreMerges)
        return Tokenizer(model: bpe, addedTokens: added, addPrefixSpace: addPrefixSpace)
    }
}
