/* test_eval.c: hmst_eval_run through the real library on the fixture micro checkpoint: a
 * multiple-choice and a generate_until task under off, oracle, on and deleted (a semantic memory
 * made here), the report in a caller buffer, BUFFER_TOO_SMALL with report_path, and misuse
 * (NULL, bad struct_size, unknown conditions, missing files, malformed lines) as statuses. */
#include <hmst.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif
#define DIR "/tmp/hmst-ctest-eval"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void make_tasks(void) {
    write_file(DIR "/mc.json", "{\"name\": \"mc\", \"output_type\": \"multiple_choice\", \"data\": \"mc.jsonl\"}");
    write_file(DIR "/mc.jsonl",
               "{\"id\": \"a\", \"prompt\": \"Who may copy the work?\", \"choices\": [\" the licensee\", \" nobody\"], \"gold\": 0,"
               " \"memory\": [\"The licensee may copy the work.\"]}\n"
               "{\"id\": \"b\", \"prompt\": \"Is warranty given?\", \"choices\": [\" yes\", \" no\"], \"gold\": 1,"
               " \"memory\": [\"Warranty is disclaimed.\"]}\n");
    write_file(DIR "/gen.json", "{\"name\": \"gen\", \"output_type\": \"generate_until\", \"data\": \"gen.jsonl\","
                                " \"until\": [\"</a>\", \"\\n\"], \"max_gen_tokens\": 4}");
    write_file(DIR "/gen.jsonl", "{\"id\": 1, \"prompt\": \"Who may copy the work?\", \"target\": \" the licensee\","
                                 " \"memory\": [\"The licensee may copy the work.\"]}\n");
    write_file(DIR "/bad.json", "{\"name\": \"bad\", \"output_type\": \"multiple_choice\", \"data\": \"bad.jsonl\"}");
    write_file(DIR "/bad.jsonl", "{\"prompt\": \"p\", \"choices\": [\" a\", \" b\"], \"gold\": 0}\n{\"prompt\": \n");
    write_file(DIR "/odd.json", "{\"name\": \"odd\", \"output_type\": \"ranking\", \"data\": \"mc.jsonl\"}");
}

static void make_memory(const hmst_model *m) {
    struct hmst_semantic_params sp = hmst_semantic_default_params();
    hmst_semantic *s = NULL;
    struct hmst_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(hmst_model_info(m, &info), HMST_STATUS_OK);
    sp.dim = info.n_embd;
    sp.index_description = "Flat";
    CHECK_STATUS(hmst_semantic_create(&sp, &s), HMST_STATUS_OK);
    if (!s) return;
    const char *facts[4] = {"The licensee may copy the work.", "Warranty is disclaimed.", "Patents are licensed.",
                            "Source must be offered."};
    for (int i = 0; i < 4; i++) CHECK_STATUS(hmst_semantic_add_text(s, m, facts[i], "test", NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_semantic_save(s, DIR "/mem/semantic"), HMST_STATUS_OK);
    hmst_semantic_free(s);
}

int main(void) {
    if (system("rm -rf " DIR " && mkdir -p " DIR "/mem") != 0) return 1;
    make_tasks();
    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_load(FIXTURE_DIR "/micro", NULL, &m), HMST_STATUS_OK);
    if (!m) return check_summary("test_eval");
    make_memory(m);

    struct hmst_eval_params p = hmst_eval_default_params();
    CHECK(p.struct_size == sizeof p && p.k == 4 && p.conditions == HMST_EVAL_CONDITION_OFF && p.bootstrap_resamples == 1000);
    const char *tasks[2] = {DIR "/mc.json", DIR "/gen.json"};
    p.task_paths = tasks;
    p.n_tasks = 2;
    p.memory_dir = DIR "/mem";
    p.conditions = HMST_EVAL_CONDITION_OFF | HMST_EVAL_CONDITION_ORACLE | HMST_EVAL_CONDITION_ON | HMST_EVAL_CONDITION_DELETED;
    p.k = 2;
    p.bootstrap_resamples = 100;
    p.items_path = DIR "/items.jsonl";
    CHECK(p.dense_weight == 1.0f && p.lexical_weight == 1.0f && p.min_coverage == 0.0f);
    p.lexical_weight = 2.5f;
    static char report[1 << 16];
    size_t n = 0;
    CHECK_STATUS(hmst_eval_run(m, &p, report, sizeof report, &n), HMST_STATUS_OK);
    CHECK(n == strlen(report) && n > 0);
    CHECK(strstr(report, "\"format\":\"hmst-eval-report\"") != NULL);
    CHECK(strstr(report, "\"mc\":{\"output_type\":\"multiple_choice\"") != NULL);
    CHECK(strstr(report, "\"acc_norm\":{\"value\":") != NULL);
    CHECK(strstr(report, "\"exact_match\":{\"value\":") != NULL);
    CHECK(strstr(report, "\"deleted\":{") != NULL && strstr(report, "\"oracle\":{") != NULL);
    CHECK(strstr(report, "\"retrieval\":{\"mode\":\"hybrid\",\"tier\":\"both\",\"dense_weight\":1.0,\"lexical_weight\":2.5,\"min_coverage\":0.0}") != NULL);
    /* 3 items x 4 conditions in the per-item file; deleted never shows the gold memory */
    FILE *f = fopen(DIR "/items.jsonl", "r");
    CHECK(f != NULL);
    if (f) {
        char line[8192];
        int lines = 0, deleted_with_gold = 0;
        while (fgets(line, sizeof line, f)) {
            lines++;
            if (strstr(line, "\"condition\":\"deleted\"") && strstr(line, "\"id\":\"a\"") &&
                strstr(line, "The licensee may copy the work.")) deleted_with_gold++;
        }
        fclose(f);
        CHECK(lines == 12);
        CHECK(deleted_with_gold == 0);
    }

    /* too small: the length comes back, and report_path holds the report */
    p.items_path = NULL;
    p.report_path = DIR "/report.json";
    p.conditions = HMST_EVAL_CONDITION_OFF;
    char tiny[8];
    CHECK_STATUS(hmst_eval_run(m, &p, tiny, sizeof tiny, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > sizeof tiny);
    f = fopen(DIR "/report.json", "r");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK_STATUS(hmst_eval_run(m, &p, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    p.report_path = NULL;

    /* misuse */
    CHECK_STATUS(hmst_eval_run(NULL, &p, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_eval_run(m, NULL, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_eval_run(m, &p, report, sizeof report, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_eval_run(m, &p, NULL, 16, &n), HMST_STATUS_INVALID_ARGUMENT);
    struct hmst_eval_params q = p;
    q.struct_size = 0;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    q = p;
    q.conditions = 0;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    q.conditions = 64;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    q = p;
    q.n_tasks = 0;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    q.n_tasks = 1;
    q.task_paths = NULL;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    const char *missing[1] = {DIR "/nope.json"};
    q.task_paths = missing;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_NOT_FOUND);
    CHECK(strstr(hmst_last_error(), "nope.json") != NULL);
    const char *bad[1] = {DIR "/bad.json"};
    q.task_paths = bad;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_BAD_FORMAT);
    CHECK(strstr(hmst_last_error(), "line 2") != NULL);
    const char *odd[1] = {DIR "/odd.json"};
    q.task_paths = odd;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_BAD_FORMAT);
    CHECK(strstr(hmst_last_error(), "ranking") != NULL);
    q = p;
    q.memory_dir = NULL;
    q.conditions = HMST_EVAL_CONDITION_ON;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    q.memory_dir = DIR "/no-memory";
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_NOT_FOUND);
    q = p;
    q.lexical_weight = -1.0f;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "lexical_weight") != NULL);
    q.lexical_weight = 1.0f;
    q.dense_weight = NAN;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "dense_weight") != NULL);
    q = p;
    q.min_coverage = 2.0f;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "min_coverage") != NULL);
    q = p;
    q.k = 0;
    CHECK_STATUS(hmst_eval_run(m, &q, report, sizeof report, &n), HMST_STATUS_INVALID_ARGUMENT);

    hmst_model_free(m);
    return check_summary("test_eval");
}
