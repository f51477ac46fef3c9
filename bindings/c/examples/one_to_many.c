/* One-to-many: one input vector, a whole sequence out.
 *
 * The input is a waveform shape as a one-hot vector (sine, square, triangle), fed as the
 * same input at every step; the model (a GRU with a one-output head) learns to write 32
 * samples of that waveform, two cycles of it, with an MSE loss at every step. Since the
 * input never changes, the waveform has to come from the recurrence: the state keeps
 * the time. (examples/one_to_many.rs shows the other way of feeding the vector: at the
 * first step only, zeros after.)
 *
 * After training it plots what the model writes next to the target, and ends by checking
 * that its MSE is below a tenth of the zero predictor's (which always says 0): exit
 * status 0 only then, so running it is a test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rnncore.h"

#define SHAPES 3 /* input size: one-hot shape */
#define T 32     /* samples written per sequence */
#define STEPS 400
#define ROWS 9 /* height of the text plot */

static const char *const shape_names[SHAPES] = {"sine", "square", "triangle"};

/* Sample t of shape k: two cycles over T samples, in [-1, 1]. */
static float wave(int k, int t) {
    const double pi = 3.14159265358979;
    double phase = (double)(t % (T / 2)) / (T / 2); /* [0, 1) within a cycle */
    switch (k) {
    case 0: return (float)sin(2.0 * pi * phase);
    case 1: return phase < 0.5 ? 1.0f : -1.0f;
    default: return (float)(phase < 0.5 ? 4.0 * phase - 1.0 : 3.0 - 4.0 * phase);
    }
}

static int fail(const char *what, rnn_status s) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, rnn_status_str(s), rnn_last_error());
    return 1;
}

/* Runs `call`; on failure reports it and jumps to the clean-up at `done` with rc = 1. */
#define TRY(call)                                                                          \
    do {                                                                                   \
        rnn_status s_ = (call);                                                            \
        if (s_ != RNN_OK) {                                                                \
            rc = fail(#call, s_);                                                          \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

/* The plot row (0 = top, +1; ROWS - 1 = bottom, -1) of a value, clamped to [-1, 1]. */
static int plot_row(float v) {
    double c = v > 1.0f ? 1.0 : v < -1.0f ? -1.0 : (double)v;
    return (int)floor((1.0 - c) * (ROWS - 1) / 2.0 + 0.5);
}

/* A text plot of one sequence: 'o' the model, '.' the target, '#' both in one cell. */
static void plot(const float *got, const float *want) {
    int r, t;
    for (r = 0; r < ROWS; r++) {
        char line[T + 1];
        for (t = 0; t < T; t++) {
            int g = plot_row(got[t]) == r, w = plot_row(want[t]) == r;
            line[t] = g && w ? '#' : g ? 'o' : w ? '.' : ' ';
        }
        line[T] = '\0';
        printf("    %+5.2f |%s|\n", 1.0 - 2.0 * r / (ROWS - 1), line);
    }
}

int main(void) {
    /* 3 inputs (the one-hot shape) -> GRU H=32 -> 1 output per step, no activation */
    rnn_config c = {RNN_CELL_GRU, SHAPES, 32, 1, 1, RNN_OUTPUT_IDENTITY};
    rnn_train_config tc = {RNN_OPT_ADAM, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f};
    rnn_model *model = NULL;
    rnn_trainer *trainer = NULL;
    /* x: [SHAPES][T][SHAPES], the batch holds every shape once; target, y: [SHAPES][T][1] */
    float x[SHAPES * T * SHAPES] = {0}, target[SHAPES * T], y[SHAPES * T];
    float loss = 0.0f;
    double mse = 0.0, zero_mse = 0.0;
    int rc = 0, step, k, t;

    if (rnn_abi_version() < RNN_ABI_VERSION) {
        fprintf(stderr, "the library is older than its header (ABI version)\n");
        return 1;
    }
    for (k = 0; k < SHAPES; k++)
        for (t = 0; t < T; t++) {
            x[(k * T + t) * SHAPES + k] = 1.0f; /* the same vector at every step */
            target[k * T + t] = wave(k, t);
        }

    TRY(rnn_model_new(&c, 1, &model));
    /* the trainer keeps `model` and updates it in place: free the trainer first */
    TRY(rnn_trainer_new(model, &tc, &trainer));
    printf("GRU H=32: one-hot waveform shape at every step -> %d samples of it (MSE, every step)\n",
           T);
    for (step = 0; step < STEPS; step++) {
        TRY(rnn_trainer_step_mse(trainer, NULL, x, SHAPES, T, target, SHAPES * T,
                                 RNN_TARGETS_EVERY_STEP, &loss));
        if (step % 50 == 0 || step == STEPS - 1) printf("  step %3d  loss %.5f\n", step, loss);
    }

    /* generate: every shape's sequence from a zero state, in one batch */
    TRY(rnn_model_forward(model, x, SHAPES, T, y, SHAPES * T));
    printf("generated (o) against the target (.), # where they share a cell:\n");
    for (k = 0; k < SHAPES; k++) {
        double m = 0.0, z = 0.0;
        for (t = 0; t < T; t++) {
            double d = (double)y[k * T + t] - target[k * T + t];
            m += d * d;
            z += (double)target[k * T + t] * target[k * T + t];
        }
        printf("  %-8s MSE %.5f (zero predictor %.5f)\n", shape_names[k], m / T, z / T);
        plot(y + k * T, target + k * T);
        mse += m;
        zero_mse += z;
    }
    mse /= SHAPES * T;
    zero_mse /= SHAPES * T;
    printf("MSE over all shapes %.5f, zero predictor %.5f (%.1f%% of it)\n", mse, zero_mse,
           100.0 * mse / zero_mse);
    if (!(mse < 0.1 * zero_mse)) {
        fprintf(stderr, "the model did not learn the waveforms: MSE %g, need < %g\n", mse,
                0.1 * zero_mse);
        rc = 1;
    }

done:
    rnn_trainer_free(trainer);
    rnn_model_free(model);
    return rc;
}
