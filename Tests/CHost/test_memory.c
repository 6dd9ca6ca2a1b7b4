/* test_memory.c: semantic and episodic memory, embeddings and consolidation through the real
 * library: misuse returns statuses (NULL, freed handles, wrong dimensions, NaN, k <= 0, unknown
 * ids, corrupt directories); real use on the fixture micro checkpoint. */
#include <hmst.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif
#define DIR "/tmp/hmst-ctest-memory"

static void test_semantic_vectors(void) {
    hmst_semantic *s = NULL;
    struct hmst_semantic_params p = hmst_semantic_default_params();
    CHECK(p.struct_size == sizeof p && p.metric == HMST_METRIC_COSINE && p.nprobe == 32);
    CHECK_STATUS(hmst_semantic_create(&p, &s), HMST_STATUS_INVALID_ARGUMENT); /* dim 0 */
    p.dim = 4;
    p.metric = 7;
    CHECK_STATUS(hmst_semantic_create(&p, &s), HMST_STATUS_INVALID_ARGUMENT);
    p.metric = HMST_METRIC_L2;
    p.index_description = "NotAnIndex99";
    CHECK(hmst_semantic_create(&p, &s) != HMST_STATUS_OK);
    /* counts FAISS's factory accepts but then aborts the process on in add (IVF0, HNSW0), or
     * cannot parse (past Int32): refused at create, naming the number */
    const char *zero_counts[4] = {"IVF0,Flat", "HNSW0", "IVF99999999999,Flat", "IVF16,PQ0"};
    for (int i = 0; i < 4; i++) {
        p.index_description = zero_counts[i];
        CHECK_STATUS(hmst_semantic_create(&p, &s), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "must be in 1 ...") != NULL);
    }
    p.index_description = "Flat";
    CHECK_STATUS(hmst_semantic_create(NULL, &s), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_create(&p, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_create(&p, &s), HMST_STATUS_OK);
    if (!s) return;

    struct hmst_memory_hit none[2];
    const float origin[4] = {1, 1, 1, 1};
    CHECK_STATUS(hmst_semantic_search(s, origin, 1, 2, 0, none), HMST_STATUS_NOT_FOUND); /* empty */
    const float v[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    const char *texts[3] = {"east", NULL, "up"};
    int64_t ids[3] = {0};
    CHECK_STATUS(hmst_semantic_add(s, v, 3, NULL, texts, "test", ids), HMST_STATUS_OK);
    CHECK(ids[0] != ids[1] && ids[1] != ids[2]);
    const int64_t dup[1] = {ids[0]};
    CHECK_STATUS(hmst_semantic_add(s, v, 1, dup, NULL, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT); /* duplicate id */
    const float bad[4] = {NAN, 0, 0, 0};
    CHECK_STATUS(hmst_semantic_add(s, bad, 1, NULL, NULL, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "non-finite") != NULL);
    CHECK_STATUS(hmst_semantic_add(s, v, 0, NULL, NULL, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_add(s, NULL, 1, NULL, NULL, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);

    struct hmst_memory_hit hits[8];
    const float q[4] = {0.1f, 0.9f, 0, 0};
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 2, 0, hits), HMST_STATUS_OK);
    CHECK(hits[0].id == ids[1] && hits[1].id == ids[0]);
    CHECK(hits[0].score < hits[1].score); /* L2: lower is closer */
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 5, 0, hits), HMST_STATUS_OK);
    CHECK(hits[3].id == -1 && isnan(hits[3].score));
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 0, 0, hits), HMST_STATUS_INVALID_ARGUMENT); /* k <= 0 */
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 2, -1, hits), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 2, 0, NULL), HMST_STATUS_INVALID_ARGUMENT);

    char buf[64];
    size_t n = 0;
    CHECK_STATUS(hmst_semantic_get_text(s, ids[2], buf, sizeof buf, &n), HMST_STATUS_OK);
    CHECK(n == 2 && strcmp(buf, "up") == 0);
    CHECK_STATUS(hmst_semantic_get_text(s, ids[2], buf, 2, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_semantic_get_text(s, 999, buf, sizeof buf, &n), HMST_STATUS_NOT_FOUND);

    int64_t removed = -1;
    const int64_t rm[2] = {ids[0], 12345};
    CHECK_STATUS(hmst_semantic_remove(s, rm, 2, &removed), HMST_STATUS_OK);
    CHECK(removed == 1);
    CHECK_STATUS(hmst_semantic_search(s, v, 1, 3, 0, hits), HMST_STATUS_OK);
    CHECK(hits[0].id != ids[0] && hits[1].id != ids[0] && hits[2].id == -1);
    /* n_removed may be NULL: the entry still goes */
    CHECK_STATUS(hmst_semantic_remove(s, &ids[2], 1, NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_get_text(s, ids[2], buf, sizeof buf, &n), HMST_STATUS_NOT_FOUND);
    CHECK_STATUS(hmst_semantic_search(s, v, 1, 3, 0, hits), HMST_STATUS_OK);
    CHECK(hits[0].id == ids[1] && hits[1].id == -1);

    char json[1024];
    CHECK_STATUS(hmst_semantic_stats_json(s, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_semantic_stats_json(s, json, sizeof json, &n), HMST_STATUS_OK);
    CHECK(strstr(json, "\"count\":1") != NULL && strstr(json, "\"metric\":\"l2\"") != NULL);

    CHECK_STATUS(hmst_semantic_save(s, DIR "/semantic"), HMST_STATUS_OK);
    hmst_semantic *back = NULL;
    CHECK_STATUS(hmst_semantic_load(DIR "/semantic", &back), HMST_STATUS_OK);
    struct hmst_memory_hit hits2[3];
    CHECK_STATUS(hmst_semantic_search(back, v, 1, 3, 0, hits2), HMST_STATUS_OK);
    CHECK(hits2[0].id == hits[0].id && hits2[1].id == hits[1].id);
    hmst_semantic_free(back);
    CHECK_STATUS(hmst_semantic_load(DIR "/missing", &back), HMST_STATUS_NOT_FOUND);
    FILE *f = fopen(DIR "/semantic/memory.json", "w");
    if (f) { fputs("{\"format\":", f); fclose(f); }
    CHECK_STATUS(hmst_semantic_load(DIR "/semantic", &back), HMST_STATUS_BAD_FORMAT);

    hmst_semantic_free(s);
    CHECK_STATUS(hmst_semantic_search(s, q, 1, 2, 0, hits), HMST_STATUS_INVALID_ARGUMENT); /* freed */
    CHECK_STATUS(hmst_semantic_wait_training(s), HMST_STATUS_INVALID_ARGUMENT);

    /* IVF training on a library thread: adds return at once, searches go on, wait ends ready */
    hmst_semantic *bg = NULL;
    p.index_description = "IVF2,Flat";
    CHECK_STATUS(hmst_semantic_create(&p, &bg), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_set_background_training(NULL, true), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_set_background_training(bg, true), HMST_STATUS_OK);
    float many[4 * 100];
    for (int i = 0; i < 400; i++) many[i] = (float)((i * 7919) % 101) / 101.0f + (float)(i / 4);
    CHECK_STATUS(hmst_semantic_add(bg, many, 100, NULL, NULL, NULL, NULL), HMST_STATUS_OK); /* 100 >= 39 x 2 */
    CHECK_STATUS(hmst_semantic_search(bg, many + 4 * 50, 1, 1, 0, hits), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_wait_training(bg), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_stats_json(bg, json, sizeof json, &n), HMST_STATUS_OK);
    CHECK(strstr(json, "\"phase\":\"ready\"") != NULL && strstr(json, "\"count\":100") != NULL);
    CHECK_STATUS(hmst_semantic_search(bg, many + 4 * 50, 1, 1, 2, hits), HMST_STATUS_OK);
    CHECK(hits[0].id == 50);
    hmst_semantic_free(bg);
    hmst_semantic_free(NULL);
}

static void test_with_model(void) {
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(FIXTURE_DIR "/micro", NULL, &m), HMST_STATUS_OK);
    if (!m) return;
    struct hmst_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_OK);
    size_t C = (size_t)info.n_embd, n = 0;
    float *e = calloc(C, sizeof *e);
    CHECK_STATUS(hmst_model_embed(m, "hello world", e, 3, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == C);
    CHECK_STATUS(hmst_model_embed(m, "hello world", e, C, &n), HMST_STATUS_OK);
    double ss = 0;
    for (size_t i = 0; i < C; i++) ss += (double)e[i] * e[i];
    CHECK(fabs(ss - 1) < 1e-4);
    CHECK_STATUS(hmst_model_embed(m, NULL, e, C, &n), HMST_STATUS_INVALID_ARGUMENT);
    /* the size query is (NULL, 0); NULL with room claimed is the caller's mistake, named */
    CHECK_STATUS(hmst_model_embed(m, "hi", NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == C);
    CHECK_STATUS(hmst_model_embed(m, "hi", NULL, C, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "out is NULL but cap is") != NULL);

    /* episodic */
    hmst_episodic *ep = NULL;
    struct hmst_episodic_params ep_p = hmst_episodic_default_params();
    CHECK(ep_p.max_entries == 1000 && ep_p.state_size == 256);
    ep_p.state_size = 32;
    ep_p.max_entries = 8;
    CHECK_STATUS(hmst_episodic_create(NULL, &ep_p, &ep), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_episodic_create(m, &ep_p, &ep), HMST_STATUS_OK);
    if (!ep) { free(e); hmst_model_free(m); return; }
    const char *notes[4] = {"The licensee may copy the work.", "Warranty is disclaimed entirely.",
                            "Source code must be offered.", "Patents are licensed to users."};
    int64_t eid[4];
    for (int i = 0; i < 4; i++) CHECK_STATUS(hmst_episodic_add_text(ep, m, notes[i], i == 2 ? 1.0f : 0.0f, &eid[i]), HMST_STATUS_OK);
    struct hmst_memory_hit hits[4];
    int32_t valid = 0;
    CHECK_STATUS(hmst_episodic_search_text(ep, m, notes[2], 2, hits, &valid), HMST_STATUS_OK);
    CHECK(valid == 2 && hits[0].id == eid[2] && fabsf(hits[0].score - 1) < 1e-4f);
    CHECK_STATUS(hmst_episodic_search_text(ep, m, notes[2], 0, hits, &valid), HMST_STATUS_INVALID_ARGUMENT);
    float key[32] = {0};
    char buf0[64];
    size_t len0 = 0;
    key[0] = 1;
    CHECK_STATUS(hmst_episodic_add_key(ep, key, 31, "short", 0.5f, NULL), HMST_STATUS_INVALID_ARGUMENT);
    key[1] = NAN;
    CHECK_STATUS(hmst_episodic_add_key(ep, key, 32, "nan", 0.5f, NULL), HMST_STATUS_INVALID_ARGUMENT);
    key[1] = 0;
    int64_t kid = 0;
    CHECK_STATUS(hmst_episodic_add_key(ep, key, 32, "raw key", 0.5f, &kid), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_search_key(ep, key, 32, 1, hits, &valid), HMST_STATUS_OK);
    CHECK(valid == 1 && hits[0].id == kid);
    /* n_out may be NULL: the hits are still written */
    memset(hits, 0x7f, sizeof hits);
    CHECK_STATUS(hmst_episodic_search_key(ep, key, 32, 1, hits, NULL), HMST_STATUS_OK);
    CHECK(hits[0].id == kid);
    memset(hits, 0x7f, sizeof hits);
    CHECK_STATUS(hmst_episodic_search_text(ep, m, notes[2], 1, hits, NULL), HMST_STATUS_OK);
    CHECK(hits[0].id == eid[2]);
    CHECK_STATUS(hmst_episodic_add_key(ep, key, SIZE_MAX, "huge", 0.5f, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "18446744073709551615") != NULL);
    int64_t removed = 0;
    CHECK_STATUS(hmst_episodic_remove(ep, &kid, 1, &removed), HMST_STATUS_OK);
    CHECK(removed == 1);
    /* n_removed may be NULL: the entry still goes */
    int64_t gone = 0;
    CHECK_STATUS(hmst_episodic_add_key(ep, key, 32, "to remove", 0.5f, &gone), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_remove(ep, &gone, 1, NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_get_text(ep, gone, buf0, sizeof buf0, &len0), HMST_STATUS_NOT_FOUND);
    char buf[256];
    size_t len = 0;
    CHECK_STATUS(hmst_episodic_get_text(ep, eid[1], buf, sizeof buf, &len), HMST_STATUS_OK);
    CHECK(strcmp(buf, notes[1]) == 0);
    CHECK_STATUS(hmst_episodic_get_text(ep, kid, buf, sizeof buf, &len), HMST_STATUS_NOT_FOUND);
    char *json = malloc(8192);
    CHECK_STATUS(hmst_episodic_stats_json(ep, json, 8192, &len), HMST_STATUS_OK);
    CHECK(strstr(json, "\"count\":4") != NULL);
    CHECK_STATUS(hmst_episodic_save(ep, DIR "/episodic"), HMST_STATUS_OK);
    hmst_episodic *ep2 = NULL;
    CHECK_STATUS(hmst_episodic_load(DIR "/episodic", &ep2), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_search_text(ep2, m, notes[3], 1, hits, &valid), HMST_STATUS_OK);
    CHECK(valid == 1 && hits[0].id == eid[3]);
    hmst_episodic_free(ep2);

    /* consolidation: the important entry moves to semantic memory and is found there */
    hmst_semantic *s = NULL;
    struct hmst_semantic_params sp = hmst_semantic_default_params();
    sp.dim = (int32_t)C;
    CHECK_STATUS(hmst_semantic_create(&sp, &s), HMST_STATUS_OK);
    struct hmst_consolidate_params cp = hmst_consolidate_default_params();
    CHECK(cp.threshold == 0.5 && cp.remove_from_episodic);
    cp.threshold = 0.45;
    int32_t moved = -1;
    CHECK_STATUS(hmst_consolidate(ep, s, NULL, &cp, &moved), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_consolidate(ep, s, m, &cp, &moved), HMST_STATUS_OK);
    CHECK(moved >= 1);
    CHECK_STATUS(hmst_semantic_search_text(s, m, notes[2], 1, 0, hits, &valid), HMST_STATUS_OK);
    CHECK(valid == 1);
    CHECK_STATUS(hmst_semantic_get_text(s, hits[0].id, buf, sizeof buf, &len), HMST_STATUS_OK);
    CHECK(strcmp(buf, notes[2]) == 0);
    int64_t sid = -1;
    CHECK_STATUS(hmst_semantic_add_text(s, m, "added directly", "c-test", &sid), HMST_STATUS_OK);
    CHECK(sid >= 0);

    /* background consolidation, stopped cleanly */
    hmst_consolidator *bg = NULL;
    CHECK_STATUS(hmst_consolidator_start(ep, s, m, &cp, 0, &bg), HMST_STATUS_INVALID_ARGUMENT); /* interval 0 */
    CHECK_STATUS(hmst_consolidator_start(ep, s, m, &cp, 1e308, &bg), HMST_STATUS_INVALID_ARGUMENT); /* past 1e9 s */
    CHECK(strstr(hmst_last_error(), "finite number of seconds") != NULL);
    CHECK_STATUS(hmst_consolidator_start(ep, s, m, &cp, INFINITY, &bg), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(bg == NULL);
    CHECK_STATUS(hmst_consolidator_start(ep, s, m, &cp, 0.01, &bg), HMST_STATUS_OK);
    for (int i = 0; i < 20; i++) CHECK_STATUS(hmst_semantic_search_text(s, m, notes[0], 2, 0, hits, &valid), HMST_STATUS_OK);
    int32_t passes = -1;
    hmst_consolidator_stop(bg, &passes, &moved);
    CHECK(passes >= 0 && moved >= 0);
    hmst_consolidator_stop(NULL, NULL, NULL);

    /* a semantic memory of another dimension is refused */
    hmst_semantic *narrow = NULL;
    sp.dim = 3;
    CHECK_STATUS(hmst_semantic_create(&sp, &narrow), HMST_STATUS_OK);
    CHECK_STATUS(hmst_consolidate(ep, narrow, m, NULL, &moved), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_add_text(narrow, m, "x", NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    hmst_semantic_free(narrow);

    /* the memories record the model that encoded them: another model's text calls are refused
     * until a re-encoded copy (same ids) is made for it; the originals are unchanged */
    hmst_model *rnd = NULL, *other = NULL;   /* random weights with the fixture's tokenizer */
    CHECK_STATUS(hmst_model_init_random("micro", 7, &rnd), HMST_STATUS_OK);
    CHECK_STATUS(hmst_model_save(rnd, DIR "/other", "f32"), HMST_STATUS_OK);
    hmst_model_free(rnd);
    CHECK(system("cp " FIXTURE_DIR "/micro/tokenizer.json " DIR "/other/") == 0);
    CHECK_STATUS(hmst_model_load(DIR "/other", NULL, &other), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_search_text(s, other, "added directly", 1, 0, hits, &valid), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "by another model") != NULL && strstr(hmst_last_error(), "reencode") != NULL);
    CHECK_STATUS(hmst_episodic_search_text(ep, other, notes[0], 1, hits, &valid), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_episodic_add_text(ep, other, "x", 0.5f, NULL), HMST_STATUS_INVALID_ARGUMENT);
    hmst_semantic *so = NULL;
    hmst_episodic *eo = NULL;
    CHECK_STATUS(hmst_semantic_reencode(s, other, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_reencode(s, NULL, &so), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_episodic_reencode(NULL, other, &eo), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_reencode(s, other, &so), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_reencode(ep, other, &eo), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_search_text(so, other, "added directly", 1, 0, hits, &valid), HMST_STATUS_OK);
    CHECK(valid == 1 && hits[0].id == sid);
    CHECK_STATUS(hmst_semantic_search_text(so, m, "added directly", 1, 0, hits, &valid), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_episodic_add_text(eo, other, "for the other model", 0.5f, NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_search_text(s, m, "added directly", 1, 0, hits, &valid), HMST_STATUS_OK);
    hmst_semantic_free(so);
    hmst_episodic_free(eo);
    hmst_model_free(other);

    hmst_semantic_free(s);
    hmst_episodic_free(ep);
    CHECK_STATUS(hmst_episodic_add_text(ep, m, "freed", 0.5f, NULL), HMST_STATUS_INVALID_ARGUMENT);
    hmst_episodic_free(NULL);
    free(json);
    free(e);
    hmst_model_free(m);
}

/* Garbage handles (never created by hmst) are rejected without being dereferenced. */
static void test_garbage_handles(void) {
    uint64_t r = 0x2545F4914F6CDD1Dull;
    float v[4] = {1, 2, 3, 4};
    struct hmst_memory_hit hits[2];
    int64_t id = 0;
    size_t n = 0;
    char buf[16];
    for (int i = 0; i < 200; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        hmst_semantic *s = (hmst_semantic *)(uintptr_t)(r | 8);
        hmst_episodic *e = (hmst_episodic *)(uintptr_t)(r | 8);
        hmst_model *m = (hmst_model *)(uintptr_t)(r | 8);
        CHECK_STATUS(hmst_semantic_add(s, v, 1, NULL, NULL, NULL, &id), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_semantic_search(s, v, 1, 1, 0, hits), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_semantic_get_text(s, 1, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_semantic_save(s, "/tmp/x"), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_episodic_add_key(e, v, 4, "x", 0.5f, &id), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_episodic_search_key(e, v, 4, 1, hits, NULL), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_model_embed(m, "x", v, 4, &n), HMST_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(hmst_consolidate(e, s, m, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
        hmst_semantic_free(s); /* unknown pointers: a no-op */
        hmst_episodic_free(e);
        hmst_consolidator_stop((hmst_consolidator *)(uintptr_t)(r | 8), NULL, NULL);
    }
}

int main(void) {
    if (system("rm -rf " DIR " && mkdir -p " DIR) != 0) return 1;
    test_semantic_vectors();
    test_with_model();
    test_garbage_handles();
    return check_summary("test_memory");
}
