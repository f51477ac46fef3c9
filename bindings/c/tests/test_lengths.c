/* Variable lengths in a batch (ABI version 2): rnn_model_forward_lengths,
   rnn_model_forward_state_lengths and the two trainer steps with lengths. Full lengths give
   the bits of the non-lengths functions; a padded batch's rows are its sequences run
   alone at their lengths (outputs, zeros after, final states); the losses count valid
   steps only; every bad lengths argument is refused with nothing written; bidirectional
   models from rnn_model_new_desc. */
#include "harness.h"

#define B 3
#define T 6
#define I 2
#define H 5
#define O 3
#define CAP (B * T * 16)

static const uint32_t FULL[B] = {T, T, T};
static const uint32_t SHORT[B] = {T, 2, 4};

static rnn_model *new_model(uint32_t cell, uint32_t layers, uint32_t out, uint32_t act,
                            uint64_t seed) {
    rnn_config c = h_config(cell, I, H, layers, out, act);
    rnn_model *m = NULL;
    OK(rnn_model_new(&c, seed, &m));
    return m;
}

static rnn_model *new_bidir(uint32_t cell, uint32_t layers, uint32_t out, uint64_t seed) {
    rnn_model_desc d;
    rnn_model *m = NULL;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.cell = cell;
    d.input_size = I;
    d.hidden_size = H;
    d.num_layers = layers;
    d.output_size = out;
    d.bidirectional = 1;
    OK(rnn_model_new_desc(&d, seed, &m));
    return m;
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* The model's outputs on fixed inputs: equal weights give equal bits. */
static void fingerprint(const rnn_model *m, float *y) {
    float x[B * T * I];
    h_fill_rand(x, B * T * I, 99);
    OK(rnn_model_forward(m, x, B, T, y, B * T * rnn_model_output_size(m)));
}

/* Forward with lengths against forward, and each row against its sequence alone. */
static void check_forward(const rnn_model *m, const char *what) {
    size_t o = rnn_model_output_size(m), b, t;
    float x[B * T * I], y[CAP], yl[CAP], alone[CAP];
    CHECK(B * T * o <= CAP);
    h_fill_rand(x, B * T * I, 7);
    h_fill(y, CAP, NAN);
    h_fill(yl, CAP, NAN);
    OK(rnn_model_forward(m, x, B, T, y, B * T * o));
    OK(rnn_model_forward_lengths(m, x, B, T, FULL, B, yl, B * T * o));
    if (!same_bits(y, yl, B * T * o)) fprintf(stderr, "  %s: full lengths differ\n", what);
    CHECK(same_bits(y, yl, B * T * o));

    h_fill(yl, CAP, NAN);
    OK(rnn_model_forward_lengths(m, x, B, T, SHORT, B, yl, B * T * o));
    for (b = 0; b < B; b++) {
        size_t n = SHORT[b];
        const float *row = yl + b * T * o;
        h_fill(alone, CAP, NAN);
        OK(rnn_model_forward(m, x + b * T * I, 1, n, alone, n * o));
        if (!(h_max_abs_diff(row, alone, n * o) < 1e-5f))
            fprintf(stderr, "  %s: row %u differs by %g\n", what, (unsigned)b,
                    (double)h_max_abs_diff(row, alone, n * o));
        CHECK(h_max_abs_diff(row, alone, n * o) < 1e-5f);
        for (t = n * o; t < T * o; t++) CHECK(row[t] == 0.0f);
    }
    /* The padding's values do not matter. */
    {
        float x2[B * T * I], y2[CAP];
        memcpy(x2, x, sizeof x);
        for (t = 2 * I; t < T * I; t++) x2[1 * T * I + t] = 3.5f;
        OK(rnn_model_forward_lengths(m, x2, B, T, SHORT, B, y2, B * T * o));
        CHECK(same_bits(y2, yl, B * T * o));
    }
}

static void test_forward_lengths(void) {
    rnn_model *m;
    m = new_model(RNN_CELL_LSTM, 2, O, RNN_OUTPUT_IDENTITY, 1);
    if (m) check_forward(m, "lstm 2 layers, head");
    rnn_model_free(m);
    m = new_model(RNN_CELL_GRU_LBR, 1, 0, RNN_OUTPUT_IDENTITY, 2);
    if (m) check_forward(m, "gru_lbr, no head");
    rnn_model_free(m);
    m = new_model(RNN_CELL_GRU, 2, O, RNN_OUTPUT_SOFTMAX, 3);
    if (m) check_forward(m, "gru softmax");
    rnn_model_free(m);
}

static void test_forward_lengths_bidirectional(void) {
    rnn_model *m = new_bidir(RNN_CELL_LSTM, 2, O, 4);
    if (m) {
        CHECK(rnn_model_output_size(m) == O);
        check_forward(m, "bidirectional lstm, head");
    }
    rnn_model_free(m);
    m = new_bidir(RNN_CELL_GRU_LBR, 1, 0, 5);
    if (m) {
        CHECK(rnn_model_output_size(m) == 2 * H);
        check_forward(m, "bidirectional gru_lbr");
    }
    rnn_model_free(m);
}

/* Stream `b` of a snapshot of B streams, as a one-stream snapshot. */
static size_t stream_of(const float *s, size_t len, size_t b, float *out) {
    size_t planes = len / (B * H), p;
    for (p = 0; p < planes; p++) memcpy(out + p * H, s + (p * B + b) * H, H * sizeof *s);
    return planes * H;
}

static void check_forward_state(uint32_t cell, uint32_t out) {
    rnn_model *m = new_model(cell, 2, out, RNN_OUTPUT_IDENTITY, 11);
    rnn_state *a = NULL, *s = NULL, *one = NULL;
    float warm[B * 2 * I], x[B * T * I], y[CAP], yl[CAP], y1[CAP];
    float sa[B * 4 * H], sl[B * 4 * H], s1[4 * H], mine[4 * H];
    size_t o, len, b;
    if (!m) return;
    o = rnn_model_output_size(m);
    h_fill_rand(warm, B * 2 * I, 1);
    h_fill_rand(x, B * T * I, 2);
    OK(rnn_state_new_block(m, B, T, &a));
    OK(rnn_state_new_block(m, B, T, &s));
    OK(rnn_state_new_block(m, 1, T, &one));
    if (!a || !s || !one) goto done;
    len = rnn_state_len(a);
    OK(rnn_model_forward_state(m, a, warm, 2, y, B * 2 * o));
    OK(rnn_state_get(a, sa, len));
    OK(rnn_state_set(s, sa, len));

    /* Full lengths: rnn_model_forward_state, bit for bit, state included. */
    h_fill(y, CAP, NAN);
    h_fill(yl, CAP, NAN);
    OK(rnn_model_forward_state(m, a, x, T, y, B * T * o));
    OK(rnn_model_forward_state_lengths(m, s, x, T, FULL, B, yl, B * T * o));
    CHECK(same_bits(y, yl, B * T * o));
    OK(rnn_state_get(a, sa, len));
    OK(rnn_state_get(s, sl, len));
    CHECK(same_bits(sa, sl, len));

    /* Short streams: each equals running it alone for its length, from its own state. */
    h_fill(yl, CAP, NAN);
    OK(rnn_model_forward_state_lengths(m, s, x, T, SHORT, B, yl, B * T * o));
    OK(rnn_state_get(s, sl, len));
    for (b = 0; b < B; b++) {
        size_t n = SHORT[b], t, one_len = stream_of(sa, len, b, mine);
        CHECK(one_len == rnn_state_len(one));
        OK(rnn_state_set(one, mine, one_len));
        OK(rnn_model_forward_state(m, one, x + b * T * I, n, y1, n * o));
        CHECK(h_max_abs_diff(yl + b * T * o, y1, n * o) < 1e-5f);
        for (t = n * o; t < T * o; t++) CHECK(yl[b * T * o + t] == 0.0f);
        OK(rnn_state_get(one, s1, one_len));
        stream_of(sl, len, b, mine);
        CHECK(h_max_abs_diff(mine, s1, one_len) < 1e-5f);
    }
    /* Blocks longer than max_block are fine here: this variant allocates. */
    {
        float x2[B * 2 * T * I], y2[B * 2 * T * 16];
        const uint32_t l2[B] = {2 * T, 1, T + 1};
        h_fill_rand(x2, B * 2 * T * I, 3);
        OK(rnn_model_forward_state_lengths(m, s, x2, 2 * T, l2, B, y2, B * 2 * T * o));
    }
done:
    rnn_state_free(one);
    rnn_state_free(s);
    rnn_state_free(a);
    rnn_model_free(m);
}

static void test_forward_state_lengths(void) {
    check_forward_state(RNN_CELL_LSTM, O);
    check_forward_state(RNN_CELL_GRU_LBR, 0);
    check_forward_state(RNN_CELL_RNN_TANH, O);
}

/* MSE by hand over the valid steps of y [B][T][O] against target. */
static double masked_mse(const float *y, const float *target, const uint32_t *lengths) {
    double s = 0.0;
    size_t n = 0, b, t, k;
    for (b = 0; b < B; b++)
        for (t = 0; t < lengths[b]; t++)
            for (k = 0; k < O; k++, n++) {
                double d = (double)y[(b * T + t) * O + k] - target[(b * T + t) * O + k];
                s += d * d;
            }
    return s / (double)n;
}

static void test_trainer_steps_with_lengths(void) {
    rnn_train_config tc = h_adam(0.05f);
    rnn_model *ma = new_model(RNN_CELL_LSTM, 2, O, RNN_OUTPUT_IDENTITY, 21);
    rnn_model *mb = new_model(RNN_CELL_LSTM, 2, O, RNN_OUTPUT_IDENTITY, 21);
    rnn_model *mc = new_model(RNN_CELL_LSTM, 2, O, RNN_OUTPUT_IDENTITY, 21);
    rnn_trainer *ta = NULL, *tb = NULL, *tcr = NULL;
    float x[B * T * I], target[B * T * O], y[CAP], fa[CAP], fb[CAP], fc[CAP];
    int32_t labels[B * T];
    float la = -1.0f, lb = -2.0f, lc = -3.0f;
    size_t i;
    if (!ma || !mb || !mc) goto done;
    OK(rnn_trainer_new(ma, &tc, &ta));
    OK(rnn_trainer_new(mb, &tc, &tb));
    OK(rnn_trainer_new(mc, &tc, &tcr));
    if (!ta || !tb || !tcr) goto done;
    h_fill_rand(x, B * T * I, 31);
    h_fill_rand(target, B * T * O, 32);
    for (i = 0; i < B * T; i++) labels[i] = (int32_t)(i % O);

    /* The loss with lengths is the MSE over valid steps only. */
    OK(rnn_model_forward_lengths(mc, x, B, T, SHORT, B, y, B * T * O));
    OK(rnn_trainer_step_mse_lengths(tcr, NULL, x, B, T, SHORT, B, target, B * T * O,
                                    RNN_TARGETS_EVERY_STEP, &lc));
    CHECK(fabs(lc - masked_mse(y, target, SHORT)) < 1e-5 * masked_mse(y, target, SHORT));

    /* Full lengths: the same step, bit for bit (loss and weights), twice. */
    for (i = 0; i < 2; i++) {
        OK(rnn_trainer_step_mse(ta, NULL, x, B, T, target, B * T * O, RNN_TARGETS_EVERY_STEP,
                                &la));
        OK(rnn_trainer_step_mse_lengths(tb, NULL, x, B, T, FULL, B, target, B * T * O,
                                        RNN_TARGETS_EVERY_STEP, &lb));
        CHECK(la == lb);
        OK(rnn_trainer_step_xent(ta, NULL, x, B, T, labels, B * T, RNN_TARGETS_EVERY_STEP,
                                 &la));
        OK(rnn_trainer_step_xent_lengths(tb, NULL, x, B, T, FULL, B, labels, B * T,
                                         RNN_TARGETS_EVERY_STEP, &lb));
        CHECK(la == lb);
    }
    fingerprint(ma, fa);
    fingerprint(mb, fb);
    CHECK(same_bits(fa, fb, B * T * O));
    /* With short lengths the weights move differently. */
    OK(rnn_trainer_step_mse_lengths(tcr, NULL, x, B, T, SHORT, B, target, B * T * O,
                                    RNN_TARGETS_EVERY_STEP, &lc));
    OK(rnn_trainer_step_xent_lengths(tcr, NULL, x, B, T, SHORT, B, labels, B * T,
                                     RNN_TARGETS_EVERY_STEP, &lc));
    fingerprint(mc, fc);
    CHECK(h_max_abs_diff(fa, fc, B * T * O) > 1e-4f);
done:
    rnn_trainer_free(ta);
    rnn_trainer_free(tb);
    rnn_trainer_free(tcr);
    rnn_model_free(ma);
    rnn_model_free(mb);
    rnn_model_free(mc);
}

/* Targets and labels past a length are ignored: other values there give the same step. */
static void test_padding_targets_are_ignored(void) {
    rnn_train_config tc = h_adam(0.05f);
    rnn_model *ma = new_model(RNN_CELL_GRU_LBR, 1, O, RNN_OUTPUT_IDENTITY, 5);
    rnn_model *mb = new_model(RNN_CELL_GRU_LBR, 1, O, RNN_OUTPUT_IDENTITY, 5);
    rnn_trainer *ta = NULL, *tb = NULL;
    rnn_state *sa = NULL, *sb = NULL;
    float x[B * T * I], t1[B * T * O], t2[B * T * O], fa[CAP], fb[CAP], la, lb;
    float va[B * H], vb[B * H];
    int32_t l1[B * T], l2[B * T];
    size_t i;
    if (!ma || !mb) goto done;
    OK(rnn_trainer_new(ma, &tc, &ta));
    OK(rnn_trainer_new(mb, &tc, &tb));
    OK(rnn_state_new(ma, B, &sa));
    OK(rnn_state_new(mb, B, &sb));
    if (!ta || !tb || !sa || !sb) goto done;
    h_fill_rand(x, B * T * I, 41);
    h_fill_rand(t1, B * T * O, 42);
    memcpy(t2, t1, sizeof t1);
    for (i = 0; i < B * T; i++) l1[i] = l2[i] = (int32_t)(i % O);
    /* Sequence 1 is 2 long: change its steps 2.. */
    for (i = 2 * O; i < T * O; i++) t2[T * O + i] = 9.0f;
    for (i = 2; i < T; i++) l2[T + i] = (int32_t)((i + 1) % O);
    OK(rnn_trainer_step_mse_lengths(ta, sa, x, B, T, SHORT, B, t1, B * T * O,
                                    RNN_TARGETS_EVERY_STEP, &la));
    OK(rnn_trainer_step_mse_lengths(tb, sb, x, B, T, SHORT, B, t2, B * T * O,
                                    RNN_TARGETS_EVERY_STEP, &lb));
    CHECK(la == lb);
    OK(rnn_trainer_step_xent_lengths(ta, sa, x, B, T, SHORT, B, l1, B * T,
                                     RNN_TARGETS_EVERY_STEP, &la));
    OK(rnn_trainer_step_xent_lengths(tb, sb, x, B, T, SHORT, B, l2, B * T,
                                     RNN_TARGETS_EVERY_STEP, &lb));
    CHECK(la == lb);
    fingerprint(ma, fa);
    fingerprint(mb, fb);
    CHECK(same_bits(fa, fb, B * T * O));
    OK(rnn_state_get(sa, va, B * H));
    OK(rnn_state_get(sb, vb, B * H));
    CHECK(same_bits(va, vb, B * H));
    /* LAST_STEP: one target per sequence, at its own last step. */
    OK(rnn_trainer_step_mse_lengths(ta, NULL, x, B, T, SHORT, B, t1, B * O,
                                    RNN_TARGETS_LAST_STEP, &la));
    CHECK(la > 0.0f);
done:
    rnn_state_free(sa);
    rnn_state_free(sb);
    rnn_trainer_free(ta);
    rnn_trainer_free(tb);
    rnn_model_free(ma);
    rnn_model_free(mb);
}

/* A trainer step with a state leaves each sequence's state at its own last step. */
static void test_trainer_state_is_each_sequences_last(void) {
    rnn_train_config tc = h_adam(0.01f);
    rnn_model *m = new_model(RNN_CELL_LSTM, 1, O, RNN_OUTPUT_IDENTITY, 8);
    rnn_trainer *tr = NULL;
    rnn_state *st = NULL, *fs = NULL;
    float x[B * T * I], target[B * T * O], y[CAP], want[2 * B * H], got[2 * B * H], loss;
    if (!m) return;
    OK(rnn_trainer_new(m, &tc, &tr));
    OK(rnn_state_new(m, B, &st));
    OK(rnn_state_new_block(m, B, T, &fs));
    if (!tr || !st || !fs) goto done;
    h_fill_rand(x, B * T * I, 51);
    h_fill_rand(target, B * T * O, 52);
    OK(rnn_model_forward_state_lengths(m, fs, x, T, SHORT, B, y, B * T * O));
    OK(rnn_state_get(fs, want, 2 * B * H));
    OK(rnn_trainer_step_mse_lengths(tr, st, x, B, T, SHORT, B, target, B * T * O,
                                    RNN_TARGETS_EVERY_STEP, &loss));
    OK(rnn_state_get(st, got, 2 * B * H));
    CHECK(h_max_abs_diff(want, got, 2 * B * H) < 1e-6f);
done:
    rnn_state_free(st);
    rnn_state_free(fs);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

static void test_bidirectional_training_with_lengths(void) {
    rnn_train_config tc = h_adam(0.05f);
    rnn_model *m = new_bidir(RNN_CELL_GRU, 2, O, 9);
    rnn_trainer *tr = NULL;
    float x[B * T * I], before[CAP], after[CAP], loss = -1.0f, first = -1.0f;
    int32_t labels[B];
    int step;
    if (!m) return;
    OK(rnn_trainer_new(m, &tc, &tr));
    if (!tr) goto done;
    h_fill_rand(x, B * T * I, 61);
    labels[0] = 0;
    labels[1] = 1;
    labels[2] = 2;
    fingerprint(m, before);
    for (step = 0; step < 30; step++) {
        OK(rnn_trainer_step_xent_lengths(tr, NULL, x, B, T, SHORT, B, labels, B,
                                         RNN_TARGETS_LAST_STEP, &loss));
        if (step == 0) first = loss;
    }
    CHECK(loss < 0.5f * first);
    fingerprint(m, after);
    CHECK(!same_bits(before, after, B * T * O));
done:
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

/* Every bad lengths argument: the status, a message naming it, nothing written. */
static void test_bad_lengths_write_nothing(void) {
    rnn_train_config tc = h_adam(0.05f);
    rnn_model *m = new_model(RNN_CELL_LSTM, 1, O, RNN_OUTPUT_IDENTITY, 3);
    rnn_trainer *tr = NULL;
    rnn_state *st = NULL;
    float x[B * T * I], target[B * T * O], y[CAP], before[CAP], after[CAP];
    float s0[2 * B * H], s1[2 * B * H], loss = 123.0f;
    int32_t labels[B * T];
    const uint32_t zero[B] = {T, 0, 1}, over[B] = {T, T + 1, 1};
    const uint32_t *bad[2];
    size_t i, k;
    if (!m) return;
    OK(rnn_trainer_new(m, &tc, &tr));
    OK(rnn_state_new_block(m, B, T, &st));
    if (!tr || !st) goto done;
    h_fill_rand(x, B * T * I, 71);
    h_fill_rand(target, B * T * O, 72);
    for (i = 0; i < B * T; i++) labels[i] = 0;
    h_fill_rand(s0, 2 * B * H, 73);
    OK(rnn_state_set(st, s0, 2 * B * H));
    fingerprint(m, before);
    bad[0] = zero;
    bad[1] = over;

#define UNCHANGED()                                                                  \
    do {                                                                             \
        CHECK(h_all_eq(y, CAP, NAN));                                                \
        CHECK(loss == 123.0f);                                                       \
        OK(rnn_state_get(st, s1, 2 * B * H));                                        \
        CHECK(same_bits(s0, s1, 2 * B * H));                                         \
    } while (0)

    h_fill(y, CAP, NAN);
    FAILS(rnn_model_forward_lengths(m, x, B, T, NULL, B, y, B * T * O), RNN_ERR_NULL,
          "lengths");
    FAILS(rnn_model_forward_state_lengths(m, st, x, T, NULL, B, y, B * T * O), RNN_ERR_NULL,
          "lengths");
    FAILS(rnn_trainer_step_mse_lengths(tr, st, x, B, T, NULL, B, target, B * T * O,
                                       RNN_TARGETS_EVERY_STEP, &loss),
          RNN_ERR_NULL, "lengths");
    FAILS(rnn_trainer_step_xent_lengths(tr, st, x, B, T, NULL, B, labels, B * T,
                                        RNN_TARGETS_EVERY_STEP, &loss),
          RNN_ERR_NULL, "lengths");
    UNCHANGED();
    /* lengths_len not the batch (the state's for forward_state). */
    for (k = 0; k < 2; k++) {
        size_t n = k ? B + 1 : B - 1;
        FAILS(rnn_model_forward_lengths(m, x, B, T, FULL, n, y, B * T * O), RNN_ERR_INVALID,
              "lengths");
        FAILS(rnn_model_forward_state_lengths(m, st, x, T, FULL, n, y, B * T * O),
              RNN_ERR_INVALID, "lengths");
        FAILS(rnn_trainer_step_mse_lengths(tr, st, x, B, T, FULL, n, target, B * T * O,
                                           RNN_TARGETS_EVERY_STEP, &loss),
              RNN_ERR_INVALID, "lengths");
        FAILS(rnn_trainer_step_xent_lengths(tr, st, x, B, T, FULL, n, labels, B * T,
                                            RNN_TARGETS_EVERY_STEP, &loss),
              RNN_ERR_INVALID, "lengths");
        UNCHANGED();
    }
    /* A length of 0 or above seq_len: the message names lengths[1]. */
    for (k = 0; k < 2; k++) {
        FAILS(rnn_model_forward_lengths(m, x, B, T, bad[k], B, y, B * T * O), RNN_ERR_INVALID,
              "lengths");
        CHECK(strstr(rnn_last_error(), "lengths[1]") != NULL);
        FAILS(rnn_model_forward_state_lengths(m, st, x, T, bad[k], B, y, B * T * O),
              RNN_ERR_INVALID, "lengths");
        CHECK(strstr(rnn_last_error(), "lengths[1]") != NULL);
        FAILS(rnn_trainer_step_mse_lengths(tr, st, x, B, T, bad[k], B, target, B * T * O,
                                           RNN_TARGETS_EVERY_STEP, &loss),
              RNN_ERR_INVALID, "lengths");
        CHECK(strstr(rnn_last_error(), "lengths[1]") != NULL);
        FAILS(rnn_trainer_step_xent_lengths(tr, st, x, B, T, bad[k], B, labels, B * T,
                                            RNN_TARGETS_EVERY_STEP, &loss),
              RNN_ERR_INVALID, "lengths");
        UNCHANGED();
    }
    /* seq_len 0 cannot hold a length; other bad arguments still name themselves. */
    FAILS(rnn_model_forward_state_lengths(m, st, x, 0, FULL, B, y, 0), RNN_ERR_INVALID,
          "lengths");
    FAILS(rnn_model_forward_lengths(m, x, B, T, SHORT, B, y, B * T * O - 1), RNN_ERR_INVALID,
          "y_len");
    FAILS(rnn_model_forward_state_lengths(m, st, x, T, SHORT, B, y, B * T * O + 1),
          RNN_ERR_INVALID, "y_len");
    FAILS(rnn_trainer_step_mse_lengths(tr, st, x, B, T, SHORT, B, target, B * T,
                                       RNN_TARGETS_EVERY_STEP, &loss),
          RNN_ERR_INVALID, "target_len");
    /* NaN in x (in the padding too) is refused. */
    {
        float xn[B * T * I];
        memcpy(xn, x, sizeof x);
        xn[1 * T * I + (T - 1) * I] = NAN;
        FAILS(rnn_model_forward_lengths(m, xn, B, T, SHORT, B, y, B * T * O),
              RNN_ERR_NONFINITE, NULL);
        FAILS(rnn_model_forward_state_lengths(m, st, xn, T, SHORT, B, y, B * T * O),
              RNN_ERR_NONFINITE, NULL);
        FAILS(rnn_trainer_step_mse_lengths(tr, st, xn, B, T, SHORT, B, target, B * T * O,
                                           RNN_TARGETS_EVERY_STEP, &loss),
              RNN_ERR_NONFINITE, NULL);
    }
    UNCHANGED();
    fingerprint(m, after);
    CHECK(same_bits(before, after, B * T * O));
    /* A bidirectional model cannot have a state at all (rnn_state_new refuses it). */
    {
        rnn_model *bm = new_bidir(RNN_CELL_LSTM, 1, O, 2);
        FAILS(rnn_model_forward_state_lengths(bm, st, x, T, SHORT, B, y, B * T * O),
              RNN_ERR_INVALID, NULL);
        rnn_model_free(bm);
        UNCHANGED();
    }
#undef UNCHANGED
done:
    rnn_state_free(st);
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

int main(void) {
    RUN(test_forward_lengths);
    RUN(test_forward_lengths_bidirectional);
    RUN(test_forward_state_lengths);
    RUN(test_trainer_steps_with_lengths);
    RUN(test_padding_targets_are_ignored);
    RUN(test_trainer_state_is_each_sequences_last);
    RUN(test_bidirectional_training_with_lengths);
    RUN(test_bad_lengths_write_nothing);
    return SUMMARY();
}
