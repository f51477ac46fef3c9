/* Inference through the C ABI: shapes, whole-sequence forward against stepping, blocks
   against whole sequences, state snapshots, determinism, threads setting. */
#include "harness.h"

#define B 3
#define T 7
#define IN 4
#define HID 6
#define LAYERS 2

static const char *cell_name(uint32_t c) {
    static const char *names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_lbr"};
    return c < 5 ? names[c] : "?";
}

/* The heads every test runs with: none, identity (O = 3), softmax (O = 5). */
static const uint32_t head_sizes[3] = {0, 3, 5};
static const uint32_t head_acts[3] = {RNN_OUTPUT_IDENTITY, RNN_OUTPUT_IDENTITY,
                                      RNN_OUTPUT_SOFTMAX};

/* x[b][t][:] of a [B][T][IN] buffer gathered into a [B][IN] step input. */
static void gather_step(const float *x, size_t t, float *xt) {
    size_t b;
    for (b = 0; b < B; b++) memcpy(xt + b * IN, x + (b * T + t) * IN, IN * sizeof(float));
}

static void test_version_and_status_strings(void) {
    const char *v = rnn_version();
    unsigned major, minor, patch;
    char extra;
    int i, j;
    CHECK(v != NULL);
    CHECK(sscanf(v, "%u.%u.%u%c", &major, &minor, &patch, &extra) == 3);
    CHECK(rnn_abi_version() == RNN_ABI_VERSION);
    {
        const char *k = rnn_kernel_name();
        const char *forced = getenv("RNNCORE_KERNEL");
        CHECK(k != NULL);
        CHECK(strcmp(k, "avx512") == 0 || strcmp(k, "avx2") == 0 || strcmp(k, "avx") == 0 ||
              strcmp(k, "sse41") == 0 || strcmp(k, "neon") == 0 || strcmp(k, "scalar") == 0);
        if (forced != NULL && strcmp(forced, "scalar") == 0)
            CHECK(strcmp(k, "scalar") == 0);
    }
    for (i = 0; i <= 8; i++) {
        CHECK(rnn_status_str((rnn_status)i) != NULL);
        for (j = 0; j < i; j++)
            CHECK(strcmp(rnn_status_str((rnn_status)i), rnn_status_str((rnn_status)j)) != 0);
    }
    CHECK(strcmp(rnn_status_str((rnn_status)12345), rnn_status_str((rnn_status)8)) == 0);
    CHECK(rnn_last_error() != NULL);
}

static void test_config_and_output_size(void) {
    uint32_t cell, h;
    for (cell = 0; cell < 5; cell++)
        for (h = 0; h < 3; h++) {
            rnn_config c = h_config(cell, IN, HID, LAYERS, head_sizes[h], head_acts[h]);
            rnn_config back;
            rnn_model *m = NULL;
            OK(rnn_model_new(&c, 1, &m));
            if (!m) continue;
            CHECK(strcmp(rnn_last_error(), "") == 0);
            memset(&back, 0xAB, sizeof back);
            OK(rnn_model_config(m, &back));
            CHECK(memcmp(&c, &back, sizeof c) == 0);
            CHECK(rnn_model_output_size(m) == (head_sizes[h] ? head_sizes[h] : HID));
            rnn_model_free(m);
        }
}

/* rnn_model_forward equals stepping every stream T times, for every cell and head. */
static void test_forward_matches_stepping(void) {
    uint32_t cell, h;
    float x[B * T * IN], xt[B * IN];
    h_fill_rand(x, B * T * IN, 7);
    for (cell = 0; cell < 5; cell++)
        for (h = 0; h < 3; h++) {
            rnn_config c = h_config(cell, IN, HID, LAYERS, head_sizes[h], head_acts[h]);
            rnn_model *m = NULL;
            rnn_state *s = NULL;
            size_t o, t, b;
            float *y, *ys, *yt;
            float diff;
            OK(rnn_model_new(&c, 42 + cell, &m));
            OK(rnn_state_new(m, B, &s));
            if (!m || !s) continue;
            o = rnn_model_output_size(m);
            y = h_xmalloc(B * T * o * sizeof(float));
            ys = h_xmalloc(B * T * o * sizeof(float));
            yt = h_xmalloc(B * o * sizeof(float));
            h_fill(y, B * T * o, NAN);
            h_fill(ys, B * T * o, NAN);
            OK(rnn_model_forward(m, x, B, T, y, B * T * o));
            for (t = 0; t < T; t++) {
                gather_step(x, t, xt);
                h_fill(yt, B * o, NAN);
                OK(rnn_model_step(m, s, xt, B * IN, yt, B * o));
                for (b = 0; b < B; b++)
                    memcpy(ys + (b * T + t) * o, yt + b * o, o * sizeof(float));
            }
            diff = h_max_abs_diff(y, ys, B * T * o);
            if (!(diff <= 1e-5f))
                fprintf(stderr, "  %s head %u: forward vs step differ by %g\n",
                        cell_name(cell), (unsigned)h, diff);
            CHECK(diff <= 1e-5f);
            if (head_acts[h] == RNN_OUTPUT_SOFTMAX) { /* each timestep sums to 1 */
                size_t r, q;
                for (r = 0; r < B * T; r++) {
                    float sum = 0.0f;
                    for (q = 0; q < o; q++) {
                        CHECK(y[r * o + q] > 0.0f && y[r * o + q] < 1.0f);
                        sum += y[r * o + q];
                    }
                    CHECK(fabsf(sum - 1.0f) < 1e-5f);
                }
            }
            free(y);
            free(ys);
            free(yt);
            rnn_state_free(s);
            rnn_model_free(m);
        }
}

/* rnn_model_forward_state in chunks (4 + 3) equals one block of 7 and rnn_model_forward. */
static void test_blocks_match_whole(void) {
    uint32_t cell;
    float x[B * T * IN];
    h_fill_rand(x, B * T * IN, 11);
    for (cell = 0; cell < 5; cell++) {
        rnn_config c = h_config(cell, IN, HID, LAYERS, 2, RNN_OUTPUT_IDENTITY);
        rnn_model *m = NULL;
        rnn_state *whole = NULL, *chunked = NULL;
        float y[B * T * 2], yw[B * T * 2], yc[B * T * 2];
        float x1[B * 4 * IN], x2[B * 3 * IN], y1[B * 4 * 2], y2[B * 3 * 2];
        float sw[2 * LAYERS * B * HID], sc[2 * LAYERS * B * HID];
        size_t b, n;
        OK(rnn_model_new(&c, 5, &m));
        OK(rnn_state_new_block(m, B, T, &whole));
        OK(rnn_state_new_block(m, B, 4, &chunked));
        if (!m || !whole || !chunked) continue;
        OK(rnn_model_forward(m, x, B, T, y, sizeof y / sizeof *y));
        h_fill(yw, B * T * 2, NAN);
        OK(rnn_model_forward_state(m, whole, x, T, yw, B * T * 2));
        /* split every stream's sequence into timesteps 0..3 and 4..6 */
        for (b = 0; b < B; b++) {
            memcpy(x1 + b * 4 * IN, x + b * T * IN, 4 * IN * sizeof(float));
            memcpy(x2 + b * 3 * IN, x + (b * T + 4) * IN, 3 * IN * sizeof(float));
        }
        OK(rnn_model_forward_state(m, chunked, x1, 4, y1, B * 4 * 2));
        OK(rnn_model_forward_state(m, chunked, x2, 3, y2, B * 3 * 2));
        for (b = 0; b < B; b++) {
            memcpy(yc + b * T * 2, y1 + b * 4 * 2, 4 * 2 * sizeof(float));
            memcpy(yc + (b * T + 4) * 2, y2 + b * 3 * 2, 3 * 2 * sizeof(float));
        }
        CHECK(h_max_abs_diff(y, yw, B * T * 2) <= 1e-5f);
        CHECK(h_max_abs_diff(yw, yc, B * T * 2) <= 1e-5f);
        n = rnn_state_len(whole);
        CHECK(n == rnn_state_len(chunked));
        CHECK(n == (cell == RNN_CELL_LSTM ? 2u : 1u) * LAYERS * B * HID);
        OK(rnn_state_get(whole, sw, n));
        OK(rnn_state_get(chunked, sc, n));
        CHECK(h_max_abs_diff(sw, sc, n) <= 1e-5f);
        /* seq_len 0 is allowed and changes nothing */
        OK(rnn_model_forward_state(m, chunked, x1, 0, y1, 0));
        OK(rnn_state_get(chunked, sw, n));
        CHECK(memcmp(sw, sc, n * sizeof(float)) == 0);
        rnn_state_free(whole);
        rnn_state_free(chunked);
        rnn_model_free(m);
    }
}

/* Snapshot layout: h as [L][B][H]; without a head the top layer's h is the output. */
static void test_state_layout_and_reset_stream(void) {
    uint32_t cell;
    float x[B * IN], y[B * HID];
    h_fill_rand(x, B * IN, 3);
    for (cell = 0; cell < 5; cell++) {
        rnn_config c = h_config(cell, IN, HID, LAYERS, 0, RNN_OUTPUT_IDENTITY);
        rnn_model *m = NULL;
        rnn_state *s = NULL, *fresh = NULL;
        float snap[2 * LAYERS * B * HID], again[2 * LAYERS * B * HID];
        float yf[B * HID];
        size_t n, b, k, planes, i;
        OK(rnn_model_new(&c, 9, &m));
        OK(rnn_state_new(m, B, &s));
        OK(rnn_state_new(m, B, &fresh));
        if (!m || !s || !fresh) continue;
        n = rnn_state_len(s);
        planes = n / (B * HID);
        OK(rnn_model_step(m, s, x, B * IN, y, B * HID));
        OK(rnn_model_step(m, s, x, B * IN, y, B * HID));
        OK(rnn_state_get(s, snap, n));
        for (b = 0; b < B; b++) /* top layer h of stream b == y[b] */
            CHECK(memcmp(snap + ((LAYERS - 1) * B + b) * HID, y + b * HID,
                         HID * sizeof(float)) == 0);
        OK(rnn_state_reset_stream(s, 1));
        OK(rnn_state_get(s, again, n));
        for (k = 0; k < planes; k++)
            for (b = 0; b < B; b++)
                for (i = 0; i < HID; i++) {
                    size_t at = (k * B + b) * HID + i;
                    if (b == 1)
                        CHECK(again[at] == 0.0f);
                    else
                        CHECK(again[at] == snap[at]);
                }
        /* stream 1 now runs as from a fresh state */
        OK(rnn_model_step(m, s, x, B * IN, y, B * HID));
        OK(rnn_model_step(m, fresh, x, B * IN, yf, B * HID));
        CHECK(memcmp(y + HID, yf + HID, HID * sizeof(float)) == 0);
        CHECK(memcmp(y, yf, HID * sizeof(float)) != 0);
        /* set/get round trip, then reset */
        OK(rnn_state_set(fresh, snap, n));
        OK(rnn_state_get(fresh, again, n));
        CHECK(memcmp(snap, again, n * sizeof(float)) == 0);
        OK(rnn_state_reset(fresh));
        OK(rnn_state_get(fresh, again, n));
        CHECK(h_all_eq(again, n, 0.0f));
        rnn_state_free(s);
        rnn_state_free(fresh);
        rnn_model_free(m);
    }
}

/* The same seed gives bit-identical models; another seed gives another model. */
static void test_seed_determinism(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, IN, HID, LAYERS, 3, RNN_OUTPUT_IDENTITY);
    rnn_model *a = NULL, *b = NULL, *other = NULL;
    float x[B * T * IN], ya[B * T * 3], yb[B * T * 3], yo[B * T * 3];
    h_fill_rand(x, B * T * IN, 5);
    OK(rnn_model_new(&c, 1234, &a));
    OK(rnn_model_new(&c, 1234, &b));
    OK(rnn_model_new(&c, 1235, &other));
    if (!a || !b || !other) return;
    OK(rnn_model_forward(a, x, B, T, ya, B * T * 3));
    OK(rnn_model_forward(b, x, B, T, yb, B * T * 3));
    OK(rnn_model_forward(other, x, B, T, yo, B * T * 3));
    CHECK(memcmp(ya, yb, sizeof ya) == 0);
    CHECK(memcmp(ya, yo, sizeof ya) != 0);
    /* and twice on one model */
    OK(rnn_model_forward(a, x, B, T, yb, B * T * 3));
    CHECK(memcmp(ya, yb, sizeof ya) == 0);
    rnn_model_free(a);
    rnn_model_free(b);
    rnn_model_free(other);
}

/* Batched forward gives bit-identical results on 1 and 4 threads (batch 40: 4 chunks). */
static void test_thread_count_is_invisible(void) {
    enum { BB = 40, TT = 5 };
    rnn_config c = h_config(RNN_CELL_GRU_LBR, IN, 16, 2, 3, RNN_OUTPUT_SOFTMAX);
    rnn_model *m = NULL;
    float *x = h_xmalloc(BB * TT * IN * sizeof(float));
    float *y1 = h_xmalloc(BB * TT * 3 * sizeof(float));
    float *y4 = h_xmalloc(BB * TT * 3 * sizeof(float));
    h_fill_rand(x, BB * TT * IN, 99);
    OK(rnn_model_new(&c, 3, &m));
    OK(rnn_set_num_threads(1));
    CHECK(rnn_get_num_threads() == 1);
    OK(rnn_model_forward(m, x, BB, TT, y1, BB * TT * 3));
    OK(rnn_set_num_threads(4));
    CHECK(rnn_get_num_threads() == 4);
    OK(rnn_model_forward(m, x, BB, TT, y4, BB * TT * 3));
    CHECK(memcmp(y1, y4, BB * TT * 3 * sizeof(float)) == 0);
    OK(rnn_set_num_threads(0));
    CHECK(rnn_get_num_threads() >= 1);
    rnn_model_free(m);
    free(x);
    free(y1);
    free(y4);
}

int main(void) {
    RUN(test_version_and_status_strings);
    RUN(test_config_and_output_size);
    RUN(test_forward_matches_stepping);
    RUN(test_blocks_match_whole);
    RUN(test_state_layout_and_reset_stream);
    RUN(test_seed_determinism);
    RUN(test_thread_count_is_invisible);
    return SUMMARY();
}
