/* test_model.c: the model, tokenization, context and generation functions through the real
 * library: every misuse (NULL, garbage handles, freed handles, wrong sizes, bad values) comes
 * back as a status; real use on a random micro model and on a checkpoint transformers wrote. */
#include <hmst.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <unistd.h>

#include "check.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "Tests/Golden"
#endif

static int progress_calls;
static bool count_progress(float p, void *ud) {
    (void)ud;
    progress_calls++;
    return p >= 0.0f && p <= 1.0f;
}
static bool cancel_progress(float p, void *ud) {
    (void)p;
    (void)ud;
    return false;
}

/* 1 if the model's info JSON (fetched with the buffer protocol) contains needle */
static int info_json_has(const hmst_model *m, const char *needle) {
    size_t n = 0;
    CHECK_STATUS(hmst_model_info_json(m, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    char *json = malloc(n + 1);
    if (!json) return 0;
    CHECK_STATUS(hmst_model_info_json(m, json, n + 1, &n), HMST_STATUS_OK);
    int found = strstr(json, needle) != NULL;
    free(json);
    return found;
}

static void test_model_misuse(void) {
    hmst_model *m = (hmst_model *)(uintptr_t)0x1234; /* out-params are written only on success */
    CHECK_STATUS(hmst_model_load(NULL, NULL, &m), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(m == (hmst_model *)(uintptr_t)0x1234);
    CHECK_STATUS(hmst_model_load("/nonexistent/ckpt", NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_model_load("/nonexistent/ckpt", NULL, &m), HMST_STATUS_NOT_FOUND);
    CHECK(strstr(hmst_last_error(), "/nonexistent/ckpt") != NULL);
    CHECK_STATUS(hmst_model_load("/etc/hostname", NULL, &m), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_model_load("/tmp", NULL, &m), HMST_STATUS_NOT_FOUND); /* no config.json */

    struct hmst_model_params p = hmst_model_default_params();
    CHECK(p.struct_size == sizeof p && p.load_tokenizer);
    p.numa = 99;
    CHECK_STATUS(hmst_model_load(GOLDEN_DIR "/model/tiny_untied", &p, &m), HMST_STATUS_INVALID_ARGUMENT);
    p = hmst_model_default_params();
    p.struct_size = 0;
    CHECK_STATUS(hmst_model_load(GOLDEN_DIR "/model/tiny_untied", &p, &m), HMST_STATUS_INVALID_ARGUMENT);
    p = hmst_model_default_params();
    p.progress = cancel_progress;
    CHECK_STATUS(hmst_model_load(GOLDEN_DIR "/model/tiny_untied", &p, &m), HMST_STATUS_CANCELLED);

    CHECK_STATUS(hmst_model_init_random(NULL, 0, &m), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_model_init_random("huge", 0, &m), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "micro") != NULL);
    CHECK_STATUS(hmst_model_init_random("micro", 0, NULL), HMST_STATUS_INVALID_ARGUMENT);
    /* the large preset's f32 weights (about 30e9 parameters) do not fit this machine's memory:
     * refused before anything is allocated, not an abort */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (double)pages * (double)page < 100e9) {
        m = NULL;
        CHECK_STATUS(hmst_model_init_random("large", 0, &m), HMST_STATUS_OUT_OF_MEMORY);
        CHECK(m == NULL && strstr(hmst_last_error(), "MiB of memory") != NULL);
    }

    /* garbage and NULL handles are never dereferenced */
    hmst_model *garbage = (hmst_model *)(uintptr_t)0xdeadbeef;
    struct hmst_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(hmst_model_info(NULL, &info), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_model_info(garbage, &info), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "not a live") != NULL);
    size_t n = 0;
    CHECK_STATUS(hmst_model_info_json(garbage, NULL, 0, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_model_save(garbage, "/tmp/x", "f32"), HMST_STATUS_INVALID_ARGUMENT);
    int32_t ids[4];
    CHECK_STATUS(hmst_tokenize(garbage, "hi", 2, ids, 4, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_detokenize(garbage, ids, 1, NULL, 0, &n), HMST_STATUS_INVALID_ARGUMENT);
    hmst_context *c = NULL;
    CHECK_STATUS(hmst_context_new(garbage, NULL, &c), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(c == NULL);
    hmst_model_free(NULL);
    hmst_model_free(garbage); /* unknown pointers are ignored by free */

    hmst_context *gc = (hmst_context *)(uintptr_t)0xfeedface;
    int32_t past = -5;
    CHECK_STATUS(hmst_context_reset(gc), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_n_past(gc, &past), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(past == -5);
    CHECK_STATUS(hmst_context_eval(gc, ids, 1, false), HMST_STATUS_INVALID_ARGUMENT);
    float lg[4];
    CHECK_STATUS(hmst_context_get_logits(gc, -1, lg, 4, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_route_trace(gc, NULL, NULL, 0, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_generate(gc, "x", NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    char out[8];
    CHECK_STATUS(hmst_context_last_output(gc, out, sizeof out, &n), HMST_STATUS_INVALID_ARGUMENT);
    hmst_context_free(NULL);
    hmst_context_free(gc);
}

static void test_random_model(void) {
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_init_random("micro", 7, &m), HMST_STATUS_OK);
    if (!m) return;
    struct hmst_model_info info;
    memset(&info, 0, sizeof info);
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_INVALID_ARGUMENT); /* struct_size 0 */
    info.struct_size = sizeof info;
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_OK);
    CHECK(info.n_vocab == 4096 && info.n_layer == 4 && info.n_expert == 8 && info.n_expert_used == 2);
    CHECK(info.n_params > 15000000 && info.n_params < 16000000);
    CHECK(info.n_params_active < info.n_params);
    CHECK(info.has_tokenizer == 0 && info.eos_token == -1);

    /* no tokenizer: text functions say so */
    size_t n = 0;
    int32_t ids[8];
    CHECK_STATUS(hmst_tokenize(m, "hello", 5, ids, 8, &n), HMST_STATUS_UNSUPPORTED);
    CHECK(strstr(hmst_last_error(), "tokenizer") != NULL);

    struct hmst_context_params cp = hmst_context_default_params();
    CHECK(cp.struct_size == sizeof cp && cp.n_batch == 256);
    hmst_context *c = NULL;
    cp.n_ctx = 1 << 30;
    CHECK_STATUS(hmst_context_new(m, &cp, &c), HMST_STATUS_INVALID_ARGUMENT);
    cp = hmst_context_default_params();
    cp.n_batch = 0;
    CHECK_STATUS(hmst_context_new(m, &cp, &c), HMST_STATUS_INVALID_ARGUMENT);
    cp = hmst_context_default_params();
    cp.n_ctx = 64;
    cp.trace_routes = true;
    CHECK_STATUS(hmst_context_new(m, &cp, &c), HMST_STATUS_OK);
    if (!c) {
        hmst_model_free(m);
        return;
    }
    CHECK_STATUS(hmst_generate(c, "hi", NULL, NULL), HMST_STATUS_UNSUPPORTED);
    struct hmst_sampling_params sp = hmst_sampling_default_params();
    CHECK(sp.struct_size == sizeof sp && sp.temperature > 0.79f && sp.temperature < 0.81f && sp.top_k == 50);
    struct hmst_generate_params gp = hmst_generate_default_params();
    CHECK(gp.struct_size == sizeof gp && gp.max_tokens == 50 && gp.sampling.struct_size == sizeof sp);
    struct hmst_generation_stats st = {.struct_size = 0};
    CHECK_STATUS(hmst_generate(c, "hi", &gp, &st), HMST_STATUS_INVALID_ARGUMENT); /* stats->struct_size 0 */
    st.struct_size = sizeof st;
    CHECK_STATUS(hmst_generate(c, NULL, &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
    gp.struct_size = 1u << 30;
    CHECK_STATUS(hmst_generate(c, "hi", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);

    int32_t toks[5] = {1, 2, 3, 4, 5};
    CHECK_STATUS(hmst_context_get_logits(c, -1, NULL, 0, &n), HMST_STATUS_INVALID_ARGUMENT); /* nothing yet */
    CHECK_STATUS(hmst_context_eval(c, NULL, 5, false), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_eval(c, toks, 0, false), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_eval(c, toks, (size_t)-1, false), HMST_STATUS_INVALID_ARGUMENT);
    int32_t bad[2] = {1, 4096};
    CHECK_STATUS(hmst_context_eval(c, bad, 2, false), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "4096") != NULL);
    int32_t past = -1;
    CHECK_STATUS(hmst_context_n_past(c, &past), HMST_STATUS_OK);
    CHECK(past == 0); /* a failed eval changes nothing */

    CHECK_STATUS(hmst_context_eval(c, toks, 5, true), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_n_past(c, &past), HMST_STATUS_OK);
    CHECK(past == 5);
    CHECK_STATUS(hmst_context_get_logits(c, -1, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 4096);
    float *logits = malloc(sizeof(float) * 4096);
    float *last = malloc(sizeof(float) * 4096);
    CHECK_STATUS(hmst_context_get_logits(c, 4, logits, 4096, &n), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, 4096, &n), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, SIZE_MAX, &n), HMST_STATUS_OK);
    CHECK(memcmp(logits, last, sizeof(float) * 4096) == 0);
    CHECK_STATUS(hmst_context_get_logits(c, 5, logits, 4096, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_get_logits(c, -2, logits, 4096, &n), HMST_STATUS_INVALID_ARGUMENT);

    /* route trace: 5 tokens x 4 layers x 2 */
    CHECK_STATUS(hmst_context_route_trace(c, NULL, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 5 * 4 * 2);
    int32_t experts[40];
    float gates[40];
    CHECK_STATUS(hmst_context_route_trace(c, experts, gates, SIZE_MAX, &n), HMST_STATUS_OK); /* a cap past 2^63 is room enough */
    CHECK_STATUS(hmst_context_route_trace(c, experts, gates, 40, &n), HMST_STATUS_OK);
    int ok = 1;
    for (int i = 0; i < 40; i += 2) {
        ok &= experts[i] >= 0 && experts[i] < 8 && experts[i] != experts[i + 1];
        ok &= gates[i] >= gates[i + 1] && gates[i] + gates[i + 1] > 0.999f && gates[i] + gates[i + 1] < 1.001f;
    }
    CHECK(ok);

    /* decode one more token: equals a fresh full evaluation of 6 tokens */
    int32_t six = 6;
    CHECK_STATUS(hmst_context_eval(c, &six, 1, false), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, 4096, &n), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, SIZE_MAX, &n), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_n_past(c, &past), HMST_STATUS_OK);
    CHECK(past == 0);
    int32_t all6[6] = {1, 2, 3, 4, 5, 6};
    CHECK_STATUS(hmst_context_eval(c, all6, 6, false), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, logits, 4096, &n), HMST_STATUS_OK);
    float worst = 0;
    for (int i = 0; i < 4096; i++) {
        float d = logits[i] - last[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-4f);

    /* the context's tokens, and rewind: forget positions >= 3, evaluate 4 5 6 again */
    int32_t held[8] = {0};
    CHECK_STATUS(hmst_context_tokens(c, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 6);
    CHECK_STATUS(hmst_context_tokens(c, held, 2, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_context_tokens(c, held, 8, &n), HMST_STATUS_OK);
    CHECK(n == 6 && memcmp(held, all6, sizeof all6) == 0);
    CHECK_STATUS(hmst_context_tokens(c, held, 8, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_rewind(c, 7), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "n_past") != NULL);
    CHECK_STATUS(hmst_context_rewind(c, -1), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_rewind(NULL, 0), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_context_rewind(c, 3), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_n_past(c, &past), HMST_STATUS_OK);
    CHECK(past == 3);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, 4096, &n), HMST_STATUS_INVALID_ARGUMENT); /* gone with the rest */
    CHECK_STATUS(hmst_context_route_trace(c, NULL, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 3 * 4 * 2);
    CHECK_STATUS(hmst_context_eval(c, all6 + 3, 3, false), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_get_logits(c, -1, last, 4096, &n), HMST_STATUS_OK);
    worst = 0;
    for (int i = 0; i < 4096; i++) {
        float d = logits[i] - last[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-4f);
    CHECK_STATUS(hmst_context_rewind(c, 0), HMST_STATUS_OK);
    CHECK_STATUS(hmst_context_tokens(c, held, 8, &n), HMST_STATUS_OK);
    CHECK(n == 0);
    CHECK_STATUS(hmst_context_eval(c, all6, 6, false), HMST_STATUS_OK);

    /* context full */
    int32_t many[64] = {0};
    CHECK_STATUS(hmst_context_eval(c, many, 64, false), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "n_ctx") != NULL);

    /* save and reload */
    CHECK_STATUS(hmst_model_save(m, "/tmp/hmst-ctest-micro", "fp8"), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "\"f16\"") != NULL);
    /* f16: saved, then held as stored (the info JSON names the type) */
    CHECK_STATUS(hmst_model_save(m, "/tmp/hmst-ctest-micro-f16", "f16"), HMST_STATUS_OK);
    hmst_model *h = NULL;
    CHECK_STATUS(hmst_model_load("/tmp/hmst-ctest-micro-f16", NULL, &h), HMST_STATUS_OK);
    CHECK(info_json_has(h, "\"weights\":\"f16\""));
    hmst_model_free(h);
    CHECK_STATUS(hmst_model_save(m, "/tmp/hmst-ctest-micro", "bf16"), HMST_STATUS_OK);
    hmst_model *m2 = NULL;
    struct hmst_model_params p = hmst_model_default_params();
    p.progress = count_progress;
    CHECK_STATUS(hmst_model_load("/tmp/hmst-ctest-micro", &p, &m2), HMST_STATUS_OK);
    CHECK(progress_calls > 100);
    struct hmst_model_info info2 = {.struct_size = sizeof info2};
    CHECK_STATUS(hmst_model_info(m2, &info2), HMST_STATUS_OK);
    CHECK(info2.weights_bf16 == 1 && info2.n_params == info.n_params);
    CHECK(info_json_has(m2, "\"untrained\":true"));
    hmst_model_free(m2);

    free(logits);
    free(last);
    hmst_context_free(c);
    CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_INVALID_ARGUMENT); /* freed handle */
    hmst_model_free(m);
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_INVALID_ARGUMENT);
}

/* the checkpoint transformers wrote: first-token logits are checked against its golden file */
static void test_hf_checkpoint(void) {
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(GOLDEN_DIR "/model/tiny_untied", NULL, &m), HMST_STATUS_OK);
    if (!m) return;
    FILE *f = fopen(GOLDEN_DIR "/model/tiny_untied/logits.bin", "rb");
    CHECK(f != NULL);
    if (f) {
        unsigned char head[24];
        float golden[96];
        CHECK(fread(head, 1, 24, f) == 24 && fread(golden, sizeof(float), 96, f) == 96);
        fclose(f);
        hmst_context *c = NULL;
        CHECK_STATUS(hmst_context_new(m, NULL, &c), HMST_STATUS_OK);
        int32_t first = 1;
        CHECK_STATUS(hmst_context_eval(c, &first, 1, false), HMST_STATUS_OK);
        float lg[96];
        size_t n = 0;
        CHECK_STATUS(hmst_context_get_logits(c, -1, lg, 96, &n), HMST_STATUS_OK);
        float worst = 0;
        for (int i = 0; i < 96; i++) {
            float d = lg[i] - golden[i];
            if (d < 0) d = -d;
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-4f);
        hmst_context_free(c);
    }
    hmst_model_free(m);
}

int main(void) {
    hmst_log_set_level(HMST_LOG_ERROR);
    test_model_misuse();
    test_random_model();
    test_hf_checkpoint();
    return check_summary("test_model");
}
