/* Many-to-many: a sequence in, a sequence of the same length out (a target at every step).
 *
 * The task is a delayed copy: the input is a stream of random symbols 0..4 (one-hot) and
 * at every step the model (an LSTM with a softmax head of 5 classes) names the symbol it
 * read DELAY steps earlier. A cross-entropy loss with RNN_TARGETS_EVERY_STEP, one label
 * per step; the first DELAY steps have nothing to echo yet and are labelled -1, which
 * the loss ignores. A sequence tagger (a label for every input) has the same shape.
 *
 * Then the trained model runs as a stream, one step at a time as symbols would arrive
 * (rnn_state_new + rnn_model_step, several independent streams in one state), and the
 * outputs are checked against rnn_model_forward's on the whole sequences.
 *
 * An encoder-decoder, whose output sequence has another length than its input (read a
 * sequence, then write another), is not shown here: it is two models joined through the
 * state, and training it needs the gradient with respect to the decoder's initial state
 * passed back into the encoder (Model::backward with a state gradient), which the C ABI
 * does not expose -- its training steps start the gradient at the given state and stop
 * there. It is shown through the Rust API in examples/many_to_many.rs, and by the CLI
 * (`rnncore train --task dates`).
 *
 * It ends by checking that at least 90% of the steps with a label are echoed right on
 * fresh sequences (chance, and repeating the current symbol, are 20%) and that streaming
 * equals the whole-sequence forward to 1e-5: exit status 0 only then, so running it is a
 * test.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncore.h"

#define SYMBOLS 5 /* input size (one-hot) and classes */
#define DELAY 3   /* echo the symbol read this many steps ago */
#define T 20
#define BATCH 32
#define STEPS 400
#define EVAL 500
#define STREAMS 4 /* streams run one step at a time at the end */

/* A small deterministic generator (xorshift32), so every run is the same. */
static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* n sequences: symbols sym [n][T], one-hot x [n][T][SYMBOLS], labels [n][T]. */
static void make_batch(uint32_t *rng, size_t n, int *sym, float *x, int32_t *labels) {
    size_t b, t;
    memset(x, 0, n * T * SYMBOLS * sizeof *x);
    for (b = 0; b < n; b++)
        for (t = 0; t < T; t++) {
            int k = (int)(rng_next(rng) % SYMBOLS);
            sym[b * T + t] = k;
            x[(b * T + t) * SYMBOLS + k] = 1.0f;
            labels[b * T + t] = t < DELAY ? -1 : sym[b * T + t - DELAY]; /* -1: no target */
        }
}

/* The most probable class in p[0..SYMBOLS). */
static int argmax(const float *p) {
    int k, best = 0;
    for (k = 1; k < SYMBOLS; k++)
        if (p[k] > p[best]) best = k;
    return best;
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

int main(void) {
    /* 5 inputs (one-hot symbol) -> LSTM H=32 -> softmax over the 5 symbols at every step */
    rnn_config c = {RNN_CELL_LSTM, SYMBOLS, 32, 1, SYMBOLS, RNN_OUTPUT_SOFTMAX};
    rnn_train_config tc = {RNN_OPT_ADAM, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f};
    rnn_model *model = NULL;
    rnn_trainer *trainer = NULL;
    rnn_state *state = NULL;
    static int sym[BATCH * T], esym[EVAL * T];
    static float x[BATCH * T * SYMBOLS];
    static int32_t labels[BATCH * T], elabels[EVAL * T]; /* [n][T], -1 = ignored */
    /* held-out sequences: x [EVAL][T][SYMBOLS], probabilities p [EVAL][T][SYMBOLS] */
    static float ex[EVAL * T * SYMBOLS], p[EVAL * T * SYMBOLS];
    /* one step of every stream: xt [STREAMS][SYMBOLS] in, yt [STREAMS][SYMBOLS] out */
    float xt[STREAMS * SYMBOLS], yt[STREAMS * SYMBOLS], diff, max_diff = 0.0f;
    char streamed[T + 1];
    uint32_t rng = 2024, eval_rng = 99;
    float loss = 0.0f;
    double accuracy = 0.0;
    int rc = 0, step;
    size_t b, t, k, hits, counted;

    if (rnn_abi_version() < RNN_ABI_VERSION) {
        fprintf(stderr, "the library is older than its header (ABI version)\n");
        return 1;
    }
    make_batch(&eval_rng, EVAL, esym, ex, elabels);

    TRY(rnn_model_new(&c, 1, &model));
    /* the trainer keeps `model` and updates it in place: free the trainer first */
    TRY(rnn_trainer_new(model, &tc, &trainer));
    printf("LSTM H=32: at every step, the symbol (0..%d) read %d steps earlier "
           "(chance 20%%)\n", SYMBOLS - 1, DELAY);
    for (step = 0; step <= STEPS; step++) {
        make_batch(&rng, BATCH, sym, x, labels);
        TRY(rnn_trainer_step_xent(trainer, NULL, x, BATCH, T, labels, BATCH * T,
                                  RNN_TARGETS_EVERY_STEP, &loss));
        if (step % 100 == 0) {
            TRY(rnn_model_forward(model, ex, EVAL, T, p, sizeof p / sizeof *p));
            for (hits = 0, counted = 0, b = 0; b < EVAL * T; b++)
                if (elabels[b] >= 0) {
                    counted++;
                    hits += argmax(p + b * SYMBOLS) == elabels[b];
                }
            accuracy = (double)hits / (double)counted;
            printf("  step %3d  loss %.4f  steps echoed right in %d fresh sequences %5.1f%%\n",
                   step, loss, EVAL, 100.0 * accuracy);
        }
    }
    rnn_trainer_free(trainer); /* training is over; the model stays */
    trainer = NULL;

    /* streaming: the first STREAMS held-out sequences, one step at a time, in one state
       of STREAMS independent streams. Step t's input is x[b][t][:] of every stream b. */
    TRY(rnn_state_new(model, STREAMS, &state));
    for (t = 0; t < T; t++) {
        for (b = 0; b < STREAMS; b++)
            memcpy(xt + b * SYMBOLS, ex + (b * T + t) * SYMBOLS, SYMBOLS * sizeof *xt);
        TRY(rnn_model_step(model, state, xt, STREAMS * SYMBOLS, yt, STREAMS * SYMBOLS));
        for (b = 0; b < STREAMS; b++)
            for (k = 0; k < SYMBOLS; k++) { /* p holds the final forward of every sequence */
                diff = (float)fabs(yt[b * SYMBOLS + k] - p[(b * T + t) * SYMBOLS + k]);
                if (diff > max_diff) max_diff = diff;
            }
        streamed[t] = t < DELAY ? '-' : (char)('0' + argmax(yt)); /* stream 0's answer */
    }
    streamed[T] = '\0';
    printf("stream 0, one step at a time:\n  in   ");
    for (t = 0; t < T; t++) printf("%d", esym[t]);
    printf("\n  out  %s\n", streamed);
    printf("%d streams stepped %d times: rnn_model_step vs rnn_model_forward differ by at "
           "most %.3g\n", STREAMS, T, max_diff);
    printf("accuracy %.1f%%, chance %.1f%%\n", 100.0 * accuracy, 100.0 / SYMBOLS);
    if (!(accuracy >= 0.9)) {
        fprintf(stderr, "the model did not learn the delayed copy: accuracy %.3f, need >= 0.9\n",
                accuracy);
        rc = 1;
    }
    if (!(max_diff <= 1e-5f)) {
        fprintf(stderr, "streaming differs from the whole-sequence forward by %g\n", max_diff);
        rc = 1;
    }

done:
    rnn_state_free(state);
    rnn_trainer_free(trainer);
    rnn_model_free(model);
    return rc;
}
