// The relations of the fact benchmark: for each, the sentence that states a fact and the question
// templates that ask it. The last template of every relation is held out of training, so the
// evaluation can tell a learnt question shape from a new one.

/// A question pattern; `{e}` stands for the entity.
public struct QuestionTemplate: Sendable, Equatable {
    public let id: String           // "<relation>/<index>"
    public let pattern: String
    public let heldOut: Bool        // never used in training items

    public func question(entity: String) -> String { FactRelation.fill(pattern, entity: entity, value: "") }
}

public struct FactRelation: Sendable, Equatable {
    public let id: String
    public let sentence: String     // `{e}` the entity, `{v}` the value
    public let templates: [QuestionTemplate]
    /// relations of the same entity whose value gives this one away (a country's two- and
    /// three-letter codes share letters): deleting a fact deletes those facts' texts with it
    /// (the items' linked_memory)
    public let givenAwayBy: [String]

    init(_ id: String, _ sentence: String, _ patterns: [String], heldOut: Int = 1, givenAwayBy: [String] = []) {
        self.id = id
        self.sentence = sentence
        self.givenAwayBy = givenAwayBy
        templates = patterns.enumerated().map { i, p in
            QuestionTemplate(id: "\(id)/\(i)", pattern: p, heldOut: i >= patterns.count - heldOut)
        }
    }

    public func text(entity: String, value: String) -> String { FactRelation.fill(sentence, entity: entity, value: value) }

    public var trainingTemplates: [QuestionTemplate] { templates.filter { !$0.heldOut } }

    /// Replaces `{e}` and `{v}` (no Foundation in the core).
    static func fill(_ pattern: String, entity: String, value: String) -> String {
        var out = ""
        var rest = Substring(pattern)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let tail = rest[open...]
            if tail.hasPrefix("{e}") {
                out += entity
            } else if tail.hasPrefix("{v}") {
                out += value
            } else {
                out += "{"
                rest = rest[rest.index(after: open)...]
                continue
            }
            rest = rest[rest.index(open, offsetBy: 3)...]
        }
        return out + rest
    }

    // Synthetic relations: every invented entity has all of these.
    public static let capital = FactRelation("capital", "The capital of {e} is {v}.", [
        "What is the capital of {e}?", "Which city is the capital of {e}?", "Name the capital city of {e}.",
        "{e}'s capital is which city?"])
    public static let foundingYear = FactRelation("founding_year", "{e} was founded in {v}.", [
        "In what year was {e} founded?", "When was {e} founded?", "What is the founding year of {e}?",
        "{e} was founded in which year?"])
    public static let founder = FactRelation("founder", "{e} was founded by {v}.", [
        "Who founded {e}?", "Who was the founder of {e}?", "Name the founder of {e}.",
        "{e} was founded by whom?"])
    public static let colour = FactRelation("colour", "The national colour of {e} is {v}.", [
        "What is the national colour of {e}?", "Which colour is the national colour of {e}?",
        "Name the national colour of {e}.", "{e}'s national colour is which colour?"])
    public static let river = FactRelation("river", "The longest river in {e} is called {v}.", [
        "What is the longest river in {e}?", "Which river is the longest in {e}?", "Name the longest river in {e}.",
        "The longest river of {e} is called what?"])
    public static let animal = FactRelation("animal", "The national animal of {e} is the {v}.", [
        "What is the national animal of {e}?", "Which animal is the national animal of {e}?",
        "Name the national animal of {e}.", "{e} has which animal as its national animal?"])
    public static let mountain = FactRelation("mountain", "The highest mountain in {e} is {v}.", [
        "What is the highest mountain in {e}?", "Which mountain is the highest in {e}?",
        "Name the highest mountain in {e}.", "The highest peak of {e} is which mountain?"])
    public static let language = FactRelation("language", "The people of {e} speak {v}.", [
        "What language do the people of {e} speak?", "Which language is spoken in {e}?",
        "Name the language of {e}.", "In {e}, people speak which language?"])

    // Real relations, from miscfiles' countries table; real countries share `capital`.
    public static let isoAlpha2 = FactRelation("iso_alpha2", "The two-letter ISO code of {e} is {v}.", [
        "What is the two-letter ISO code of {e}?", "Which two-letter country code does {e} have?",
        "Name the ISO 3166 alpha-2 code of {e}.", "{e} is abbreviated with which two-letter code?"], givenAwayBy: ["iso_alpha3"])
    public static let isoAlpha3 = FactRelation("iso_alpha3", "The three-letter ISO code of {e} is {v}.", [
        "What is the three-letter ISO code of {e}?", "Which three-letter country code does {e} have?",
        "Name the ISO 3166 alpha-3 code of {e}.", "{e} is abbreviated with which three-letter code?"], givenAwayBy: ["iso_alpha2"])

    /// The relations of an invented entity, in the order its facts are listed.
    public static let synthetic: [FactRelation] = [capital, foundingYear, founder, colour, river, animal, mountain, language]
    /// Every relation, in the order the manifest lists them.
    public static let all: [FactRelation] = synthetic + [isoAlpha2, isoAlpha3]

    public static func named(_ id: String) -> FactRelation? { all.first { $0.id == id } }
}
