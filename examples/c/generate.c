/* generate.c: load a checkpoint, stream a completion to stdout, print the stats.
 *
 *   cc -std=c11 generate.c $(pkg-config --cflags --libs hmst) -o generate
 *   ./generate CHECKPOINT_DIR "Once upon a time" [max_tokens]
 */
#include <hmst.h>
#include <stdio.h>
#include <stdlib.h>

static bool print_piece(int32_t token, const char *piece, size_t len, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true; /* false would stop generation here */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CHECKPOINT_DIR PROMPT [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    hmst_model *model = NULL;
    int rc = hmst_model_load(argv[1], NULL, &model);
    if (rc != HMST_STATUS_OK) {
        fprintf(stderr, "load %s: %s: %s\n", argv[1], hmst_status_string(rc), hmst_last_error());
        return 1;
    }
    struct hmst_context_params cp = hmst_context_default_params();
    cp.n_ctx = 512;
    hmst_context *ctx = NULL;
    rc = hmst_context_new(model, &cp, &ctx);
    if (rc != HMST_STATUS_OK) {
        fprintf(stderr, "context: %s\n", hmst_last_error());
        hmst_model_free(model);
        return 1;
    }
    struct hmst_generate_params gp = hmst_generate_default_params();
    gp.max_tokens = argc > 3 ? atoi(argv[3]) : 40;
    gp.sampling.temperature = 0.8f;
    gp.sampling.seed = 1234;
    gp.on_token = print_piece;
    struct hmst_generation_stats stats = {.struct_size = sizeof stats};
    printf("%s", argv[2]);
    rc = hmst_generate(ctx, argv[2], &gp, &stats);
    printf("\n");
    if (rc != HMST_STATUS_OK) {
        fprintf(stderr, "generate: %s: %s\n", hmst_status_string(rc), hmst_last_error());
    } else {
        fprintf(stderr, "[%d prompt tokens in %.1f ms, %d generated at %.1f tokens/s, TTFT %.1f ms]\n",
                stats.prompt_tokens, stats.prompt_ms, stats.generated_tokens, stats.tokens_per_second,
                stats.time_to_first_token_ms);
    }
    hmst_context_free(ctx);
    hmst_model_free(model);
    return rc == HMST_STATUS_OK ? 0 : 1;
}
