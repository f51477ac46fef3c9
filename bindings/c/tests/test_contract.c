/* The contract of API.md (and ABI 2's additions), function by function: NULLs, wrong lengths, overflowing sizes,
   out-of-range enums, NaN/Inf, labels out of range, a state of another model, blocks
   longer than max_block. Each call must return its documented status, leave a message
   naming the argument in rnn_last_error(), and change nothing the caller owns: output
   buffers keep their sentinel, out-pointers their old value, states their snapshot and
   models their outputs. */
#include "harness.h"

#define SENTINEL (-777.25f)
#define IN 3
#define HID 5
#define OUT 4
#define B 2
#define T 3

static rnn_model *g_model;  /* LSTM, 2 layers, head OUT, identity */
static rnn_state *g_state;  /* B streams, max_block T, advanced a few steps */
static float g_x[B * T * IN];
static float g_fingerprint[B * T * OUT];

/* The model's outputs on a fixed input: equal before/after == weights unchanged. */
static void fingerprint(rnn_model *m, float *out) {
    OK(rnn_model_forward(m, g_x, B, T, out, B * T * OUT));
}

static int model_unchanged(rnn_model *m) {
    float now[B * T * OUT];
    fingerprint(m, now);
    return memcmp(now, g_fingerprint, sizeof now) == 0;
}

static size_t snapshot(const rnn_state *s, float *buf) {
    size_t n = rnn_state_len(s);
    OK(rnn_state_get(s, buf, n));
    return n;
}

static void setup(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, IN, HID, 2, OUT, RNN_OUTPUT_IDENTITY);
    float y[B * T * OUT];
    h_fill_rand(g_x, B * T * IN, 17);
    OK(rnn_model_new(&c, 77, &g_model));
    OK(rnn_state_new_block(g_model, B, T, &g_state));
    if (!g_model || !g_state) {
        fprintf(stderr, "setup failed: %s\n", rnn_last_error());
        exit(1);
    }
    OK(rnn_model_forward_state(g_model, g_state, g_x, T, y, B * T * OUT)); /* non-zero state */
    fingerprint(g_model, g_fingerprint);
}

static void test_last_error_is_per_call_and_never_null(void) {
    rnn_config cfg;
    CHECK(rnn_last_error() != NULL);
    FAILS(rnn_model_config(NULL, &cfg), RNN_ERR_NULL, "model");
    CHECK(strstr(rnn_last_error(), "rnn_model_config") != NULL); /* names the function */
    /* free functions and the string getters leave it alone */
    rnn_model_free(NULL);
    rnn_state_free(NULL);
    rnn_trainer_free(NULL);
    (void)rnn_version();
    (void)rnn_status_str(RNN_ERR_NULL);
    CHECK(h_names(rnn_last_error(), "model"));
    /* a successful call clears it */
    OK(rnn_model_config(g_model, &cfg));
    CHECK(strcmp(rnn_last_error(), "") == 0);
}

static void test_model_new(void) {
    rnn_config good = h_config(RNN_CELL_GRU, 2, 4, 1, 0, RNN_OUTPUT_IDENTITY), c;
    rnn_model *const untouched = (rnn_model *)&good; /* a recognisable non-NULL value */
    rnn_model *out = untouched;

    FAILS(rnn_model_new(NULL, 1, &out), RNN_ERR_NULL, "config");
    FAILS(rnn_model_new(&good, 1, NULL), RNN_ERR_NULL, "out");
    c = good; c.cell = 99;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "cell");
    c = good; c.cell = 5;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "cell");
    c = good; c.output_activation = 2;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "output_activation");
    c = good; c.output_activation = RNN_OUTPUT_SOFTMAX; /* softmax without a head */
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "output_activation");
    c = good; c.input_size = 0;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "input_size");
    c = good; c.hidden_size = 0;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "hidden_size");
    c = good; c.hidden_size = UINT32_MAX;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "hidden_size");
    c = good; c.num_layers = 0;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "num_layers");
    c = good; c.num_layers = UINT32_MAX;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "num_layers");
    c = good; c.output_size = UINT32_MAX;
    FAILS(rnn_model_new(&c, 1, &out), RNN_ERR_INVALID, "output_size");
    CHECK(out == untouched);
}

static void test_model_accessors(void) {
    rnn_config before, cfg;
    memset(&before, 0x5A, sizeof before);
    cfg = before;
    FAILS(rnn_model_config(NULL, &cfg), RNN_ERR_NULL, "model");
    FAILS(rnn_model_config(g_model, NULL), RNN_ERR_NULL, "out");
    CHECK(memcmp(&cfg, &before, sizeof cfg) == 0);
    CHECK(rnn_model_output_size(NULL) == 0);
    CHECK(h_names(rnn_last_error(), "model"));
    CHECK(rnn_model_output_size(g_model) == OUT);
    CHECK(strcmp(rnn_last_error(), "") == 0);
    CHECK(rnn_state_len(NULL) == 0);
    CHECK(h_names(rnn_last_error(), "state"));
}

static void test_model_forward(void) {
    enum { N = B * T * OUT };
    float y[N + 8], x[B * T * IN];
    const size_t big = SIZE_MAX;
    memcpy(x, g_x, sizeof x);
    h_fill(y, N + 8, SENTINEL);

    FAILS(rnn_model_forward(NULL, x, B, T, y, N), RNN_ERR_NULL, "model");
    FAILS(rnn_model_forward(g_model, NULL, B, T, y, N), RNN_ERR_NULL, "x");
    FAILS(rnn_model_forward(g_model, x, B, T, NULL, N), RNN_ERR_NULL, "y");
    FAILS(rnn_model_forward(g_model, x, 0, T, y, 0), RNN_ERR_INVALID, "batch");
    FAILS(rnn_model_forward(g_model, x, B, 0, y, 0), RNN_ERR_INVALID, "seq_len");
    FAILS(rnn_model_forward(g_model, x, B, T, y, N - 1), RNN_ERR_INVALID, "y_len");
    FAILS(rnn_model_forward(g_model, x, B, T, y, N + 1), RNN_ERR_INVALID, "y_len");
    FAILS(rnn_model_forward(g_model, x, big, T, y, N), RNN_ERR_INVALID, "batch");
    FAILS(rnn_model_forward(g_model, x, B, big, y, N), RNN_ERR_INVALID, "seq_len");
    /* overflows only once multiplied by input_size (and the float size) */
    FAILS(rnn_model_forward(g_model, x, big / 2, 1, y, N), RNN_ERR_INVALID, "batch");
    FAILS(rnn_model_forward(g_model, x, (size_t)1 << 62, 1, y, N), RNN_ERR_INVALID, "batch");
    x[B * T * IN - 1] = NAN;
    FAILS(rnn_model_forward(g_model, x, B, T, y, N), RNN_ERR_NONFINITE, "x");
    x[B * T * IN - 1] = INFINITY;
    FAILS(rnn_model_forward(g_model, x, B, T, y, N), RNN_ERR_NONFINITE, "x");
    x[0] = -INFINITY;
    FAILS(rnn_model_forward(g_model, x, B, T, y, N), RNN_ERR_NONFINITE, "x");
    CHECK(h_all_eq(y, N + 8, SENTINEL));
    {   /* x and y overlapping: refused, nothing written */
        float buf[B * T * IN + N];
        memcpy(buf, g_x, sizeof g_x);
        FAILS(rnn_model_forward(g_model, buf, B, T, buf + 1, N), RNN_ERR_INVALID, "y");
        CHECK(memcmp(buf, g_x, sizeof g_x) == 0);
    }
    CHECK(model_unchanged(g_model));
}

static void test_state_new(void) {
    rnn_state *const untouched = (rnn_state *)&g_x;
    rnn_state *out = untouched;
    FAILS(rnn_state_new(NULL, 1, &out), RNN_ERR_NULL, "model");
    FAILS(rnn_state_new(g_model, 1, NULL), RNN_ERR_NULL, "out");
    FAILS(rnn_state_new(g_model, 0, &out), RNN_ERR_INVALID, "batch");
    FAILS(rnn_state_new(g_model, SIZE_MAX, &out), RNN_ERR_INVALID, "state");
    FAILS(rnn_state_new_block(NULL, 1, 4, &out), RNN_ERR_NULL, "model");
    FAILS(rnn_state_new_block(g_model, 1, 4, NULL), RNN_ERR_NULL, "out");
    FAILS(rnn_state_new_block(g_model, 1, 0, &out), RNN_ERR_INVALID, "max_block");
    FAILS(rnn_state_new_block(g_model, 0, 4, &out), RNN_ERR_INVALID, "batch");
    FAILS(rnn_state_new_block(g_model, 1, SIZE_MAX, &out), RNN_ERR_INVALID, "block");
    /* fits in size_t, not in memory: an allocation failure, not a crash */
    FAILS(rnn_state_new(g_model, (size_t)1 << 44, &out), RNN_ERR_ALLOC, NULL);
    CHECK(out == untouched);
}

static void test_state_access(void) {
    float before[2 * 2 * B * HID], buf[2 * 2 * B * HID + 4], now[2 * 2 * B * HID];
    size_t n = snapshot(g_state, before);
    CHECK(n == 2 * 2 * B * HID);

    FAILS(rnn_state_reset(NULL), RNN_ERR_NULL, "state");
    FAILS(rnn_state_reset_stream(NULL, 0), RNN_ERR_NULL, "state");
    FAILS(rnn_state_reset_stream(g_state, B), RNN_ERR_INVALID, "stream");
    FAILS(rnn_state_reset_stream(g_state, SIZE_MAX), RNN_ERR_INVALID, "stream");

    h_fill(buf, n + 4, SENTINEL);
    FAILS(rnn_state_get(NULL, buf, n), RNN_ERR_NULL, "state");
    FAILS(rnn_state_get(g_state, NULL, n), RNN_ERR_NULL, "out");
    FAILS(rnn_state_get(g_state, buf, n - 1), RNN_ERR_INVALID, "len");
    FAILS(rnn_state_get(g_state, buf, n + 1), RNN_ERR_INVALID, "len");
    FAILS(rnn_state_get(g_state, buf, SIZE_MAX), RNN_ERR_INVALID, "len");
    CHECK(h_all_eq(buf, n + 4, SENTINEL));

    memcpy(buf, before, n * sizeof(float));
    FAILS(rnn_state_set(NULL, buf, n), RNN_ERR_NULL, "state");
    FAILS(rnn_state_set(g_state, NULL, n), RNN_ERR_NULL, "in");
    FAILS(rnn_state_set(g_state, buf, n - 1), RNN_ERR_INVALID, "len");
    FAILS(rnn_state_set(g_state, buf, SIZE_MAX), RNN_ERR_INVALID, "len");
    h_fill(buf, n, 0.5f);
    buf[n - 1] = NAN;
    FAILS(rnn_state_set(g_state, buf, n), RNN_ERR_NONFINITE, "in");
    buf[n - 1] = 0.5f;
    buf[0] = INFINITY;
    FAILS(rnn_state_set(g_state, buf, n), RNN_ERR_NONFINITE, "in");

    snapshot(g_state, now);
    CHECK(memcmp(before, now, n * sizeof(float)) == 0);
}

static void test_step_and_block(void) {
    float before[2 * 2 * B * HID], now[2 * 2 * B * HID];
    float x[B * T * IN], y[B * T * OUT + 4];
    size_t n = snapshot(g_state, before);
    memcpy(x, g_x, sizeof x);
    h_fill(y, B * T * OUT + 4, SENTINEL);

    FAILS(rnn_model_step(NULL, g_state, x, B * IN, y, B * OUT), RNN_ERR_NULL, "model");
    FAILS(rnn_model_step(g_model, NULL, x, B * IN, y, B * OUT), RNN_ERR_NULL, "state");
    FAILS(rnn_model_step(g_model, g_state, NULL, B * IN, y, B * OUT), RNN_ERR_NULL, "x");
    FAILS(rnn_model_step(g_model, g_state, x, B * IN, NULL, B * OUT), RNN_ERR_NULL, "y");
    FAILS(rnn_model_step(g_model, g_state, x, B * IN - 1, y, B * OUT), RNN_ERR_INVALID, "x_len");
    FAILS(rnn_model_step(g_model, g_state, x, SIZE_MAX, y, B * OUT), RNN_ERR_INVALID, "x_len");
    FAILS(rnn_model_step(g_model, g_state, x, B * IN, y, B * OUT + 1), RNN_ERR_INVALID, "y_len");
    FAILS(rnn_model_step(g_model, g_state, x, B * IN, y, SIZE_MAX), RNN_ERR_INVALID, "y_len");
    x[B * IN - 1] = NAN;
    FAILS(rnn_model_step(g_model, g_state, x, B * IN, y, B * OUT), RNN_ERR_NONFINITE, "x");
    x[B * IN - 1] = g_x[B * IN - 1];

    FAILS(rnn_model_forward_state(NULL, g_state, x, T, y, B * T * OUT), RNN_ERR_NULL, "model");
    FAILS(rnn_model_forward_state(g_model, NULL, x, T, y, B * T * OUT), RNN_ERR_NULL, "state");
    FAILS(rnn_model_forward_state(g_model, g_state, NULL, T, y, B * T * OUT), RNN_ERR_NULL, "x");
    FAILS(rnn_model_forward_state(g_model, g_state, x, T, NULL, B * T * OUT), RNN_ERR_NULL, "y");
    FAILS(rnn_model_forward_state(g_model, g_state, x, T + 1, y, B * (T + 1) * OUT),
          RNN_ERR_INVALID, "max_block");
    FAILS(rnn_model_forward_state(g_model, g_state, x, SIZE_MAX, y, B * T * OUT),
          RNN_ERR_INVALID, "seq_len");
    FAILS(rnn_model_forward_state(g_model, g_state, x, T, y, B * T * OUT - 1), RNN_ERR_INVALID,
          "y_len");
    /* a NaN at the very last element: refused before the first timestep runs */
    x[B * T * IN - 1] = NAN;
    FAILS(rnn_model_forward_state(g_model, g_state, x, T, y, B * T * OUT), RNN_ERR_NONFINITE, "x");
    CHECK(h_all_eq(y, B * T * OUT + 4, SENTINEL));
    snapshot(g_state, now);
    CHECK(memcmp(before, now, n * sizeof(float)) == 0);
}

/* A state made for a model of another config is refused, also when its length matches. */
static void test_state_of_another_model(void) {
    rnn_config wider = h_config(RNN_CELL_LSTM, IN, HID + 1, 2, OUT, RNN_OUTPUT_IDENTITY);
    rnn_config gru = h_config(RNN_CELL_GRU, IN, HID, 1, OUT, RNN_OUTPUT_IDENTITY);
    rnn_config lbr = h_config(RNN_CELL_GRU_LBR, IN, HID, 1, OUT, RNN_OUTPUT_IDENTITY);
    rnn_model *mw = NULL, *mg = NULL, *ml = NULL;
    rnn_state *sw = NULL, *sl = NULL;
    float x[B * IN], y[B * OUT], before[B * HID], now[B * HID];
    memcpy(x, g_x, sizeof x);
    h_fill(y, B * OUT, SENTINEL);
    OK(rnn_model_new(&wider, 1, &mw));
    OK(rnn_model_new(&gru, 1, &mg));
    OK(rnn_model_new(&lbr, 1, &ml));
    OK(rnn_state_new(mw, B, &sw));
    OK(rnn_state_new(ml, B, &sl));
    if (!mw || !mg || !ml || !sw || !sl) return;
    FAILS(rnn_model_step(g_model, sw, x, B * IN, y, B * OUT), RNN_ERR_INVALID, "state");
    FAILS(rnn_model_forward_state(g_model, sw, x, 1, y, B * OUT), RNN_ERR_INVALID, "state");
    /* GRU and GRU_LBR states have the same length: the config still tells them apart */
    OK(rnn_model_step(ml, sl, x, B * IN, y, B * OUT));
    CHECK(rnn_state_len(sl) == B * HID);
    snapshot(sl, before);
    h_fill(y, B * OUT, SENTINEL);
    FAILS(rnn_model_step(mg, sl, x, B * IN, y, B * OUT), RNN_ERR_INVALID, "state");
    CHECK(h_all_eq(y, B * OUT, SENTINEL));
    snapshot(sl, now);
    CHECK(memcmp(before, now, sizeof now) == 0);
    rnn_state_free(sw);
    rnn_state_free(sl);
    rnn_model_free(mw);
    rnn_model_free(mg);
    rnn_model_free(ml);
}

static void test_trainer_new(void) {
    rnn_train_config good = h_adam(0.01f), c;
    rnn_trainer *const untouched = (rnn_trainer *)&good;
    rnn_trainer *out = untouched;
    FAILS(rnn_trainer_new(NULL, &good, &out), RNN_ERR_NULL, "model");
    FAILS(rnn_trainer_new(g_model, NULL, &out), RNN_ERR_NULL, "config");
    FAILS(rnn_trainer_new(g_model, &good, NULL), RNN_ERR_NULL, "out");
    c = good; c.optimizer = 7;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "optimizer");
    c = good; c.learning_rate = NAN;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "learning_rate");
    c = good; c.learning_rate = -1.0f;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "learning_rate");
    c = good; c.beta1 = 1.0f;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "beta1");
    c = good; c.beta2 = INFINITY;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "beta2");
    c = good; c.eps = 0.0f;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "eps");
    c = good; c.weight_decay = -0.1f;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "weight_decay");
    c = good; c.clip_norm = NAN;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "clip_norm");
    c = good; c.optimizer = RNN_OPT_SGD; c.momentum = 1.0f;
    FAILS(rnn_trainer_new(g_model, &c, &out), RNN_ERR_INVALID, "momentum");
    CHECK(out == untouched);
}

static void test_trainer_steps(void) {
    rnn_train_config tc = h_adam(0.05f);
    rnn_trainer *tr = NULL;
    rnn_state *other = NULL, *narrow = NULL;
    rnn_model *mo = NULL;
    rnn_config oc = h_config(RNN_CELL_GRU, IN, HID, 2, OUT, RNN_OUTPUT_IDENTITY);
    float x[B * T * IN], target[B * T * OUT], loss = SENTINEL;
    float before[2 * 2 * B * HID], now[2 * 2 * B * HID];
    int32_t labels[B * T] = {0, 1, 2, 3, 0, 1};
    int32_t bad[B * T];
    const size_t NT = B * T * OUT, NL = B * T;
    size_t n;
    memcpy(x, g_x, sizeof x);
    h_fill_rand(target, NT, 4);
    OK(rnn_trainer_new(g_model, &tc, &tr));
    OK(rnn_model_new(&oc, 1, &mo));
    OK(rnn_state_new(mo, B, &other));
    OK(rnn_state_new(g_model, 1, &narrow));
    if (!tr || !mo || !other || !narrow) return;
    n = snapshot(g_state, before);

    FAILS(rnn_trainer_step_mse(NULL, NULL, x, B, T, target, NT, 0, &loss), RNN_ERR_NULL, "trainer");
    FAILS(rnn_trainer_step_mse(tr, NULL, NULL, B, T, target, NT, 0, &loss), RNN_ERR_NULL, "x");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, T, NULL, NT, 0, &loss), RNN_ERR_NULL, "target");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, T, target, NT, 0, NULL), RNN_ERR_NULL, "loss_out");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, T, target, NT, 5, &loss), RNN_ERR_INVALID, "targets");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, T, target, NT - 1, 0, &loss), RNN_ERR_INVALID,
          "target_len");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, T, target, NT, RNN_TARGETS_LAST_STEP, &loss),
          RNN_ERR_INVALID, "target_len");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, 0, T, target, 0, 0, &loss), RNN_ERR_INVALID, "batch");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, 0, target, 0, 0, &loss), RNN_ERR_INVALID, "seq_len");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, SIZE_MAX, T, target, NT, 0, &loss), RNN_ERR_INVALID,
          "batch");
    FAILS(rnn_trainer_step_mse(tr, NULL, x, B, SIZE_MAX, target, NT, 1, &loss), RNN_ERR_INVALID,
          "seq_len");
    FAILS(rnn_trainer_step_mse(tr, other, x, B, T, target, NT, 0, &loss), RNN_ERR_INVALID, "state");
    FAILS(rnn_trainer_step_mse(tr, narrow, x, B, T, target, NT, 0, &loss), RNN_ERR_INVALID, "batch");
    x[5] = NAN;
    FAILS(rnn_trainer_step_mse(tr, g_state, x, B, T, target, NT, 0, &loss), RNN_ERR_NONFINITE, "x");
    x[5] = g_x[5];
    target[NT - 1] = INFINITY;
    FAILS(rnn_trainer_step_mse(tr, g_state, x, B, T, target, NT, 0, &loss), RNN_ERR_NONFINITE,
          "target");
    target[NT - 1] = NAN;
    FAILS(rnn_trainer_step_mse(tr, g_state, x, B, T, target, NT, 0, &loss), RNN_ERR_NONFINITE,
          "target");
    target[NT - 1] = 0.0f;

    FAILS(rnn_trainer_step_xent(NULL, NULL, x, B, T, labels, NL, 0, &loss), RNN_ERR_NULL, "trainer");
    FAILS(rnn_trainer_step_xent(tr, NULL, NULL, B, T, labels, NL, 0, &loss), RNN_ERR_NULL, "x");
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, NULL, NL, 0, &loss), RNN_ERR_NULL, "labels");
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, labels, NL, 0, NULL), RNN_ERR_NULL, "loss_out");
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, labels, NL, 5, &loss), RNN_ERR_INVALID, "targets");
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, labels, NL + 1, 0, &loss), RNN_ERR_INVALID,
          "labels_len");
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, labels, NL, 1, &loss), RNN_ERR_INVALID,
          "labels_len");
    memcpy(bad, labels, sizeof bad);
    bad[3] = OUT; /* one past the last class */
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, bad, NL, 0, &loss), RNN_ERR_INVALID, "labels");
    bad[3] = -2;
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, bad, NL, 0, &loss), RNN_ERR_INVALID, "labels");
    memset(bad, 0xFF, sizeof bad); /* every label -1: the mean is undefined */
    FAILS(rnn_trainer_step_xent(tr, NULL, x, B, T, bad, NL, 0, &loss), RNN_ERR_INVALID, "label");
    FAILS(rnn_trainer_step_xent(tr, other, x, B, T, labels, NL, 0, &loss), RNN_ERR_INVALID, "state");
    x[0] = INFINITY;
    FAILS(rnn_trainer_step_xent(tr, g_state, x, B, T, labels, NL, 0, &loss), RNN_ERR_NONFINITE, "x");

    CHECK(loss == SENTINEL);
    snapshot(g_state, now);
    CHECK(memcmp(before, now, n * sizeof(float)) == 0);
    CHECK(model_unchanged(g_model));
    rnn_trainer_free(tr);
    rnn_state_free(other);
    rnn_state_free(narrow);
    rnn_model_free(mo);
}

static void test_load_save_arguments(void) {
    rnn_model *const untouched = (rnn_model *)&g_x;
    rnn_model *out = untouched;
    FAILS(rnn_model_load(NULL, &out), RNN_ERR_NULL, "path");
    FAILS(rnn_model_load("/nonexistent/model.safetensors", NULL), RNN_ERR_NULL, "out");
    FAILS(rnn_model_save(NULL, "/tmp/never-written.safetensors"), RNN_ERR_NULL, "model");
    FAILS(rnn_model_save(g_model, NULL), RNN_ERR_NULL, "path");
    CHECK(out == untouched);
}

static void test_threads_setting(void) {
    size_t before = rnn_get_num_threads();
    FAILS(rnn_set_num_threads(5000), RNN_ERR_INVALID, "n");
    FAILS(rnn_set_num_threads(SIZE_MAX), RNN_ERR_INVALID, "n");
    CHECK(rnn_get_num_threads() == before);
}

/* ABI 2's lengths variants: the same contract as their siblings, plus `lengths`. */
static void test_lengths_functions(void) {
    enum { N = B * T * OUT };
    uint32_t ls[B] = {T, 1}, bad0[B] = {T, 0}, big[B] = {T, T + 1};
    float y[N + 8], x[B * T * IN], before[2 * 2 * B * HID], now[2 * 2 * B * HID];
    float target[B * T * OUT], loss = SENTINEL;
    int32_t labels[B * T] = {0, 1, 2, 3, 0, 1};
    rnn_train_config tc = h_adam(0.05f);
    rnn_trainer *tr = NULL;
    size_t n;
    memcpy(x, g_x, sizeof x);
    h_fill(y, N + 8, SENTINEL);
    h_fill_rand(target, N, 4);

    FAILS(rnn_model_forward_lengths(NULL, x, B, T, ls, B, y, N), RNN_ERR_NULL, "model");
    FAILS(rnn_model_forward_lengths(g_model, NULL, B, T, ls, B, y, N), RNN_ERR_NULL, "x");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, NULL, B, y, N), RNN_ERR_NULL, "lengths");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, ls, B, NULL, N), RNN_ERR_NULL, "y");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, ls, B - 1, y, N), RNN_ERR_INVALID, "lengths");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, bad0, B, y, N), RNN_ERR_INVALID, "lengths");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, big, B, y, N), RNN_ERR_INVALID, "lengths");
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, ls, B, y, N - 1), RNN_ERR_INVALID, "y_len");
    FAILS(rnn_model_forward_lengths(g_model, x, SIZE_MAX, T, ls, B, y, N), RNN_ERR_INVALID, "batch");
    FAILS(rnn_model_forward_lengths(g_model, x, B, 0, ls, B, y, 0), RNN_ERR_INVALID, "seq_len");
    x[0] = NAN;
    FAILS(rnn_model_forward_lengths(g_model, x, B, T, ls, B, y, N), RNN_ERR_NONFINITE, "x");
    x[0] = g_x[0];
    CHECK(h_all_eq(y, N + 8, SENTINEL));

    n = snapshot(g_state, before);
    FAILS(rnn_model_forward_state_lengths(NULL, g_state, x, T, ls, B, y, N), RNN_ERR_NULL, "model");
    FAILS(rnn_model_forward_state_lengths(g_model, NULL, x, T, ls, B, y, N), RNN_ERR_NULL, "state");
    FAILS(rnn_model_forward_state_lengths(g_model, g_state, x, T, NULL, B, y, N), RNN_ERR_NULL,
          "lengths");
    FAILS(rnn_model_forward_state_lengths(g_model, g_state, x, T, ls, B + 1, y, N),
          RNN_ERR_INVALID, "lengths");
    FAILS(rnn_model_forward_state_lengths(g_model, g_state, x, T, big, B, y, N), RNN_ERR_INVALID,
          "lengths");
    FAILS(rnn_model_forward_state_lengths(g_model, g_state, x, T, ls, B, y, N + 1),
          RNN_ERR_INVALID, "y_len");
    x[1] = INFINITY;
    FAILS(rnn_model_forward_state_lengths(g_model, g_state, x, T, ls, B, y, N), RNN_ERR_NONFINITE,
          "x");
    x[1] = g_x[1];
    CHECK(h_all_eq(y, N + 8, SENTINEL));
    CHECK(snapshot(g_state, now) == n && memcmp(before, now, n * sizeof(float)) == 0);

    OK(rnn_trainer_new(g_model, &tc, &tr));
    if (!tr) return;
    FAILS(rnn_trainer_step_mse_lengths(NULL, NULL, x, B, T, ls, B, target, N, 0, &loss),
          RNN_ERR_NULL, "trainer");
    FAILS(rnn_trainer_step_mse_lengths(tr, NULL, x, B, T, NULL, B, target, N, 0, &loss),
          RNN_ERR_NULL, "lengths");
    FAILS(rnn_trainer_step_mse_lengths(tr, NULL, x, B, T, bad0, B, target, N, 0, &loss),
          RNN_ERR_INVALID, "lengths");
    FAILS(rnn_trainer_step_mse_lengths(tr, NULL, x, B, T, ls, 1, target, N, 0, &loss),
          RNN_ERR_INVALID, "lengths");
    FAILS(rnn_trainer_step_mse_lengths(tr, NULL, x, B, T, ls, B, target, N - 1, 0, &loss),
          RNN_ERR_INVALID, "target_len");
    target[0] = NAN;
    FAILS(rnn_trainer_step_mse_lengths(tr, NULL, x, B, T, ls, B, target, N, 0, &loss),
          RNN_ERR_NONFINITE, "target");
    FAILS(rnn_trainer_step_xent_lengths(NULL, NULL, x, B, T, ls, B, labels, B * T, 0, &loss),
          RNN_ERR_NULL, "trainer");
    FAILS(rnn_trainer_step_xent_lengths(tr, NULL, x, B, T, big, B, labels, B * T, 0, &loss),
          RNN_ERR_INVALID, "lengths");
    labels[0] = OUT;
    FAILS(rnn_trainer_step_xent_lengths(tr, NULL, x, B, T, ls, B, labels, B * T, 0, &loss),
          RNN_ERR_INVALID, "labels");
    FAILS(rnn_trainer_set_dropout_seed(NULL, 3), RNN_ERR_NULL, "trainer");
    CHECK(loss == SENTINEL);
    CHECK(model_unchanged(g_model));
    rnn_trainer_free(tr);
}

/* ABI 2's model description: NULLs and a garbage struct_size, nothing written. */
static void test_desc_functions(void) {
    rnn_model_desc d;
    rnn_model *const untouched = (rnn_model *)&d;
    rnn_model *out = untouched;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.cell = RNN_CELL_LSTM;
    d.input_size = IN;
    d.hidden_size = HID;
    d.num_layers = 1;
    FAILS(rnn_model_new_desc(NULL, 1, &out), RNN_ERR_NULL, "desc");
    FAILS(rnn_model_new_desc(&d, 1, NULL), RNN_ERR_NULL, "out");
    d.struct_size = 0xFFFFFFFFu;
    FAILS(rnn_model_new_desc(&d, 1, &out), RNN_ERR_INVALID, "struct_size");
    d.struct_size = 4;
    FAILS(rnn_model_new_desc(&d, 1, &out), RNN_ERR_INVALID, "struct_size");
    CHECK(out == untouched);
    FAILS(rnn_model_describe(NULL, &d), RNN_ERR_NULL, "model");
    FAILS(rnn_model_describe(g_model, NULL), RNN_ERR_NULL, "desc");
    d.struct_size = 4;
    FAILS(rnn_model_describe(g_model, &d), RNN_ERR_INVALID, "struct_size");
    CHECK(d.struct_size == 4 && d.cell == RNN_CELL_LSTM && d.input_size == IN);
}

int main(void) {
    setup();
    RUN(test_last_error_is_per_call_and_never_null);
    RUN(test_model_new);
    RUN(test_model_accessors);
    RUN(test_model_forward);
    RUN(test_state_new);
    RUN(test_state_access);
    RUN(test_step_and_block);
    RUN(test_state_of_another_model);
    RUN(test_trainer_new);
    RUN(test_trainer_steps);
    RUN(test_load_save_arguments);
    RUN(test_threads_setting);
    RUN(test_lengths_functions);
    RUN(test_desc_functions);
    rnn_state_free(g_state);
    rnn_model_free(g_model);
    return SUMMARY();
}
