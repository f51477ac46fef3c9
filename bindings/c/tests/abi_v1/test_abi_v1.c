/* A program written against ABI version 1 (the header beside this file, a copy of
   include/rnncore.h at that version), built and linked unchanged with the current
   library: everything a version-1 program does keeps working (README.md here). Uses only
   version-1 functions. */
#define _XOPEN_SOURCE 700
#include <unistd.h>

#include "harness.h"

#if RNN_ABI_VERSION != 1
#error "this program must be compiled against the version-1 header (bindings/c/tests/abi_v1)"
#endif

#define B 2
#define T 6

static char g_dir[256];

static void test_the_library_is_at_least_version_1(void) {
    CHECK(rnn_abi_version() >= RNN_ABI_VERSION);
    CHECK(rnn_version() != NULL && rnn_version()[0] != '\0');
}

static void test_new_forward_step_save_load(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, 3, 8, 2, 2, RNN_OUTPUT_SOFTMAX), back;
    rnn_model *m = NULL, *loaded = NULL;
    rnn_state *s = NULL;
    float x[B * T * 3], y[B * T * 2], ys[B * T * 2], yl[B * T * 2], xt[B * 3], yt[B * 2];
    char path[300];
    size_t t, b, i;
    OK(rnn_model_new(&c, 7, &m));
    if (!m) return;
    OK(rnn_model_config(m, &back));
    CHECK(memcmp(&back, &c, sizeof c) == 0);
    CHECK(rnn_model_output_size(m) == 2);
    h_fill_rand(x, B * T * 3, 11);
    h_fill(y, B * T * 2, NAN);
    OK(rnn_model_forward(m, x, B, T, y, B * T * 2));
    for (i = 0; i < B * T; i++) CHECK(fabsf(y[2 * i] + y[2 * i + 1] - 1.0f) < 1e-5f);
    /* Streaming one step at a time gives the whole-sequence outputs. */
    OK(rnn_state_new(m, B, &s));
    if (!s) return;
    for (t = 0; t < T; t++) {
        for (b = 0; b < B; b++) memcpy(&xt[b * 3], &x[(b * T + t) * 3], 3 * sizeof(float));
        OK(rnn_model_step(m, s, xt, B * 3, yt, B * 2));
        for (b = 0; b < B; b++) memcpy(&ys[(b * T + t) * 2], &yt[b * 2], 2 * sizeof(float));
    }
    CHECK(h_max_abs_diff(y, ys, B * T * 2) < 1e-5f);
    rnn_state_free(s);
    /* Saved and loaded: the same outputs, exactly. */
    snprintf(path, sizeof path, "%s/v1.safetensors", g_dir);
    OK(rnn_model_save(m, path));
    OK(rnn_model_load(path, &loaded));
    if (loaded) {
        OK(rnn_model_forward(loaded, x, B, T, yl, B * T * 2));
        CHECK(memcmp(y, yl, sizeof y) == 0);
        rnn_model_free(loaded);
    }
    remove(path);
    /* Errors as before. */
    FAILS(rnn_model_forward(m, x, B, T, y, 5), RNN_ERR_INVALID, "y_len");
    rnn_model_free(m);
}

static void test_a_trainer_step(void) {
    rnn_config c = h_config(RNN_CELL_GRU_LBR, 1, 8, 1, 1, RNN_OUTPUT_IDENTITY);
    rnn_train_config tc = h_adam(0.05f);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    float x[B * T], target[B * T], first = -1.0f, loss = -1.0f;
    int step;
    size_t i;
    for (i = 0; i < B * T; i++) {
        x[i] = (float)(i % 3) - 1.0f;
        target[i] = 0.5f * x[i];
    }
    OK(rnn_model_new(&c, 3, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    if (!m || !tr) return;
    for (step = 0; step < 50; step++) {
        OK(rnn_trainer_step_mse(tr, NULL, x, B, T, target, B * T, RNN_TARGETS_EVERY_STEP,
                                &loss));
        if (step == 0) first = loss;
    }
    CHECK(first > 0.0f && loss < 0.5f * first);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rnncore-v1-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_the_library_is_at_least_version_1);
    RUN(test_new_forward_step_save_load);
    RUN(test_a_trainer_step);
    rmdir(g_dir);
    return SUMMARY();
}
