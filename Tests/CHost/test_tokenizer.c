/* test_tokenizer.c: standalone tokenizers and text generation through a checkpoint that
 * carries a tokenizer.json, via the real library. */
#include <hmst.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "Tests/Golden"
#endif

static int pieces_seen;
static bool on_token(int32_t token, const char *piece, size_t len, void *ud) {
    (void)token;
    (void)piece;
    size_t *total = ud;
    *total += len;
    pieces_seen++;
    return pieces_seen < 1000;
}

struct recorded {
    int32_t ids[64];
    size_t n;
};

static bool record_token(int32_t token, const char *piece, size_t len, void *user_data) {
    (void)piece;
    (void)len;
    struct recorded *r = user_data;
    if (r->n < 64) r->ids[r->n++] = token;
    return true;
}

static bool stop_early(int32_t token, const char *piece, size_t len, void *ud) {
    (void)token, (void)piece, (void)len, (void)ud;
    return false;
}

static void test_tokenizer_api(void) {
    hmst_tokenizer *t = NULL;
    CHECK_STATUS(hmst_tokenizer_load(NULL, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenizer_load("/nonexistent.json", &t), HMST_STATUS_NOT_FOUND);
    CHECK_STATUS(hmst_tokenizer_load(GOLDEN_DIR "/model/tiny_untied/config.json", &t), HMST_STATUS_BAD_FORMAT);
    CHECK_STATUS(hmst_tokenizer_load(GOLDEN_DIR "/tokenizer/hf_tokenizer.json", NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenizer_load(GOLDEN_DIR "/tokenizer/hf_tokenizer.json", &t), HMST_STATUS_OK);
    if (!t) return;
    int32_t v = 0;
    CHECK_STATUS(hmst_tokenizer_vocab_size(t, &v), HMST_STATUS_OK);
    CHECK(v == 1000);
    CHECK_STATUS(hmst_tokenizer_vocab_size(t, NULL), HMST_STATUS_INVALID_ARGUMENT);

    const char text[] = "Hello world, it's \xff\xfe invalid UTF-8 <|endoftext|> too";
    size_t n = 0;
    CHECK_STATUS(hmst_tokenizer_encode(t, text, sizeof text - 1, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    int32_t *ids = malloc(n * sizeof *ids);
    size_t n2 = 0;
    CHECK_STATUS(hmst_tokenizer_encode(t, text, sizeof text - 1, ids, n, &n2), HMST_STATUS_OK);
    CHECK(n2 == n);
    CHECK_STATUS(hmst_tokenizer_encode(t, NULL, 5, ids, n, &n2), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenizer_encode(t, text, 0, NULL, 0, &n2), HMST_STATUS_OK);
    CHECK(n2 == 0);
    char back[128];
    size_t nb = 0;
    CHECK_STATUS(hmst_tokenizer_decode(t, ids, n, back, 3, &nb), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(nb == sizeof text - 1);
    CHECK_STATUS(hmst_tokenizer_decode(t, ids, n, back, sizeof back, &nb), HMST_STATUS_OK);
    CHECK(nb == sizeof text - 1 && memcmp(back, text, nb) == 0); /* lossless, invalid UTF-8 included */
    int32_t bad = 1000;
    CHECK_STATUS(hmst_tokenizer_decode(t, &bad, 1, back, sizeof back, &nb), HMST_STATUS_INVALID_ARGUMENT);
    free(ids);

    int32_t id = -1;
    CHECK_STATUS(hmst_tokenizer_piece_to_id(t, "<|endoftext|>", &id), HMST_STATUS_OK);
    CHECK(id == 0);
    CHECK_STATUS(hmst_tokenizer_piece_to_id(t, "no such piece at all", &id), HMST_STATUS_NOT_FOUND);
    char piece[64];
    CHECK_STATUS(hmst_tokenizer_id_to_piece(t, 0, piece, sizeof piece, &n), HMST_STATUS_OK);
    CHECK(strcmp(piece, "<|endoftext|>") == 0);
    CHECK_STATUS(hmst_tokenizer_id_to_piece(t, -1, piece, sizeof piece, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenizer_id_to_piece(t, 5, piece, 1, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_tokenizer_save(t, "/nonexistent-dir/x.json"), HMST_STATUS_IO);
    hmst_tokenizer_free(t);
    hmst_tokenizer_free(NULL);
    CHECK_STATUS(hmst_tokenizer_vocab_size(t, &v), HMST_STATUS_INVALID_ARGUMENT); /* freed */
}

static bool cancel_training(float p, void *ud) {
    (void)p, (void)ud;
    return false;
}

/* Train a tokenizer, put it beside a random micro model, load, generate. */
/* Chat: the checkpoint's chat_template.jinja renders the messages (their text literal, the
 * template's markup special), its refusals are errors, and chat generation runs. */
static void test_chat(hmst_model *m, hmst_context *c) {
    FILE *f = fopen("/tmp/hmst-ctest-gen/chat_template.jinja", "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{% if greeting is defined %}{{ greeting }} {{ tools[0].function.name }}{% endif %}"
          "{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}\n"
          "{% for m in messages %}\n"
          "<|endoftext|>{{ m.role }}\n{{ m.content | trim }}\n"
          "{% endfor %}\n"
          "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}", f);
    fclose(f);
    const char *msgs = "[{\"role\": \"system\", \"content\": \" Be brief. \"}, {\"role\": \"user\", \"content\": \"Hi\"}]";
    char buf[256];
    size_t n = 0;
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, NULL, buf, 8, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, NULL, buf, sizeof buf, &n), HMST_STATUS_OK);
    const char *want = "<|endoftext|>system\nBe brief.\n<|endoftext|>user\nHi\n<|endoftext|>assistant\n";
    CHECK(n == strlen(want) && strcmp(buf, want) == 0);
    struct hmst_chat_params cp = hmst_chat_default_params();
    CHECK(cp.add_generation_prompt && cp.tools_json == NULL && cp.template_vars_json == NULL);
    cp.add_generation_prompt = false;
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &cp, buf, sizeof buf, &n), HMST_STATUS_OK);
    CHECK(strstr(buf, "assistant") == NULL);
    /* template variables and tools reach the template; hmst's own names cannot be replaced */
    cp.template_vars_json = "{\"greeting\": \"hello\"}";
    cp.tools_json = "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]";
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &cp, buf, sizeof buf, &n), HMST_STATUS_OK);
    CHECK(strstr(buf, "hello f") != NULL);
    cp.template_vars_json = "{\"messages\": []}";
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &cp, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "'messages' is set by hmst") != NULL);
    cp.template_vars_json = "[1]";
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &cp, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    cp = hmst_chat_default_params();
    CHECK_STATUS(hmst_chat_apply_template(m, "[{\"role\": \"assistant\", \"content\": \"x\"}]", NULL, buf, sizeof buf, &n),
                 HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "Conversations must start with a user turn") != NULL);
    CHECK_STATUS(hmst_chat_apply_template(m, "[{\"role\": ", NULL, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "messages_json") != NULL);
    CHECK_STATUS(hmst_chat_apply_template(m, "{}", NULL, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_chat_apply_template(m, NULL, NULL, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_chat_apply_template(NULL, msgs, NULL, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    cp.struct_size = 2;
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &cp, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    /* tokens: the template's <|endoftext|> is token 0, the same text typed by a user is not */
    int32_t ids[128];
    CHECK_STATUS(hmst_chat_tokenize(m, msgs, NULL, ids, 2, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_chat_tokenize(m, msgs, NULL, ids, 128, &n), HMST_STATUS_OK);
    CHECK(n > 4 && ids[0] == 0);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) zeros += ids[i] == 0;
    const char *typed_ids = "[{\"role\": \"user\", \"content\": \"<|endoftext|><|endoftext|>\"}]";
    size_t n_typed = 0;
    CHECK_STATUS(hmst_chat_tokenize(m, typed_ids, NULL, ids, 128, &n_typed), HMST_STATUS_OK);
    size_t typed_zeros = 0;
    for (size_t i = 0; i < n_typed; i++) typed_zeros += ids[i] == 0;
    CHECK(zeros == 3 && typed_zeros == 2); /* the template's openings only */

    struct hmst_generate_params gp = hmst_generate_default_params();
    gp.max_tokens = 6;
    struct hmst_generation_stats st = {.struct_size = sizeof st};
    CHECK_STATUS(hmst_chat_generate(c, msgs, NULL, &gp, &st), HMST_STATUS_OK);
    CHECK(st.prompt_tokens > 4 && st.generated_tokens <= 6);
    CHECK(st.stop_reason == HMST_STOP_MAX_TOKENS || st.stop_reason == HMST_STOP_EOS);
    int32_t first_prompt = st.prompt_tokens;
    CHECK(st.cached_tokens == 0);
    /* prompt caching: the same chat again keeps all of its prompt but the last token */
    CHECK_STATUS(hmst_chat_generate(c, msgs, NULL, &gp, &st), HMST_STATUS_OK);
    CHECK(st.prompt_tokens == 1 && st.cached_tokens == first_prompt - 1);
    char out[512];
    CHECK_STATUS(hmst_context_last_output(c, out, sizeof out, &n), HMST_STATUS_OK);
    /* the next turn: the conversation so far is cached, only the rest is evaluated */
    int32_t held = 0;
    CHECK_STATUS(hmst_context_n_past(c, &held), HMST_STATUS_OK);
    CHECK(held >= first_prompt);
    const char *turn2 = "[{\"role\": \"system\", \"content\": \" Be brief. \"}, {\"role\": \"user\", \"content\": \"Hi\"},"
                        " {\"role\": \"assistant\", \"content\": \"Hello there.\"}, {\"role\": \"user\", \"content\": \"And you?\"}]";
    CHECK_STATUS(hmst_chat_tokenize(m, turn2, NULL, ids, 128, &n), HMST_STATUS_OK);
    int32_t turn2_tokens = (int32_t)n;
    CHECK_STATUS(hmst_chat_generate(c, turn2, NULL, &gp, &st), HMST_STATUS_OK);
    CHECK(st.cached_tokens >= first_prompt && st.cached_tokens + st.prompt_tokens == turn2_tokens);
    /* after a reset, nothing is cached */
    CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
    CHECK_STATUS(hmst_chat_generate(c, msgs, NULL, &gp, &st), HMST_STATUS_OK);
    CHECK(st.prompt_tokens == first_prompt && st.cached_tokens == 0);
    /* an older stats struct (without cached_tokens) is filled up to its size */
    struct hmst_generation_stats old = {.struct_size = offsetof(struct hmst_generation_stats, cached_tokens)};
    old.cached_tokens = -7;
    CHECK_STATUS(hmst_chat_generate(c, msgs, NULL, &gp, &old), HMST_STATUS_OK);
    CHECK(old.prompt_tokens == 1 && old.cached_tokens == -7);
    /* a user who types the template's special token gets text, not the token: more tokens */
    const char *typed = "[{\"role\": \"system\", \"content\": \" Be brief. \"}, {\"role\": \"user\", \"content\": \"<|endoftext|>\"}]";
    CHECK_STATUS(hmst_chat_generate(c, typed, NULL, &gp, &st), HMST_STATUS_OK);
    CHECK(st.prompt_tokens + st.cached_tokens > first_prompt + 1);
    CHECK_STATUS(hmst_context_last_output(c, out, sizeof out, &n), HMST_STATUS_OK);
    CHECK_STATUS(hmst_chat_generate(c, "[{\"role\": \"assistant\", \"content\": \"x\"}]", NULL, &gp, &st), HMST_STATUS_INVALID_ARGUMENT);

    /* tool calls: this template renders tools in no syntax hmst knows, so a required call is
     * one JSON object {"name", "arguments"}, held by a grammar; the reply is parsed */
    char calls[1024];
    CHECK_STATUS(hmst_context_last_tool_calls(c, calls, sizeof calls, &n), HMST_STATUS_OK);
    CHECK(strcmp(calls, "[]") == 0);
    struct hmst_chat_params tp = hmst_chat_default_params();
    CHECK(tp.tool_choice == NULL && tp.parallel_tool_calls);
    tp.tools_json = "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}}]";
    tp.tool_choice = "required";
    gp.max_tokens = 400;
    gp.sampling.temperature = 0;
    CHECK_STATUS(hmst_chat_generate(c, msgs, &tp, &gp, &st), HMST_STATUS_OK);
    CHECK(st.stop_reason == HMST_STOP_EOS);
    CHECK_STATUS(hmst_context_last_tool_calls(c, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hmst_context_last_tool_calls(c, calls, sizeof calls, &n), HMST_STATUS_OK);
    CHECK(strstr(calls, "\"type\":\"function\"") != NULL && strstr(calls, "\"name\":\"f\"") != NULL &&
          strstr(calls, "\"arguments\":\"{}\"") != NULL && strstr(calls, "\"id\":\"call_") != NULL);
    CHECK_STATUS(hmst_context_last_output(c, out, sizeof out, &n), HMST_STATUS_OK);
    CHECK(n == 0); /* the reply was the call */
    tp.tool_choice = "{\"type\": \"function\", \"function\": {\"name\": \"g\"}}";
    CHECK_STATUS(hmst_chat_generate(c, msgs, &tp, &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "not among the tools") != NULL);
    tp.tool_choice = "sometimes";
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &tp, buf, sizeof buf, &n), HMST_STATUS_INVALID_ARGUMENT);
    tp.tool_choice = "required";
    gp.json_object = true;
    CHECK_STATUS(hmst_chat_generate(c, msgs, &tp, &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
    gp.json_object = false;
    tp.tools_json = "[{\"type\": \"function\"}]";
    CHECK_STATUS(hmst_chat_generate(c, msgs, &tp, &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "tools_json") != NULL);
    tp.tools_json = NULL;
    CHECK_STATUS(hmst_chat_generate(c, msgs, &tp, &gp, &st), HMST_STATUS_INVALID_ARGUMENT); /* required without tools */
    /* an older struct (without tool_choice): the defaults, auto */
    struct hmst_chat_params old_cp = hmst_chat_default_params();
    old_cp.struct_size = offsetof(struct hmst_chat_params, tool_choice);
    old_cp.tool_choice = "required";
    CHECK_STATUS(hmst_chat_apply_template(m, msgs, &old_cp, buf, sizeof buf, &n), HMST_STATUS_OK);
    remove("/tmp/hmst-ctest-gen/chat_template.jinja");
}

static void test_generation(void) {
    const char *files[] = {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"};
    struct hmst_tokenizer_train_params tp = hmst_tokenizer_train_default_params();
    CHECK(tp.vocab_size == 8192 && tp.min_frequency == 2);
    hmst_tokenizer *t = NULL;
    CHECK_STATUS(hmst_tokenizer_train(files, 0, &tp, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenizer_train(NULL, 2, &tp, &t), HMST_STATUS_INVALID_ARGUMENT);
    tp.vocab_size = 10;
    CHECK_STATUS(hmst_tokenizer_train(files, 2, &tp, &t), HMST_STATUS_INVALID_ARGUMENT);
    tp = hmst_tokenizer_train_default_params();
    const char *specials[] = {"<my_special>"};
    tp.special_tokens = specials;
    tp.n_special_tokens = SIZE_MAX; /* not silently "no special tokens" */
    CHECK_STATUS(hmst_tokenizer_train(files, 2, &tp, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "n_special_tokens 18446744073709551615") != NULL);
    CHECK_STATUS(hmst_tokenizer_train(files, SIZE_MAX, &tp, &t), HMST_STATUS_INVALID_ARGUMENT);
    tp = hmst_tokenizer_train_default_params();
    tp.vocab_size = 600;
    tp.progress = cancel_training;
    CHECK_STATUS(hmst_tokenizer_train(files, 2, &tp, &t), HMST_STATUS_CANCELLED);
    tp.progress = NULL;
    CHECK_STATUS(hmst_tokenizer_train(files, 2, &tp, &t), HMST_STATUS_OK);
    if (!t) return;

    hmst_model *m = NULL;
    CHECK_STATUS(hmst_model_init_random("micro", 1, &m), HMST_STATUS_OK);
    CHECK_STATUS(hmst_model_save(m, "/tmp/hmst-ctest-gen", "f32"), HMST_STATUS_OK);
    hmst_model_free(m);
    CHECK_STATUS(hmst_tokenizer_save(t, "/tmp/hmst-ctest-gen/tokenizer.json"), HMST_STATUS_OK);
    hmst_tokenizer_free(t);

    CHECK_STATUS(hmst_model_load("/tmp/hmst-ctest-gen", NULL, &m), HMST_STATUS_OK);
    if (!m) return;
    hmst_context *c = NULL;
    CHECK_STATUS(hmst_context_new(m, NULL, &c), HMST_STATUS_OK);
    struct hmst_generate_params gp = hmst_generate_default_params();
    gp.max_tokens = 12;
    gp.sampling.seed = 42;
    size_t streamed = 0;
    gp.on_token = on_token;
    gp.user_data = &streamed;
    gp.ignore_eos = true;
    struct hmst_generation_stats st = {.struct_size = sizeof st};
    CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
    CHECK(st.generated_tokens == 12 && st.prompt_tokens >= 2 && st.stop_reason == HMST_STOP_MAX_TOKENS);
    CHECK(st.time_to_first_token_ms > 0 && st.tokens_per_second > 0);
    size_t n = 0;
    CHECK_STATUS(hmst_context_last_output(c, NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == streamed && n > 0);
    char *first = malloc(n + 1);
    CHECK_STATUS(hmst_context_last_output(c, first, n + 1, &n), HMST_STATUS_OK);

    /* same seed, same text */
    CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
    CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
    char *second = malloc(n + 1);
    size_t n2 = 0;
    CHECK_STATUS(hmst_context_last_output(c, second, n + 1, &n2), HMST_STATUS_OK);
    CHECK(n2 == n && memcmp(first, second, n) == 0);

    /* a stop string taken from that output ends the text just before it */
    if (n > 6) {
        char stop[4] = {first[n - 3], first[n - 2], first[n - 1], 0};
        const char *stops[] = {stop};
        gp.stop = stops;
        gp.n_stop = 1;
        CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
        CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
        CHECK(st.stop_reason == HMST_STOP_STRING || st.stop_reason == HMST_STOP_MAX_TOKENS);
        CHECK_STATUS(hmst_context_last_output(c, second, n + 1, &n2), HMST_STATUS_OK);
        CHECK(n2 <= n - 3 && memcmp(first, second, n2) == 0);
        gp.stop = NULL;
        gp.n_stop = 3; /* NULL list with a count */
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        gp.n_stop = SIZE_MAX; /* 2^63 and more: a count, not a negative number */
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "n_stop 18446744073709551615") != NULL);
        gp.stop = stops;
        gp.n_stop = ((size_t)1 << 63) + 1;
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        gp.stop = NULL;
        gp.n_stop = 0;
    }
    /* OpenAI's penalties (appended fields): a huge presence penalty over the whole context
     * never repeats a token of it, prompt included; a struct_size from before them leaves them
     * off whatever the bytes after it hold; a non-finite one is refused */
    {
        struct recorded r = {0};
        gp.on_token = record_token;
        gp.user_data = &r;
        gp.presence_penalty = 1e4f;
        gp.sampling.repeat_last_n = 4096;
        CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
        CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
        int32_t prompt_ids[16];
        size_t np = 0;
        CHECK_STATUS(hmst_tokenize(m, "The license", 11, prompt_ids, 16, &np), HMST_STATUS_OK);
        CHECK(r.n == 12);
        for (size_t i = 0; i < r.n; i++) {
            for (size_t j = 0; j < i; j++) CHECK(r.ids[i] != r.ids[j]);
            for (size_t j = 0; j < np; j++) CHECK(r.ids[i] != prompt_ids[j]);
        }
        gp.sampling.repeat_last_n = 64;
        gp.struct_size = (uint32_t)offsetof(struct hmst_generate_params, frequency_penalty);
        gp.frequency_penalty = NAN;
        gp.on_token = on_token;
        gp.user_data = &streamed;
        CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
        CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
        CHECK_STATUS(hmst_context_last_output(c, second, n + 1, &n2), HMST_STATUS_OK);
        CHECK(n2 == n && memcmp(first, second, n) == 0);
        gp.struct_size = sizeof gp;
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "frequency_penalty nan must be finite") != NULL);
        gp.frequency_penalty = 0;
        gp.presence_penalty = 0;
        /* logit bias (appended): +100 on one token forces it under greedy decoding; an id
         * beyond the vocabulary and a count without arrays are refused */
        int32_t bias_ids[2] = {7, 8};
        float bias[2] = {100.0f, -INFINITY};
        r.n = 0;
        gp.on_token = record_token;
        gp.user_data = &r;
        gp.sampling.temperature = 0;
        gp.logit_bias_tokens = bias_ids;
        gp.logit_bias = bias;
        gp.n_logit_bias = 2;
        CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
        CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
        CHECK(r.n == 12);
        for (size_t i = 0; i < r.n; i++) CHECK(r.ids[i] == 7);
        bias_ids[1] = 1 << 20;
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "logit_bias names token 1048576") != NULL);
        gp.logit_bias = NULL;
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        gp.n_logit_bias = 0;
        gp.logit_bias_tokens = NULL;
        /* json_object (appended): the text starts with '{' and, when generation ends by itself
         * (HMST_STOP_EOS), ends with the '}' that closes it */
        gp.json_object = true;
        gp.ignore_eos = false;
        gp.max_tokens = 48;
        gp.on_token = on_token;
        gp.user_data = &streamed;
        int closed = 0;
        for (uint64_t seed = 0; seed < 6; seed++) {
            gp.sampling.seed = seed;
            gp.sampling.temperature = 1.0f;
            CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
            CHECK_STATUS(hmst_generate(c, "JSON:", &gp, &st), HMST_STATUS_OK);
            char json[4096];
            size_t nj = 0;
            CHECK_STATUS(hmst_context_last_output(c, json, sizeof json, &nj), HMST_STATUS_OK);
            size_t at = 0;
            while (at < nj && (json[at] == ' ' || json[at] == '\n' || json[at] == '\t' || json[at] == '\r')) at++;
            CHECK(at < nj && json[at] == '{');
            if (st.stop_reason == HMST_STOP_EOS) {
                CHECK(nj > 0 && json[nj - 1] == '}');
                closed++;
            } else {
                CHECK(st.stop_reason == HMST_STOP_MAX_TOKENS);
            }
        }
        CHECK(closed > 0);
        gp.json_object = false;
        /* grammar (appended): "yes" or "no", a space, 1 to 3 digits; after 3 digits nothing can
         * follow, so generation ends by itself (HMST_STOP_EOS) with a whole sentence */
        gp.grammar = "root ::= (\"yes\" | \"no\") \" \" [0-9]{1,3}";
        gp.max_tokens = 16;
        for (uint64_t seed = 0; seed < 4; seed++) {
            gp.sampling.seed = seed;
            CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
            CHECK_STATUS(hmst_generate(c, "Answer:", &gp, &st), HMST_STATUS_OK);
            char out[256];
            size_t no = 0;
            CHECK_STATUS(hmst_context_last_output(c, out, sizeof out, &no), HMST_STATUS_OK);
            CHECK(st.stop_reason == HMST_STOP_EOS);
            size_t word = strncmp(out, "yes ", 4) == 0 ? 4 : strncmp(out, "no ", 3) == 0 ? 3 : 0;
            CHECK(word > 0 && no > word && no <= word + 3);
            for (size_t i = word; i < no; i++) CHECK(out[i] >= '0' && out[i] <= '9');
        }
        /* json_schema: {"ok": true|false}, whitespace aside */
        gp.grammar = NULL;
        gp.json_schema = "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"}},\"required\":[\"ok\"]}";
        gp.max_tokens = 64;
        closed = 0;
        for (uint64_t seed = 0; seed < 4; seed++) {
            gp.sampling.seed = seed;
            CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
            CHECK_STATUS(hmst_generate(c, "JSON:", &gp, &st), HMST_STATUS_OK);
            char out[1024], squeezed[1024];
            size_t no = 0, k = 0;
            CHECK_STATUS(hmst_context_last_output(c, out, sizeof out, &no), HMST_STATUS_OK);
            for (size_t i = 0; i < no; i++) if (out[i] != ' ' && out[i] != '\n' && out[i] != '\t') squeezed[k++] = out[i];
            squeezed[k] = 0;
            if (st.stop_reason == HMST_STOP_EOS) {
                CHECK(strcmp(squeezed, "{\"ok\":true}") == 0 || strcmp(squeezed, "{\"ok\":false}") == 0);
                closed++;
            }
        }
        CHECK(closed > 0);
        /* what cannot be read is refused, naming where; two constraints at once are refused */
        gp.json_schema = "{\"type\":\"array\",\"uniqueItems\":true}";
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "'uniqueItems' is not supported") != NULL);
        gp.json_schema = "{\"type\":\"object\"}";
        gp.grammar = "root ::= \"a\"";
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        gp.json_schema = NULL;
        gp.grammar = "root ::= \"a\" undefined-rule";
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "line 1, column 14: rule 'undefined-rule' is used but not defined") != NULL);
        gp.grammar = "root ::= \"\xff\"";
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "grammar is not UTF-8") != NULL);
        gp.grammar = "root ::= \"a\"";
        gp.json_object = true;
        CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);
        gp.json_object = false;
        gp.grammar = NULL;
        CHECK_STATUS(hmst_grammar_check("root ::= [a-z]+ (\",\" [a-z]+)*"), HMST_STATUS_OK);
        CHECK_STATUS(hmst_grammar_check("root ::= root \"a\""), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "left-recursive") != NULL);
        CHECK_STATUS(hmst_grammar_check(NULL), HMST_STATUS_INVALID_ARGUMENT);
        /* a schema's grammar, with the buffer protocol: too small says the length; it reads back */
        char gbnf[4096];
        size_t ng = 0;
        const char *schema = "{\"type\":\"array\",\"items\":{\"enum\":[1,\"two\"]},\"maxItems\":2}";
        CHECK_STATUS(hmst_json_schema_to_grammar(schema, gbnf, 4, &ng), HMST_STATUS_BUFFER_TOO_SMALL);
        CHECK(ng > 4);
        CHECK_STATUS(hmst_json_schema_to_grammar(schema, gbnf, sizeof gbnf, &ng), HMST_STATUS_OK);
        CHECK(strlen(gbnf) == ng && strstr(gbnf, "root ::=") != NULL);
        CHECK_STATUS(hmst_grammar_check(gbnf), HMST_STATUS_OK);
        CHECK_STATUS(hmst_json_schema_to_grammar("{\"type\":", gbnf, sizeof gbnf, &ng), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(hmst_last_error(), "not valid JSON") != NULL);
        gp.ignore_eos = true;
        gp.max_tokens = 12;
        gp.sampling.seed = 42;
        gp.sampling.temperature = 0.8f;
        gp.on_token = on_token;
        gp.user_data = &streamed;
    }
    /* the callback stops generation */
    gp.on_token = stop_early;
    CHECK_STATUS(hmst_context_reset(c), HMST_STATUS_OK);
    CHECK_STATUS(hmst_generate(c, "The license", &gp, &st), HMST_STATUS_OK);
    CHECK(st.stop_reason == HMST_STOP_CALLBACK && st.generated_tokens == 1);
    gp.sampling.temperature = -1;
    CHECK_STATUS(hmst_generate(c, "x", &gp, &st), HMST_STATUS_INVALID_ARGUMENT);

    /* the model's tokenizer */
    int32_t ids[64];
    CHECK_STATUS(hmst_tokenize(m, "The license", 11, ids, 64, &n), HMST_STATUS_OK);
    char text[64];
    CHECK_STATUS(hmst_detokenize(m, ids, n, text, sizeof text, &n2), HMST_STATUS_OK);
    CHECK(n2 == 11 && memcmp(text, "The license", 11) == 0);
    /* lengths of 2^63 or more are refused with the value as passed; a capacity that large is room enough */
    CHECK_STATUS(hmst_tokenize(m, "The license", SIZE_MAX, ids, 64, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "text_len 18446744073709551615") != NULL);
    CHECK_STATUS(hmst_detokenize(m, ids, SIZE_MAX, text, sizeof text, &n2), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_tokenize(m, "The license", 11, ids, SIZE_MAX, &n), HMST_STATUS_OK);
    test_chat(m, c);
    free(first);
    free(second);
    hmst_context_free(c);
    hmst_model_free(m);
}

int main(void) {
    hmst_log_set_level(HMST_LOG_ERROR);
    test_tokenizer_api();
    test_generation();
    return check_summary("test_tokenizer");
}
