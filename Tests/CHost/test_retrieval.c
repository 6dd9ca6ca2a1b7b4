/* test_retrieval.c: dense, lexical and hybrid retrieval through the real library: params
 * defaults and misuse (bad mode, k, NULL text, wrong query size, missing model), the buffer
 * rule, per-part scores and ranks, removal and save/load; the episodic memory on the fixture
 * micro checkpoint. */
#include <hmst.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif
#define DIR "/tmp/hmst-ctest-retrieval"

static void test_semantic(void) {
    struct hmst_retrieval_params p = hmst_retrieval_default_params();
    CHECK(p.struct_size == sizeof p && p.mode == HMST_RETRIEVAL_HYBRID && p.k == 5 && p.n_candidates == 50);
    CHECK(p.rrf_k == 60.0f && p.dense_weight == 1.0f && p.lexical_weight == 1.0f);
    CHECK(fabsf(p.bm25_k1 - 1.2f) < 1e-6f && fabsf(p.bm25_b - 0.75f) < 1e-6f && p.nprobe == 0 && p.min_coverage == 0.0f);

    hmst_semantic *s = NULL;
    struct hmst_semantic_params sp = hmst_semantic_default_params();
    sp.dim = 4;
    sp.index_description = "Flat";
    CHECK_STATUS(hmst_semantic_create(&sp, &s), HMST_STATUS_OK);
    if (!s) return;
    struct hmst_retrieval_hit hits[8];
    size_t n = 99;
    /* empty memory: no hits, not an error */
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &(struct hmst_retrieval_params){0}, hits, 8, &n),
                 HMST_STATUS_INVALID_ARGUMENT); /* struct_size 0 */
    p.mode = HMST_RETRIEVAL_LEXICAL;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 0);

    /* three docs (no stopwords), as the Swift BM25 test: "cat sat mat", "cat cat dog", "dog runs fast far" */
    const float v[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    const char *texts[3] = {"cat sat mat", "Cat, cat; dog", "dog runs fast far"};
    int64_t ids[3] = {0};
    CHECK_STATUS(hmst_semantic_add(s, v, 3, NULL, texts, "test", ids), HMST_STATUS_OK);

    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "the cat?", NULL, 0, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 2 && hits[0].id == ids[1] && hits[1].id == ids[0]);
    CHECK(fabsf(hits[0].score - 0.664957f) < 1e-5f && fabsf(hits[1].score - 0.490051f) < 1e-5f);
    CHECK(hits[0].lexical_rank == 1 && hits[0].lexical_score == hits[0].score);
    CHECK(hits[0].dense_rank == 0 && isnan(hits[0].dense_score));

    /* buffer rule */
    n = 0;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &p, hits, 1, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 2);
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &p, NULL, 4, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &p, hits, 8, NULL), HMST_STATUS_INVALID_ARGUMENT);

    /* dense with a vector; hybrid fuses by rank: query near doc 2, text matching doc 0 and 1 */
    const float q[4] = {0.1f, 0, 1, 0};
    p.mode = HMST_RETRIEVAL_DENSE;
    p.k = 3;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, NULL, q, 4, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 3 && hits[0].id == ids[2] && hits[0].dense_rank == 1 && hits[0].lexical_rank == 0);
    CHECK(hits[0].score == hits[0].dense_score && hits[0].score > 0.99f);
    p.mode = HMST_RETRIEVAL_HYBRID;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "fast dog", q, 4, &p, hits, 8, &n), HMST_STATUS_OK);
    /* doc 2: dense 1, lexical 1 -> 2/61; doc 1: lexical 2 + dense 2 or 3 */
    CHECK(n == 3 && hits[0].id == ids[2] && hits[0].dense_rank == 1 && hits[0].lexical_rank == 1);
    CHECK(fabsf(hits[0].score - 2.0f / 61.0f) < 1e-7f);
    CHECK(hits[1].id == ids[1] && hits[1].lexical_rank == 2);
    /* coverage of "fast dog" (N 3: idf dog ln 1.6, fast ln(8/3)): doc 2 holds both (1), doc 1
     * "dog" alone (0.324), doc 0 neither */
    p.min_coverage = 0.3f;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "fast dog", q, 4, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 2 && hits[0].id == ids[2] && hits[1].id == ids[1]);
    p.min_coverage = 0.9f;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "fast dog", q, 4, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 1 && hits[0].id == ids[2]);
    p.mode = HMST_RETRIEVAL_DENSE;   /* the filter reads the text in every mode */
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, NULL, q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "min_coverage") != NULL);
    p.min_coverage = 1.5f;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "fast dog", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "min_coverage") != NULL);
    p.min_coverage = NAN;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "fast dog", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    p.min_coverage = 0;
    p.mode = HMST_RETRIEVAL_HYBRID;

    /* misuse */
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", q, 3, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);  /* n_query */
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT); /* no model */
    CHECK(strstr(hmst_last_error(), "model") != NULL);
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, NULL, q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);    /* hybrid, no text */
    p.mode = 9;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "mode") != NULL);
    p = hmst_retrieval_default_params();
    p.k = 0;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    p = hmst_retrieval_default_params();
    p.bm25_b = 2;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    p = hmst_retrieval_default_params();
    p.lexical_weight = NAN;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", q, 4, &p, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_semantic_retrieve(NULL, NULL, "cat", q, 4, NULL, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT);

    /* remove, save, load: the lexical index follows */
    int64_t removed = 0;
    CHECK_STATUS(hmst_semantic_remove(s, &ids[1], 1, &removed), HMST_STATUS_OK);
    p = hmst_retrieval_default_params();
    p.mode = HMST_RETRIEVAL_LEXICAL;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat dog", NULL, 0, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 2 && hits[0].id != ids[1] && hits[1].id != ids[1]);
    float before = n == 2 ? hits[0].score : 0;
    CHECK_STATUS(hmst_semantic_save(s, DIR "/semantic"), HMST_STATUS_OK);
    hmst_semantic_free(s);
    s = NULL;
    CHECK_STATUS(hmst_semantic_load(DIR "/semantic", &s), HMST_STATUS_OK);
    if (!s) return;
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat dog", NULL, 0, &p, hits, 8, &n), HMST_STATUS_OK);
    CHECK(n == 2 && hits[0].score == before);
    CHECK_STATUS(hmst_semantic_retrieve(s, NULL, "cat", NULL, 0, NULL, hits, 8, &n), HMST_STATUS_INVALID_ARGUMENT); /* hybrid default */
    hmst_semantic_free(s);
}

static void test_episodic(void) {
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(FIXTURE_DIR "/micro", NULL, &m), HMST_STATUS_OK);
    if (!m) return;
    hmst_episodic *e = NULL;
    struct hmst_episodic_params ep = hmst_episodic_default_params();
    ep.state_size = 16;
    CHECK_STATUS(hmst_episodic_create(m, &ep, &e), HMST_STATUS_OK);
    if (!e) {
        hmst_model_free(m);
        return;
    }
    const char *facts[3] = {"The capital of Zorbia is Quell.", "Mount Ferrow is 4200 metres high.", "The river Anth flows north."};
    int64_t ids[3];
    for (int i = 0; i < 3; i++) CHECK_STATUS(hmst_episodic_add_text(e, m, facts[i], 0.5f, &ids[i]), HMST_STATUS_OK);
    struct hmst_retrieval_params p = hmst_retrieval_default_params();
    struct hmst_retrieval_hit hits[4];
    size_t n = 0;
    CHECK_STATUS(hmst_episodic_retrieve(e, m, "How high is Mount Ferrow?", &p, hits, 4, &n), HMST_STATUS_OK);
    CHECK(n == 3 && hits[0].id == ids[1] && hits[0].lexical_rank == 1 && hits[0].dense_rank >= 1);
    p.mode = HMST_RETRIEVAL_LEXICAL;
    CHECK_STATUS(hmst_episodic_retrieve(e, NULL, "Which way does the Anth flow?", &p, hits, 4, &n), HMST_STATUS_OK);
    CHECK(n == 1 && hits[0].id == ids[2] && hits[0].dense_rank == 0 && isnan(hits[0].dense_score));
    p.mode = HMST_RETRIEVAL_DENSE;
    CHECK_STATUS(hmst_episodic_retrieve(e, NULL, "x", &p, hits, 4, &n), HMST_STATUS_INVALID_ARGUMENT); /* model needed */
    CHECK_STATUS(hmst_episodic_retrieve(e, m, NULL, &p, hits, 4, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_episodic_retrieve(e, m, "x", &p, hits, 4, &n), HMST_STATUS_OK);
    CHECK(n == 3 && hits[0].lexical_rank == 0 && hits[0].dense_rank == 1);
    int64_t removed = 0;
    CHECK_STATUS(hmst_episodic_remove(e, &ids[2], 1, &removed), HMST_STATUS_OK);
    p.mode = HMST_RETRIEVAL_LEXICAL;
    CHECK_STATUS(hmst_episodic_retrieve(e, NULL, "Anth", &p, hits, 4, &n), HMST_STATUS_OK);
    CHECK(n == 0);
    hmst_episodic_free(e);
    hmst_model_free(m);
}

int main(void) {
    if (system("rm -rf " DIR " && mkdir -p " DIR) != 0) return 1;
    test_semantic();
    test_episodic();
    return check_summary("test_retrieval");
}
