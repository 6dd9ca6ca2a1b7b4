/* test_engine.c: the HMST engine through the real library on the fixture micro checkpoint: an
 * engine over a semantic and an episodic memory made here; fixed policies and what they imply
 * (citations only from the chosen tiers, early exit and expert selection costing fewer FLOPs,
 * the streaming callback seeing every answer token with its log-prob, the JSON at the end);
 * and misuse as statuses: NULLs, bad struct sizes, an empty query, an unknown policy, the
 * controller policy without a controller, a memory of the wrong dimension, a controller
 * trained for another model in the checkpoint. The owner scope of a query: entries added
 * through the C API have no owner, so owner "" is all of them, any other owner none of them,
 * and a caller whose struct_size predates the field gets every entry. */
#include <hmst.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif
#define DIR "/tmp/hmst-ctest-engine"

struct seen {
    int tokens;
    float logprob_sum;
    int results;
    char json[1 << 15];
};

static bool on_token(int32_t token, const char *piece, size_t len, float logprob, void *ud) {
    struct seen *s = ud;
    (void)token;
    (void)piece;
    (void)len;
    s->tokens++;
    s->logprob_sum += logprob;
    return true;
}

/* asks the same engine again from inside its own token callback: refused, not a deadlock */
struct reentry {
    hmst_engine *engine;
    int status;
    char error[256];
};

static bool ask_again(int32_t token, const char *piece, size_t len, float logprob, void *ud) {
    (void)token;
    (void)piece;
    (void)len;
    (void)logprob;
    struct reentry *re = ud;
    struct hmst_engine_query_params q = hmst_engine_query_default_params();
    q.policy = "none";
    struct hmst_engine_result r = {.struct_size = sizeof r};
    re->status = hmst_engine_ask(re->engine, "again?", &q, &r);
    snprintf(re->error, sizeof re->error, "%s", hmst_last_error());
    return false;
}

static bool stop_at_first(int32_t token, const char *piece, size_t len, float logprob, void *ud) {
    (void)token;
    (void)piece;
    (void)len;
    (void)logprob;
    ((struct seen *)ud)->tokens++;
    return false;
}

static void on_result(const struct hmst_engine_result *r, const char *json, size_t n, void *ud) {
    struct seen *s = ud;
    s->results++;
    if (r && json && n < sizeof s->json) memcpy(s->json, json, n + 1);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

int main(void) {
    if (system("rm -rf " DIR " && mkdir -p " DIR) != 0) return 1;
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(FIXTURE_DIR "/micro", NULL, &m), HMST_STATUS_OK);
    if (!m) return check_summary("test_engine");
    struct hmst_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_OK);

    struct hmst_semantic_params sp = hmst_semantic_default_params();
    sp.dim = info.n_embd;
    sp.index_description = "Flat";
    hmst_semantic *sem = NULL;
    CHECK_STATUS(hmst_semantic_create(&sp, &sem), HMST_STATUS_OK);
    const char *facts[3] = {"The licensee may copy the work.", "Warranty is disclaimed.", "Patents are licensed."};
    for (int i = 0; i < 3; i++) CHECK_STATUS(hmst_semantic_add_text(sem, m, facts[i], "test", NULL), HMST_STATUS_OK);
    struct hmst_episodic_params ep = hmst_episodic_default_params();
    hmst_episodic *epi = NULL;
    CHECK_STATUS(hmst_episodic_create(m, &ep, &epi), HMST_STATUS_OK);
    CHECK_STATUS(hmst_episodic_add_text(epi, m, "Source must be offered on request.", 0.5f, NULL), HMST_STATUS_OK);

    struct hmst_engine_params p = hmst_engine_default_params();
    CHECK(p.struct_size == sizeof p && p.k == 4 && p.exit_layer == 0 && p.selected_experts == 1 && p.retry_with_memory);
    CHECK(fabsf(p.confidence_threshold - 0.5f) < 1e-6f);
    CHECK(p.episodic_retrieval == HMST_RETRIEVAL_LEXICAL);
    /* hybrid, so the one episodic entry is a candidate for every query (its SSM key is scanned) */
    p.episodic_retrieval = HMST_RETRIEVAL_HYBRID;
    hmst_engine *e = NULL;
    CHECK_STATUS(hmst_engine_create(m, sem, epi, &p, &e), HMST_STATUS_OK);
    if (!e) return check_summary("test_engine");
    bool has_controller = true, has_critic = true;
    int32_t exit_layer = 0;
    CHECK_STATUS(hmst_engine_info(e, &has_controller, &has_critic, &exit_layer), HMST_STATUS_OK);
    CHECK(!has_controller && !has_critic && exit_layer >= 1 && exit_layer <= (int32_t)info.n_layer);

    /* both memories, streaming: every answer token comes with its log-prob, the JSON at the end */
    struct hmst_engine_query_params q = hmst_engine_query_default_params();
    CHECK(q.struct_size == sizeof q && q.max_tokens == 16 && q.temperature == 0.0f && q.policy == NULL);
    struct seen s = {0};
    q.policy = "episodic+semantic";
    q.max_tokens = 6;
    q.on_token = on_token;
    q.on_result = on_result;
    q.user_data = &s;
    struct hmst_engine_result r = {.struct_size = sizeof r};
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &q, &r), HMST_STATUS_OK);
    CHECK(r.decisions[HMST_DECISION_EPISODIC] && r.decisions[HMST_DECISION_SEMANTIC]);
    CHECK(!r.decisions[HMST_DECISION_EARLY_EXIT] && !r.decisions[HMST_DECISION_VERIFY]);
    CHECK(r.probabilities[HMST_DECISION_SEMANTIC] == 1.0f && r.probabilities[HMST_DECISION_VERIFY] == 0.0f);
    CHECK(r.n_citations == 4); /* 3 semantic + 1 episodic, k = 4 */
    CHECK(s.results == 1 && s.tokens == r.n_tokens && r.n_tokens <= 6);
    CHECK(r.generated_tokens >= r.n_tokens - 1 && r.prompt_tokens > 0 && r.matmul_flops > 0);
    CHECK(r.vectors_scanned == 4); /* the Flat index's 3 + the episodic entry */
    CHECK(r.ssm_tokens_encoded > 0 && r.critic_calls == 0);
    CHECK(!r.confidence_calibrated && r.confidence >= 0 && r.confidence <= 1);
    CHECK(r.stage_ms[5] >= r.stage_ms[3] && r.stage_ms[3] >= 0);
    CHECK(strstr(s.json, "\"citations\":[{\"tier\":") != NULL);
    CHECK(strstr(s.json, "\"tier\":\"episodic\"") != NULL && strstr(s.json, "\"tier\":\"semantic\"") != NULL);
    CHECK(strstr(s.json, "\"token_logprobs\":[") != NULL && strstr(s.json, "\"stage_ms\":{\"encode\":") != NULL);
    double full_flops = r.matmul_flops;
    int full_prompt = r.prompt_tokens;

    /* no memory: no citations, a shorter prompt; early exit and one expert: fewer FLOPs */
    struct hmst_engine_query_params q2 = hmst_engine_query_default_params();
    q2.policy = "none";
    q2.max_tokens = 6;
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &q2, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 0 && r.prompt_tokens < full_prompt);
    double none_flops_per_token = r.matmul_flops / (r.prompt_tokens + r.generated_tokens);
    q2.policy = "early_exit+expert_selection";
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &q2, &r), HMST_STATUS_OK);
    CHECK(r.decisions[HMST_DECISION_EARLY_EXIT] && r.decisions[HMST_DECISION_EXPERT_SELECTION]);
    CHECK(r.matmul_flops / (r.prompt_tokens + r.generated_tokens) < none_flops_per_token);
    CHECK(full_flops > 0);
    /* semantic only: every citation is semantic */
    s.json[0] = 0;
    q.policy = "semantic";
    CHECK_STATUS(hmst_engine_ask(e, "Is warranty given?", &q, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 3 && strstr(s.json, "\"tier\":\"episodic\"") == NULL);
    /* a token callback that stops: one token per attempt */
    struct seen one = {0};
    q2.policy = "none";
    q2.on_token = stop_at_first;
    q2.user_data = &one;
    CHECK_STATUS(hmst_engine_ask(e, "Is warranty given?", &q2, &r), HMST_STATUS_OK);
    CHECK(one.tokens <= 1 && r.n_tokens == one.tokens);
    struct reentry re = {.engine = e, .status = 1};
    q2.on_token = ask_again;
    q2.user_data = &re;
    CHECK_STATUS(hmst_engine_ask(e, "Is warranty given?", &q2, &r), HMST_STATUS_OK);
    CHECK(re.status == HMST_STATUS_INVALID_ARGUMENT || (re.status == 1 && r.n_tokens == 0));
    CHECK(re.status != HMST_STATUS_INVALID_ARGUMENT || strstr(re.error, "already answering a query") != NULL);
    /* verify without a critic: allowed, confidence not calibrated */
    q2.on_token = NULL;
    q2.policy = "full";
    CHECK_STATUS(hmst_engine_ask(e, "Is warranty given?", &q2, &r), HMST_STATUS_OK);
    CHECK(r.decisions[HMST_DECISION_VERIFY] && !r.confidence_calibrated && r.critic_calls == 0);
    /* a NULL result and NULL params are fine */
    CHECK_STATUS(hmst_engine_ask(e, "Is warranty given?", NULL, NULL), HMST_STATUS_OK);

    /* owner scope: an owner that excludes the only episodic entry gives no citation from it,
     * no retrieval and no vectors scanned; owner "" (no owner) and NULL (every entry) cite it */
    struct hmst_engine_query_params qo = hmst_engine_query_default_params();
    CHECK(qo.owner == NULL && qo.struct_size == sizeof qo);
    struct seen so = {0};
    qo.policy = "episodic";
    qo.max_tokens = 2;
    qo.on_result = on_result;
    qo.user_data = &so;
    CHECK_STATUS(hmst_engine_ask(e, "Who offers the source?", &qo, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 1 && strstr(so.json, "Source must be offered") != NULL && strstr(so.json, "\"owner\"") == NULL);
    qo.owner = "someone-else";
    CHECK_STATUS(hmst_engine_ask(e, "Who offers the source?", &qo, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 0 && r.vectors_scanned == 0 && r.ssm_tokens_encoded == 0);
    CHECK(strstr(so.json, "\"citations\":[]") != NULL && strstr(so.json, "\"owner\":\"someone-else\"") != NULL);
    CHECK(strstr(so.json, "Source must be offered") == NULL);
    qo.policy = "episodic+semantic";
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &qo, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 0);
    qo.owner = "";
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &qo, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 4 && r.vectors_scanned == 4);
    /* a caller built before the field: its struct_size ends before owner, whatever lies beyond */
    struct hmst_engine_query_params old = qo;
    old.struct_size = (uint32_t)offsetof(struct hmst_engine_query_params, owner);
    old.owner = "someone-else";
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &old, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 4);

    /* misuse */
    CHECK_STATUS(hmst_engine_ask(e, "", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "empty") != NULL);
    CHECK_STATUS(hmst_engine_ask(e, "   \n", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_ask(e, NULL, &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_ask(NULL, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_ask((hmst_engine *)m, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    q2.policy = "semantic+telepathy";
    CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "telepathy") != NULL);
    const char *malformed[4] = {"+", "semantic++", "+episodic", "none+semantic"};
    for (int i = 0; i < 4; i++) {
        q2.policy = malformed[i];
        CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    }
    CHECK(strstr(hmst_last_error(), "whole policy") != NULL);
    q2.policy = "controller";
    CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "controller") != NULL);
    q2.policy = NULL;
    q2.max_tokens = 0;
    CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    q2.max_tokens = 4;
    q2.struct_size = 0;
    CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &r), HMST_STATUS_INVALID_ARGUMENT);
    q2.struct_size = sizeof q2;
    struct hmst_engine_result small = {.struct_size = 4};
    CHECK_STATUS(hmst_engine_ask(e, "x", &q2, &small), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_info(NULL, NULL, NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);

    hmst_engine *bad = NULL;
    CHECK_STATUS(hmst_engine_create(NULL, sem, epi, &p, &bad), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_create(m, sem, epi, &p, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_engine_create(m, (hmst_semantic *)epi, NULL, &p, &bad), HMST_STATUS_INVALID_ARGUMENT);
    struct hmst_engine_params pb = p;
    pb.k = 0;
    CHECK_STATUS(hmst_engine_create(m, NULL, NULL, &pb, &bad), HMST_STATUS_INVALID_ARGUMENT);
    pb = p;
    pb.exit_layer = 99;
    CHECK_STATUS(hmst_engine_create(m, NULL, NULL, &pb, &bad), HMST_STATUS_INVALID_ARGUMENT);
    pb = p;
    pb.selected_experts = 9;
    CHECK_STATUS(hmst_engine_create(m, NULL, NULL, &pb, &bad), HMST_STATUS_INVALID_ARGUMENT);
    pb = p;
    pb.confidence_threshold = NAN;
    CHECK_STATUS(hmst_engine_create(m, NULL, NULL, &pb, &bad), HMST_STATUS_INVALID_ARGUMENT);
    pb = p;
    pb.episodic_retrieval = 7;
    CHECK_STATUS(hmst_engine_create(m, NULL, NULL, &pb, &bad), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "episodic_retrieval") != NULL);
    CHECK(bad == NULL);
    /* a semantic memory of another dimension */
    struct hmst_semantic_params sp2 = sp;
    sp2.dim = info.n_embd + 8;
    hmst_semantic *wrong = NULL;
    CHECK_STATUS(hmst_semantic_create(&sp2, &wrong), HMST_STATUS_OK);
    float v[1024] = {0};
    v[0] = 1;
    int64_t id = 0;
    const char *txt[1] = {"odd"};
    CHECK_STATUS(hmst_semantic_add(wrong, v, 1, NULL, txt, "test", &id), HMST_STATUS_OK);
    CHECK_STATUS(hmst_engine_create(m, wrong, NULL, &p, &bad), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "dimension") != NULL || strstr(hmst_last_error(), "embed") != NULL);
    hmst_semantic_free(wrong);

    /* a controller trained for another model: hmst_model_load names the mismatch */
    if (system("cp -r " FIXTURE_DIR "/micro " DIR "/ckpt && mkdir -p " DIR "/ckpt/controller") == 0) {
        write_file(DIR "/ckpt/controller/config.json",
                   "{\"format\": \"hmst-controller\", \"version\": 1, \"features\": [], \"heads\": [], \"hidden\": [64, 64],"
                   " \"model_hidden_size\": 12345, \"model_layers\": 2, \"model_vocab_size\": 10, \"exit_layer\": 1,"
                   " \"projection_seed\": \"1\", \"parameters\": 10, \"hash\": \"0\"}");
        hmst_model *m2 = NULL;
        CHECK(hmst_model_load(DIR "/ckpt", NULL, &m2) != HMST_STATUS_OK);
        CHECK(strstr(hmst_last_error(), "controller") != NULL && m2 == NULL);
        write_file(DIR "/ckpt/controller/config.json", "{\"format\": \"hmst-controller\"");
        CHECK_STATUS(hmst_model_load(DIR "/ckpt", NULL, &m2), HMST_STATUS_BAD_FORMAT);
        CHECK(m2 == NULL);
    }

    /* the engine keeps the model and memories alive: free them first, then query */
    hmst_semantic_free(sem);
    hmst_episodic_free(epi);
    hmst_model_free(m);
    q2.policy = "episodic+semantic";
    CHECK_STATUS(hmst_engine_ask(e, "Who may copy the work?", &q2, &r), HMST_STATUS_OK);
    CHECK(r.n_citations == 4);
    hmst_engine_free(e);
    hmst_engine_free(NULL);
    return check_summary("test_engine");
}
