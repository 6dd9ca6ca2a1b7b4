/* test_trainer.c: the training API through the real library, on the fixture dataset
 * (license texts tokenized by `hmst preprocess`, made by the Makefile). */
#include <hmst.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif

static int calls;
static int evals;
static bool on_progress(const struct hmst_train_progress *p, void *ud) {
    (void)ud;
    calls++;
    if (!isnan(p->val_loss)) evals++;
    if (p->struct_size != sizeof *p || p->step < 1 || !(p->loss > 0)) return false;
    return p->step < 3; /* stop after the third step */
}

static double last_lr = 1;
static bool count_progress(const struct hmst_train_progress *p, void *user_data) {
    (void)user_data;
    calls++;
    if (!isnan(p->val_loss)) evals++;
    last_lr = p->learning_rate;
    return true;
}

int main(void) {
    hmst_log_set_level(HMST_LOG_ERROR);
    if (system("rm -rf /tmp/hmst-ctest-train") != 0) return 1;   /* a failed run's leftovers are an earlier run */
    hmst_trainer *t = NULL;
    struct hmst_trainer_params p = hmst_trainer_default_params();
    CHECK(p.struct_size == sizeof p && p.batch_size == 4 && p.seq_len == 256 && p.learning_rate == 1e-3f && p.epochs == 1);
    CHECK_STATUS(hmst_trainer_create(NULL, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_trainer_create(&p, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT); /* no train_data */
    CHECK(strstr(hmst_last_error(), "train_data") != NULL);
    p.train_data = "/nonexistent/data";
    p.output_dir = "/tmp/hmst-ctest-train";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_NOT_FOUND);
    p.train_data = FIXTURE_DIR "/data";
    p.val_data = FIXTURE_DIR "/data";
    p.seq_len = 32;
    p.batch_size = 0;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.batch_size = INT32_MAX; /* a step larger than the machine's memory: refused, not an allocation trap */
    p.output_dir = "";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "output_dir is an empty path") != NULL);
    p.output_dir = "/tmp/hmst-ctest-train";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OUT_OF_MEMORY);
    CHECK(strstr(hmst_last_error(), "training step") != NULL);
    p.batch_size = 2;
    p.learning_rate = -1;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.learning_rate = 1e-3f;
    p.model_size = "colossal";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.model_size = "micro";
    p.steps_per_epoch = 6;
    p.eval_every = 2;
    p.eval_windows = 2;
    p.progress = on_progress;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    if (!t) return check_summary("test_trainer");

    double loss = 0, val = 0;
    CHECK_STATUS(hmst_trainer_step(t, &loss), HMST_STATUS_OK);
    CHECK(loss > 1 && loss < 20);
    CHECK_STATUS(hmst_trainer_step(t, NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_evaluate(t, &val), HMST_STATUS_OK);
    CHECK(val > 1 && val < 20);
    CHECK_STATUS(hmst_trainer_evaluate(t, NULL), HMST_STATUS_INVALID_ARGUMENT);
    int32_t steps = 0;
    CHECK_STATUS(hmst_trainer_run(t, &steps), HMST_STATUS_OK); /* the callback stops it at step 3 */
    CHECK(steps == 3 && calls == 1 && evals == 0);
    CHECK_STATUS(hmst_trainer_save(t, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_trainer_save(t, "/tmp/hmst-ctest-train/saved"), HMST_STATUS_OK);
    hmst_trainer_free(t);
    CHECK_STATUS(hmst_trainer_step(t, &loss), HMST_STATUS_INVALID_ARGUMENT); /* freed */
    hmst_trainer_free(NULL);

    /* the saved checkpoint loads as a model, and training resumes from it */
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load("/tmp/hmst-ctest-train/saved", NULL, &m), HMST_STATUS_OK);
    hmst_model_free(m);
    p.resume_from = "/tmp/hmst-ctest-train/saved";
    p.progress = NULL;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_run(t, &steps), HMST_STATUS_OK);
    CHECK(steps == 6);
    hmst_trainer_free(t);
    p.resume_from = "/tmp/hmst-ctest-train/nowhere";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_NOT_FOUND);

    /* mixed precision + checkpointing + 8-bit AdamW; the state refuses the other optimizer */
    CHECK(!p.mixed_precision && !p.gradient_checkpointing && !p.use_8bit_optimizer);
    p.resume_from = NULL;
    p.mixed_precision = p.gradient_checkpointing = p.use_8bit_optimizer = true;
    /* a fresh run into the first run's directory is refused (it appended to its metrics.jsonl);
     * force starts over there, removing that run's files but not other checkpoints saved there */
    CHECK(!p.force);
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "holds an earlier run") != NULL && strstr(hmst_last_error(), "params->force") != NULL);
    CHECK(access("/tmp/hmst-ctest-train/final/config.json", F_OK) == 0);
    p.force = true;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    CHECK(access("/tmp/hmst-ctest-train/final", F_OK) != 0 && access("/tmp/hmst-ctest-train/metrics.jsonl", F_OK) != 0);
    CHECK(access("/tmp/hmst-ctest-train/saved/config.json", F_OK) == 0);
    CHECK_STATUS(hmst_trainer_step(t, &loss), HMST_STATUS_OK);
    CHECK(loss > 1 && loss < 20);
    CHECK_STATUS(hmst_trainer_save(t, "/tmp/hmst-ctest-train/saved8"), HMST_STATUS_OK);
    hmst_trainer_free(t);
    p.use_8bit_optimizer = false;
    p.resume_from = "/tmp/hmst-ctest-train/saved8";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "adamw8bit") != NULL);
    /* a host built against the older, shorter struct gets the defaults for the new fields */
    p.use_8bit_optimizer = true;
    p.struct_size = (uint32_t)offsetof(struct hmst_trainer_params, mixed_precision);
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT); /* resumes as adamw: refused */
    p.struct_size = sizeof p;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    hmst_trainer_free(t);

    /* a time budget instead of epochs: bad budgets, warmups and minimum rates are named */
    struct hmst_trainer_params d = hmst_trainer_default_params();
    CHECK(d.time_budget_seconds == 0 && d.min_learning_rate == -1 && d.warmup_fraction >= 0 && d.warmup_fraction < 1);
    p.resume_from = NULL;
    p.mixed_precision = p.gradient_checkpointing = p.use_8bit_optimizer = false;
    p.time_budget_seconds = -1;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "time_budget_seconds") != NULL);
    p.time_budget_seconds = NAN;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    p.time_budget_seconds = 2; /* room for several steps even on a loaded machine (0.5 s gave 2 there) */
    p.warmup_fraction = 1;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "warmup_fraction") != NULL);
    p.warmup_fraction = 0.1f;
    p.min_learning_rate = 1; /* above learning_rate */
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "min_learning_rate") != NULL);
    p.min_learning_rate = 0;
    p.steps_per_epoch = 2; /* an epoch is far shorter than the budget: the budget decides */
    p.eval_every = 0;
    p.output_dir = "/tmp/hmst-ctest-train/budget";
    calls = evals = 0;
    p.progress = count_progress;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_run(t, &steps), HMST_STATUS_OK);
    CHECK(steps > 2 && calls == steps && evals >= 1 && last_lr < 1e-4);
    hmst_trainer_free(t);
    return check_summary("test_trainer");
}
