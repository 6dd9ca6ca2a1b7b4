// ModelInfo: the JSON description of a loaded model (hmst_model_info_json, `hmst info`).

public enum ModelInfo {
    public static func json(_ m: LanguageModel) -> String {
        let d = m.dims
        let w = JSONWriter()
        w.object {
            w.field("path", m.report.path)
            w.field("untrained", m.report.untrained)
            w.field("config", m.config)
            w.field("n_params", m.parameterCount)
            w.field("n_params_active", m.activeParameterCount)
            w.field("weights", m.weightsType)
            w.field("has_tokenizer", m.tokenizer != nil)
            // the heads stored beside the weights (nil: none)
            w.field("copy_head_key_size", m.decoder.copyHead.map { JSONValue.number(Double($0.D)) } ?? .null)
            w.field("copy_head_agreement_rank", m.decoder.copyHead.map { JSONValue.number(Double($0.A)) } ?? .null)
            w.field("exit_head_layer", m.decoder.exitHead.map { JSONValue.number(Double($0.layer)) } ?? .null)
            w.field("shape", object: {
                w.field("V", d.V); w.field("C", d.C); w.field("L", d.L); w.field("H", d.H); w.field("KV", d.KV)
                w.field("Dh", d.Dh); w.field("F", d.F); w.field("E", d.E); w.field("K", d.K)
                w.field("max_positions", d.maxPositions); w.field("tied_embeddings", d.tiedEmbeddings)
            })
            w.field("load", object: {
                w.field("ms", m.report.loadMs)
                w.field("numa_requested", m.report.placement.requested.name)
                w.field("numa_applied", m.report.placement.applied.name)
                w.field("placement", m.report.placement.summary)
                w.field("warnings", m.report.warnings + m.report.placement.warnings)
            })
        }
        return w.output
    }
}
