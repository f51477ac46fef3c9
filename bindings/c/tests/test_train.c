/* Training through the C ABI: the loss falls, a refused step changes nothing (weights,
   optimizer, state, loss_out), truncated BPTT carries the state, the trainer updates the
   model it was made with. */
#include "harness.h"

#define B 4
#define T 8

/* Inputs in {0, 1}; the target at t is the input at t-1 (an echo one step late). */
static void echo_task(float *x, float *target) {
    uint32_t seed = 2024;
    size_t i;
    for (i = 0; i < B * T; i++) x[i] = h_rand(&seed) > 0.0f ? 1.0f : 0.0f;
    for (i = 0; i < B * T; i++) target[i] = (i % T == 0) ? 0.0f : x[i - 1];
}

static void loss_falls(uint32_t cell, rnn_train_config tc, const char *name) {
    rnn_config c = h_config(cell, 1, 16, 1, 1, RNN_OUTPUT_IDENTITY);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    float x[B * T], target[B * T], first = -1.0f, loss = -1.0f;
    int step;
    echo_task(x, target);
    OK(rnn_model_new(&c, 1, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    if (!m || !tr) return;
    for (step = 0; step < 100; step++) {
        OK(rnn_trainer_step_mse(tr, NULL, x, B, T, target, B * T, RNN_TARGETS_EVERY_STEP, &loss));
        if (step == 0) first = loss;
    }
    if (!(loss < 0.25f * first))
        fprintf(stderr, "  %s: loss %g -> %g\n", name, first, loss);
    CHECK(first > 0.0f);
    CHECK(loss < 0.25f * first);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

static void test_mse_loss_falls_lstm_adam(void) {
    loss_falls(RNN_CELL_LSTM, h_adam(0.03f), "lstm/adam");
}

static void test_mse_loss_falls_gru_sgd_momentum(void) {
    rnn_train_config tc = h_adam(0.0f);
    tc.optimizer = RNN_OPT_SGD;
    tc.learning_rate = 0.3f;
    tc.momentum = 0.9f;
    tc.clip_norm = 1.0f;
    loss_falls(RNN_CELL_GRU_LBR, tc, "gru_lbr/sgd");
}

static void test_mse_loss_falls_rnn_adamw(void) {
    rnn_train_config tc = h_adam(0.02f);
    tc.optimizer = RNN_OPT_ADAMW;
    tc.weight_decay = 0.01f;
    loss_falls(RNN_CELL_RNN_TANH, tc, "rnn_tanh/adamw");
}

/* Many-to-one classification: is the sum of the sequence positive? */
static void test_xent_last_step_loss_falls(void) {
    rnn_config c = h_config(RNN_CELL_GRU, 1, 12, 1, 2, RNN_OUTPUT_SOFTMAX);
    rnn_train_config tc = h_adam(0.03f);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    float x[B * T], first = -1.0f, loss = -1.0f, y[B * T * 2];
    int32_t labels[B];
    size_t b, t;
    int step, correct = 0;
    h_fill_rand(x, B * T, 8);
    for (b = 0; b < B; b++) {
        float sum = 0.0f;
        for (t = 0; t < T; t++) sum += x[b * T + t];
        labels[b] = sum > 0.0f;
    }
    OK(rnn_model_new(&c, 2, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    if (!m || !tr) return;
    for (step = 0; step < 100; step++) {
        OK(rnn_trainer_step_xent(tr, NULL, x, B, T, labels, B, RNN_TARGETS_LAST_STEP, &loss));
        if (step == 0) first = loss;
    }
    CHECK(loss < 0.5f * first);
    /* the softmax outputs at the last step now pick the right class */
    OK(rnn_model_forward(m, x, B, T, y, B * T * 2));
    for (b = 0; b < B; b++) {
        const float *p = y + (b * T + T - 1) * 2;
        correct += (p[1] > p[0]) == (labels[b] == 1);
    }
    CHECK(correct == B);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

/* Two identical models and trainers; one is also fed refused steps (NaN input, Inf
   target). Afterwards both take the same good steps: everything stays bit-identical,
   so a refused step touched neither the weights nor the optimizer state. */
static void test_refused_step_changes_nothing(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, 1, 8, 2, 1, RNN_OUTPUT_IDENTITY);
    rnn_train_config tc = h_adam(0.01f);
    rnn_model *a = NULL, *b = NULL;
    rnn_trainer *ta = NULL, *tb = NULL;
    float x[B * T], bad_x[B * T], target[B * T], bad_target[B * T];
    float la = 0.0f, lb = 0.0f, loss = 123.0f, ya[B * T], yb[B * T];
    int i;
    echo_task(x, target);
    memcpy(bad_x, x, sizeof x);
    memcpy(bad_target, target, sizeof target);
    bad_x[B * T / 2] = NAN;
    bad_target[B * T - 1] = INFINITY;
    OK(rnn_model_new(&c, 5, &a));
    OK(rnn_model_new(&c, 5, &b));
    OK(rnn_trainer_new(a, &tc, &ta));
    OK(rnn_trainer_new(b, &tc, &tb));
    if (!a || !b || !ta || !tb) return;
    for (i = 0; i < 3; i++) {
        OK(rnn_trainer_step_mse(ta, NULL, x, B, T, target, B * T, 0, &la));
        OK(rnn_trainer_step_mse(tb, NULL, x, B, T, target, B * T, 0, &lb));
        CHECK(memcmp(&la, &lb, sizeof la) == 0);
        CHECK(rnn_trainer_step_mse(tb, NULL, bad_x, B, T, target, B * T, 0, &loss) ==
              RNN_ERR_NONFINITE);
        CHECK(rnn_trainer_step_mse(tb, NULL, x, B, T, bad_target, B * T, 0, &loss) ==
              RNN_ERR_NONFINITE);
        CHECK(loss == 123.0f);
        OK(rnn_model_forward(a, x, B, T, ya, B * T));
        OK(rnn_model_forward(b, x, B, T, yb, B * T));
        CHECK(memcmp(ya, yb, sizeof ya) == 0);
    }
    rnn_trainer_free(ta);
    rnn_trainer_free(tb);
    rnn_model_free(a);
    rnn_model_free(b);
}

/* With a state, a step starts from it and leaves the final state of its forward pass
   (with the weights before the update) in it; the trainer's model changes. */
static void test_truncated_bptt_carries_the_state(void) {
    rnn_config c = h_config(RNN_CELL_GRU, 1, 6, 2, 1, RNN_OUTPUT_IDENTITY);
    rnn_train_config tc = h_adam(0.01f);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    rnn_state *s = NULL, *check = NULL;
    float x[B * T], target[B * T], loss, y[B * T], y_before[B * T], y_after[B * T];
    float s0[2 * B * 6], expected[2 * B * 6], got[2 * B * 6];
    size_t n;
    int chunk;
    echo_task(x, target);
    OK(rnn_model_new(&c, 11, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    OK(rnn_state_new(m, B, &s));
    OK(rnn_state_new_block(m, B, T, &check));
    if (!m || !tr || !s || !check) return;
    n = rnn_state_len(s);
    CHECK(n == 2 * B * 6);
    for (chunk = 0; chunk < 3; chunk++) {
        /* what the forward pass of this chunk will leave, with today's weights */
        OK(rnn_state_get(s, s0, n));
        OK(rnn_state_set(check, s0, n));
        OK(rnn_model_forward_state(m, check, x, T, y, B * T));
        OK(rnn_state_get(check, expected, n));
        OK(rnn_model_forward(m, x, B, T, y_before, B * T));
        OK(rnn_trainer_step_mse(tr, s, x, B, T, target, B * T, 0, &loss));
        OK(rnn_state_get(s, got, n));
        CHECK(h_max_abs_diff(got, expected, n) <= 1e-5f);
        CHECK(memcmp(got, s0, n * sizeof(float)) != 0);
        /* the model the trainer points at was updated */
        OK(rnn_model_forward(m, x, B, T, y_after, B * T));
        CHECK(memcmp(y_before, y_after, sizeof y_after) != 0);
    }
    /* a state with another batch is refused and left alone */
    {
        rnn_state *one = NULL;
        float before[2 * 6], after[2 * 6];
        OK(rnn_state_new(m, 1, &one));
        if (one) {
            OK(rnn_state_get(one, before, 2 * 6));
            CHECK(rnn_trainer_step_mse(tr, one, x, B, T, target, B * T, 0, &loss) ==
                  RNN_ERR_INVALID);
            OK(rnn_state_get(one, after, 2 * 6));
            CHECK(memcmp(before, after, sizeof before) == 0);
            rnn_state_free(one);
        }
    }
    rnn_state_free(s);
    rnn_state_free(check);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

/* MSE on the last step only: target is [batch][output size]. */
static void test_mse_last_step(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, 1, 8, 1, 2, RNN_OUTPUT_IDENTITY);
    rnn_train_config tc = h_adam(0.03f);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    float x[B * T], target[B * 2], first = 0.0f, loss = 0.0f;
    int step;
    h_fill_rand(x, B * T, 1);
    h_fill_rand(target, B * 2, 2);
    OK(rnn_model_new(&c, 3, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    if (!m || !tr) return;
    for (step = 0; step < 100; step++) {
        OK(rnn_trainer_step_mse(tr, NULL, x, B, T, target, B * 2, RNN_TARGETS_LAST_STEP, &loss));
        if (step == 0) first = loss;
    }
    CHECK(loss < 0.1f * first);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

int main(void) {
    RUN(test_mse_loss_falls_lstm_adam);
    RUN(test_mse_loss_falls_gru_sgd_momentum);
    RUN(test_mse_loss_falls_rnn_adamw);
    RUN(test_xent_last_step_loss_falls);
    RUN(test_refused_step_changes_nothing);
    RUN(test_truncated_bptt_carries_the_state);
    RUN(test_mse_last_step);
    return SUMMARY();
}
