// Memory routes, for both tiers (episodic: SSM-compressed recent entries; semantic: the FAISS
// store), every entry owned by a user or session id and every search scoped to one owner:
//   POST   /v1/hmst/memory/{tier}/entries        {owner, text, source?, importance?} -> the new id
//   POST   /v1/hmst/memory/{tier}/search         {owner, query, k?}  (tier may be "both")
//   DELETE /v1/hmst/memory/{tier}/entries/{id}?owner=O
//   DELETE /v1/hmst/memory/{tier}/entries?owner=O (tier may be "both": every entry of O)
//   GET    /v1/hmst/memory/{tier}/entries?owner=O (the owner's entries, ids ascending)
//   GET    /v1/hmst/memory/stats?owner=O
// A change is answered only once it is saved (MemoryPersister: group commit).
import HMSTCore
import Hummingbird

struct MemoryRoutes {
    let state: ServerState

    private func store() throws -> (MemoryStore, MemoryPersister) {
        guard let m = state.memory, let p = state.persister else {
            throw APIError.notFound("memory is not enabled on this server: start it with --memory DIR", code: "memory_disabled")
        }
        return (m, p)
    }

    private func tier(_ context: ServerContext, allowBoth: Bool) throws -> MemoryTier {
        let name = context.parameters.get("tier") ?? ""
        guard let t = MemoryTier(rawValue: name), allowBoth || t != .both else {
            throw APIError.notFound("unknown memory tier '\(name)': use episodic, semantic" + (allowBoth ? " or both" : ""),
                                    param: "tier", code: "unknown_tier")
        }
        return t
    }

    private func json(_ v: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: v.serialized + "\n")))
    }

    private func ownerQuery(_ request: Request, required: Bool) throws -> String? {
        guard let o = request.uri.queryParameters.get("owner") else {
            if required { throw APIError.invalid("the query parameter 'owner' is required", param: "owner") }
            return nil
        }
        return try Fields.checkOwner(o, param: "owner")
    }

    func add(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let t = try tier(context, allowBoth: false)
        let (store, persister) = try store()
        let f = try Fields(body: try await request.collectBody(upTo: state.limits.maxBodyBytes))
        let owner = try f.owner()
        guard let text = try f.string("text", required: true), !text.isEmpty else { throw APIError.invalid("'text' must not be empty", param: "text") }
        guard text.utf8.count <= state.limits.maxMemoryTextBytes else {
            throw APIError.invalid("'text' has \(text.utf8.count) bytes; at most \(state.limits.maxMemoryTextBytes)", param: "text")
        }
        let source = try f.string("source") ?? ""
        guard source.utf8.count <= state.limits.maxMemoryTextBytes else {
            throw APIError.invalid("'source' has \(source.utf8.count) bytes; at most \(state.limits.maxMemoryTextBytes)", param: "source")
        }
        let importance = try f.number("importance", in: 0...1) ?? 0.5
        let model = state.model
        let id = try await state.pool.run { _ in
            try store.add(text: text, model: model, tier: t, owner: owner, source: source, importance: importance)
        }
        try await persister.commit()
        return json(.object([("object", .string("hmst.memory.entry")), ("id", .number(Double(id))), ("tier", .string(t.rawValue)),
                             ("owner", .string(owner)), ("saved", .bool(true))]))
    }

    func search(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let t = try tier(context, allowBoth: true)
        let (store, _) = try store()
        let f = try Fields(body: try await request.collectBody(upTo: state.limits.maxBodyBytes))
        let owner = try f.owner()
        guard let query = try f.string("query", required: true), !query.isEmpty else {
            throw APIError.invalid("'query' must not be empty", param: "query")
        }
        guard query.utf8.count <= state.limits.maxMemoryTextBytes else {
            throw APIError.invalid("'query' has \(query.utf8.count) bytes; at most \(state.limits.maxMemoryTextBytes)", param: "query")
        }
        let k = try f.int("k", in: 1...state.limits.maxSearchK) ?? 5
        let model = state.model
        let hits = try await state.pool.run { _ in try store.search(text: query, model: model, tier: t, k: k, owner: owner) }
        let data: [JSONValue] = hits.map {
            .object([("object", .string("hmst.memory.hit")), ("id", .number(Double($0.id))), ("tier", .string($0.tier.rawValue)),
                     ("score", .number(Double($0.score))), ("text", .string($0.text)), ("owner", .string($0.owner))])
        }
        return json(.object([("object", .string("list")), ("data", .array(data))]))
    }

    func deleteOne(_ request: Request, _ context: ServerContext) async throws -> Response {
        let t = try tier(context, allowBoth: false)
        let (store, persister) = try store()
        guard let owner = try ownerQuery(request, required: true) else { throw APIError.invalid("'owner' is required", param: "owner") }
        let idText = context.parameters.get("id") ?? ""
        guard let id = Int64(idText), id >= 0 else { throw APIError.invalid("entry id '\(idText)' must be a non-negative integer", param: "id") }
        // another owner's entry is as absent as a missing one
        guard (try? store.owner(id: id, tier: t)) == owner else {
            throw APIError.notFound("no \(t.rawValue) entry \(id) for owner '\(owner)'", param: "id")
        }
        let removed = try store.remove(ids: [id], tier: t).removed
        try await persister.commit()
        return json(.object([("object", .string("hmst.memory.entry.deleted")), ("id", .number(Double(id))),
                             ("tier", .string(t.rawValue)), ("deleted", .bool(removed == 1))]))
    }

    func deleteOwner(_ request: Request, _ context: ServerContext) async throws -> Response {
        let t = try tier(context, allowBoth: true)
        let (store, persister) = try store()
        guard let owner = try ownerQuery(request, required: true) else { throw APIError.invalid("'owner' is required", param: "owner") }
        let n = try store.removeAll(owner: owner, tier: t)
        try await persister.commit()
        return json(.object([("object", .string("hmst.memory.owner.deleted")), ("owner", .string(owner)),
                             ("tier", .string(t.rawValue)), ("deleted", .number(Double(n)))]))
    }

    func list(_ request: Request, _ context: ServerContext) async throws -> Response {
        let t = try tier(context, allowBoth: true)
        let (store, _) = try store()
        guard let owner = try ownerQuery(request, required: true) else { throw APIError.invalid("'owner' is required", param: "owner") }
        var data: [JSONValue] = []
        for tt in t == .both ? [MemoryTier.episodic, .semantic] : [t] {
            for id in try store.ids(owner: owner, tier: tt) {
                let text: String
                switch tt {
                case .episodic: guard let e = try? store.episodic?.entry(id: id) else { continue }; text = e.text
                default: guard let m = try? store.semantic?.metadata(id: id) else { continue }; text = m.text
                }
                data.append(.object([("object", .string("hmst.memory.entry")), ("id", .number(Double(id))), ("tier", .string(tt.rawValue)),
                                     ("text", .string(text)), ("owner", .string(owner))]))
            }
        }
        return json(.object([("object", .string("list")), ("data", .array(data))]))
    }

    func stats(_ request: Request, _ context: ServerContext) async throws -> Response {
        let (store, persister) = try store()
        let owner = try ownerQuery(request, required: false)
        func tierStats(_ t: MemoryTier) throws -> JSONValue {
            var o: [(String, JSONValue)] = []
            switch t {
            case .episodic:
                o.append(("count", .number(Double(store.episodic?.count ?? 0))))
                o.append(("max_entries", .number(Double(store.episodic?.config.maxEntries ?? 0))))
            default:
                o.append(("count", .number(Double(store.semantic?.count ?? 0))))
                if let s = store.semantic?.stats() { o.append(("index", .string(s.description))); o.append(("phase", .string(s.phase.rawValue))) }
            }
            if let owner { o.append(("owner_count", .number(Double(try store.ids(owner: owner, tier: t).count)))) }
            return .object(o)
        }
        return json(.object([("object", .string("hmst.memory.stats")), ("directory", .string(store.directory)),
                             ("episodic", try tierStats(.episodic)), ("semantic", try tierStats(.semantic)),
                             ("saves", .number(Double(persister.saveCount)))]))
    }
}
