/* test_memory_trainer.c: Stage 2 memory fine-tuning through the real library: parameter
 * checks, steps, evaluation, run with the progress callback, save, resume and garbage handles,
 * on the fixture checkpoint and data (made by the Makefile) and a few facts written here. */
#include <hmst.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif

#define FACTS "/tmp/hmst-ctest-memtrain-facts"
#define OUT "/tmp/hmst-ctest-memtrain"

static const char *names[] = {"Kalo Mirtas", "Venor Dasil", "Brani Felgor", "Zanpe Thoqui",
                              "Lomi Kaven", "Silbra Nuri", "Gorfel Tasri", "Quiza Pelo"};
static const char *cities[] = {"Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Rome", "Tokyo"};
static const char *splits[] = {"train_known", "train_memory_only", "heldout", "distractor"};

static int write_facts(void) {
    if (system("mkdir -p " FACTS) != 0) return -1;
    FILE *f = fopen(FACTS "/facts.jsonl", "w"), *q = fopen(FACTS "/train.jsonl", "w");
    if (!f || !q) return -1;
    for (int i = 0; i < 8; i++) {
        const char *split = splits[i % 4];
        fprintf(f, "{\"id\":\"f%d\",\"entity\":\"%s\",\"relation\":\"city\",\"value\":\"%s\",\"text\":\"%s lives in %s.\","
                   "\"split\":\"%s\",\"source\":\"test\"}\n", i, names[i], cities[i], names[i], cities[i], split);
        if (i % 4 != 3)
            fprintf(q, "{\"id\":\"q%d\",\"fact_id\":\"f%d\",\"split\":\"%s\",\"relation\":\"city\",\"template\":\"t\","
                       "\"question\":\"Where does %s live?\",\"answer\":\"%s\"}\n", i, i, split, names[i], cities[i]);
    }
    fclose(f);
    fclose(q);
    return 0;
}

static int calls, evaluated;
static bool on_progress(const struct hmst_memory_train_progress *p, void *ud) {
    int *lm_steps = ud;
    calls++;
    if (p->lm_step) (*lm_steps)++;
    if (p->evaluated) evaluated++;
    if (p->struct_size != sizeof *p || p->step < 1 || !(p->loss > 0)) return false;
    return p->step < 3; /* stop after the third step */
}

int main(void) {
    hmst_log_set_level(HMST_LOG_ERROR);
    CHECK(write_facts() == 0);
    if (system("rm -rf " OUT) != 0) return 1;
    hmst_memory_trainer *t = NULL;
    struct hmst_memory_trainer_params p = hmst_memory_trainer_default_params();
    CHECK(p.struct_size == sizeof p && p.batch_size == 8 && p.seq_len == 128 && p.memory_seq_len == 96 && p.k == 4 && p.steps == 1000);
    CHECK(fabsf(p.lm_fraction - 0.5f) < 1e-6f);
    CHECK_STATUS(hmst_memory_trainer_create(NULL, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_create(&p, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT); /* no checkpoint */
    CHECK(strstr(hmst_last_error(), "checkpoint") != NULL);
    p.checkpoint = FIXTURE_DIR "/micro";
    p.facts_dir = FACTS;
    p.output_dir = OUT;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT); /* lm_fraction without data */
    CHECK(strstr(hmst_last_error(), "train_data") != NULL);
    p.train_data = FIXTURE_DIR "/data";
    p.val_data = FIXTURE_DIR "/data";
    p.lm_fraction = 1.5f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.lm_fraction = 0.5f;
    p.k = 0;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.k = 2;
    p.facts_dir = "/nonexistent/facts";
    CHECK(hmst_memory_trainer_create(&p, &t) < 0);
    CHECK(strstr(hmst_last_error(), "facts.jsonl") != NULL);
    p.facts_dir = FACTS;
    p.batch_size = 2;
    p.seq_len = 48;
    p.memory_seq_len = 40;
    p.steps = 6;
    p.eval_questions = 2;
    p.learning_rate = 1e-3f;
    int lm_steps = 0;
    p.progress = on_progress;
    p.user_data = &lm_steps;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_OK);
    if (!t) return check_summary("test_memory_trainer");

    double loss = 0;
    bool lm = true;
    CHECK_STATUS(hmst_memory_trainer_step(t, &loss, &lm), HMST_STATUS_OK);
    CHECK(loss > 0 && loss < 30 && !lm); /* step 0 is a memory step, step 1 an LM step */
    CHECK_STATUS(hmst_memory_trainer_step(t, NULL, &lm), HMST_STATUS_OK);
    CHECK(lm);
    struct hmst_memory_eval e = {.struct_size = sizeof e};
    CHECK_STATUS(hmst_memory_trainer_evaluate(t, &e), HMST_STATUS_OK);
    CHECK(e.n_questions == 2 && e.nll_on > 0 && e.nll_off > 0 && e.exact_match_on >= 0 && e.exact_match_on <= 1);
    struct hmst_memory_eval small = {.struct_size = 4};
    CHECK_STATUS(hmst_memory_trainer_evaluate(t, &small), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_evaluate(t, NULL), HMST_STATUS_INVALID_ARGUMENT);

    int32_t steps = 0;
    CHECK_STATUS(hmst_memory_trainer_run(t, &steps), HMST_STATUS_OK);
    CHECK(steps == 3 && calls == 1 && lm_steps == 0); /* step 3 (a memory step), then the callback stops it */
    CHECK_STATUS(hmst_memory_trainer_save(t, OUT "/saved"), HMST_STATUS_OK);
    CHECK_STATUS(hmst_memory_trainer_save(t, NULL), HMST_STATUS_INVALID_ARGUMENT);
    hmst_memory_trainer_free(t);

    /* the saved checkpoint has the markers as single tokens */
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(OUT "/final", NULL, &m), HMST_STATUS_OK);
    if (m) {
        int32_t ids[16];
        size_t n = 0;
        const char *markers = "<mem></mem><q><a></a>";
        CHECK_STATUS(hmst_tokenize(m, markers, strlen(markers), ids, 16, &n), HMST_STATUS_OK);
        CHECK(n == 5);
        hmst_model_free(m);
    }

    /* resume: continues at step 3 and runs to 6 */
    p.resume_from = OUT "/final";
    p.progress = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_OK);
    if (t) {
        CHECK_STATUS(hmst_memory_trainer_run(t, &steps), HMST_STATUS_OK);
        CHECK(steps == 6);
        hmst_memory_trainer_free(t);
    }
    p.resume_from = "/nonexistent/final";
    t = NULL;
    CHECK(hmst_memory_trainer_create(&p, &t) < 0 && t == NULL);
    /* a fresh run into that directory is refused unless force (its metrics.jsonl was appended to) */
    p.resume_from = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "holds an earlier run (metrics.jsonl") != NULL && t == NULL);
    p.checkpoint = OUT "/final";   /* never the run's own input */
    p.force = true;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "params->force would remove " OUT "/final") != NULL);
    p.checkpoint = FIXTURE_DIR "/micro";
    p.force = false;

    /* a copy head: trained with the model, saved beside it, loaded with it; resuming its run
     * without asking for it is an error */
    p.resume_from = NULL;
    p.output_dir = OUT "/copy";
    p.steps = 2;
    p.copy_head_key_size = -1;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "copy_head_key_size") != NULL);
    p.copy_head_key_size = 16;
    p.copy_gate_agreement_rank = 1025;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "copy_gate_agreement_rank") != NULL);
    p.copy_gate_agreement_rank = 4;   /* the gate's agreement term and lexical overlap, saved with the head */
    p.copy_gate_missing_terms = true;   /* the missing terms without the overlap they belong to: refused */
    t = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "missing terms") != NULL);
    p.copy_gate_lexical_overlap = true;
    p.copy_gate_lexical_scale = 0.0f;   /* a scale must be > 0 */
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "lexical scale") != NULL);
    p.copy_gate_lexical_scale = 3.0f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_OK);
    if (t) {
        CHECK_STATUS(hmst_memory_trainer_run(t, &steps), HMST_STATUS_OK);
        hmst_memory_trainer_free(t);
    }
    FILE *cf = fopen(OUT "/copy/final/copy_head.json", "r");
    CHECK(cf != NULL);
    if (cf) {
        char desc[1024] = {0};
        size_t got = fread(desc, 1, sizeof desc - 1, cf);
        CHECK(got > 0 && strstr(desc, "\"agreement_size\":4") != NULL);
        CHECK(strstr(desc, "\"question_marker_id\"") != NULL);
        CHECK(strstr(desc, "\"missing_terms\":true") != NULL);
        CHECK(strstr(desc, "\"overlap_scale\":3") != NULL);
        fclose(cf);
    }
    m = NULL;
    CHECK_STATUS(hmst_model_load(OUT "/copy/final", NULL, &m), HMST_STATUS_OK);
    hmst_model_free(m);
    p.copy_head_key_size = 0;
    p.copy_gate_agreement_rank = 0;
    p.copy_gate_lexical_overlap = false;
    p.copy_gate_missing_terms = false;
    p.copy_gate_lexical_scale = 1.0f;
    p.resume_from = OUT "/copy/final";
    t = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "copy head") != NULL);
    p.resume_from = NULL;

    /* episodic soft tokens (issue 11): trained, saved beside the model, loaded with it */
    struct hmst_memory_trainer_params dp = hmst_memory_trainer_default_params();
    CHECK(dp.episodic_soft_tokens == 0 && dp.episodic_fraction == 0.25f && dp.episodic_learning_rate == 0.0f);
    CHECK(dp.episodic_soft_input == HMST_EPISODIC_STATE_READOUT && dp.episodic_copy);
    CHECK(dp.episodic_pretrain_steps >= 0 && dp.episodic_readout >= 0.0f);
    p.output_dir = OUT "/soft";
    p.episodic_soft_tokens = 9;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "episodic") != NULL);
    p.episodic_soft_tokens = 1;
    p.episodic_fraction = 1.5f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "episodic_fraction") != NULL);
    p.episodic_fraction = 0.5f;
    p.episodic_soft_input = 7;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "episodic_soft_input") != NULL);
    p.episodic_soft_input = HMST_EPISODIC_STATE_READOUT;
    p.episodic_readout = -1.0f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "episodic_readout") != NULL);
    p.episodic_readout = 1.0f;
    p.episodic_pretrain_steps = 2;
    t = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_OK);
    if (t) {
        CHECK_STATUS(hmst_memory_trainer_run(t, &steps), HMST_STATUS_OK);
        hmst_memory_trainer_free(t);
    }
    FILE *sf = fopen(OUT "/soft/final/episodic_soft_tokens.json", "r");
    CHECK(sf != NULL);
    if (sf) {
        char desc[4096] = {0};
        size_t nd = fread(desc, 1, sizeof desc - 1, sf);
        CHECK(nd > 0 && strstr(desc, "\"input\":\"state_readout\"") != NULL && strstr(desc, "embedding_scale") != NULL);
        fclose(sf);
    }
    m = NULL;
    CHECK_STATUS(hmst_model_load(OUT "/soft/final", NULL, &m), HMST_STATUS_OK);
    hmst_model_free(m);
    p.episodic_soft_tokens = 0;
    p.episodic_fraction = 0.25f;
    p.episodic_readout = 0.0f;
    p.episodic_pretrain_steps = 0;

    /* the curriculum (issue 11): defaults, bad values named, dense/hybrid blocks need a projection */
    CHECK(dp.gold_weight == 0.5f && dp.distractors_only_weight == 0.25f && dp.no_memory_weight == 0.25f);
    CHECK(dp.questions_per_example == 1 && dp.hard_distractors == 0.0f && dp.retrieved_distractors == 0.0f);
    CHECK(dp.retrieved_by == HMST_RETRIEVAL_LEXICAL);
    p.output_dir = OUT "/curriculum";
    CHECK(dp.copy_gate_target_weight == 8.0f);
    p.copy_gate_target_weight = -1.0f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "copy_gate_target_weight") != NULL);
    p.copy_gate_target_weight = dp.copy_gate_target_weight;
    CHECK(dp.retrieved_lexical_weight == 1.0f);
    p.retrieved_lexical_weight = NAN;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "retrieved_lexical_weight") != NULL);
    p.retrieved_lexical_weight = dp.retrieved_lexical_weight;
    CHECK(dp.distractor_distillation == 0.5f);
    p.distractor_distillation = 1.5f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "distractor_distillation") != NULL);
    p.distractor_distillation = dp.distractor_distillation;
    CHECK(dp.distilled_gate_target_weight == 0.0f);
    p.distilled_gate_target_weight = INFINITY;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "distilled_gate_target_weight") != NULL);
    p.distilled_gate_target_weight = dp.distilled_gate_target_weight;
    CHECK(dp.copy_gate_open_weight == 0.0f);
    CHECK(dp.copy_gate_agreement_rank == 0);
    CHECK(!dp.copy_gate_lexical_overlap);
    CHECK(!dp.copy_gate_missing_terms);
    CHECK(dp.copy_gate_lexical_scale == 1.0f);
    p.copy_gate_open_weight = -1.0f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "copy_gate_open_weight") != NULL);
    p.copy_gate_open_weight = dp.copy_gate_open_weight;
    p.hard_distractors = -1.0f;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "hard_distractors") != NULL);
    p.hard_distractors = 0.5f;
    p.retrieved_distractors = 1.0f;
    p.retrieved_by = 9;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "retrieved_by") != NULL);
    p.retrieved_by = HMST_RETRIEVAL_HYBRID;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "retrieval projection") != NULL);
    p.retrieved_by = HMST_RETRIEVAL_LEXICAL;
    p.gold_weight = 0.6f;
    p.distractors_only_weight = 0.3f;
    p.no_memory_weight = 0.1f;
    p.questions_per_example = 2;
    t = NULL;
    CHECK_STATUS(hmst_memory_trainer_create(&p, &t), HMST_STATUS_OK);
    if (t) {
        CHECK_STATUS(hmst_memory_trainer_step(t, &loss, NULL), HMST_STATUS_OK);
        CHECK(loss > 0.0);
        hmst_memory_trainer_free(t);
    }
    p.gold_weight = 0.5f;
    p.distractors_only_weight = 0.25f;
    p.no_memory_weight = 0.25f;
    p.questions_per_example = 1;
    p.hard_distractors = 0.0f;
    p.retrieved_distractors = 0.0f;

    /* garbage and NULL handles */
    CHECK_STATUS(hmst_memory_trainer_step(NULL, &loss, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_step((hmst_memory_trainer *)&p, &loss, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_evaluate((hmst_memory_trainer *)&p, &e), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_run(NULL, NULL), HMST_STATUS_INVALID_ARGUMENT);
    hmst_memory_trainer_free(NULL);
    return check_summary("test_memory_trainer");
}
