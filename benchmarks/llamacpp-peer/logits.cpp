// llamacpp_logits: the logits llama.cpp computes for a list of token ids, one llama_decode per
// token (the decode path), written as float32 [tokens, vocab] to OUT. Used by
// benchmarks/llamacpp_peer.py to check that llama.cpp and hmst run the same model; built there
// against a llama.cpp build tree (libllama and ggml), never part of hmst.
//   llamacpp_logits MODEL.gguf OUT.bin THREADS TOKEN...
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

static void quiet(ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL.gguf OUT.bin THREADS TOKEN...\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = false;  // as llama-bench --repack 0 in llamacpp_peer.py (AMX faults here)
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    std::vector<llama_token> toks;
    for (int i = 4; i < argc; i++) toks.push_back((llama_token) atoi(argv[i]));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) toks.size() + 16;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = atoi(argv[3]);
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE * out = fopen(argv[2], "wb");
    if (!out) { fprintf(stderr, "cannot write %s\n", argv[2]); return 1; }
    for (size_t i = 0; i < toks.size(); i++) {
        if (llama_decode(ctx, llama_batch_get_one(&toks[i], 1)) != 0) { fprintf(stderr, "llama_decode failed at %zu\n", i); return 1; }
        const float * l = llama_get_logits_ith(ctx, -1);
        if (fwrite(l, sizeof(float), (size_t) n_vocab, out) != (size_t) n_vocab) { fprintf(stderr, "short write\n"); return 1; }
    }
    fclose(out);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
