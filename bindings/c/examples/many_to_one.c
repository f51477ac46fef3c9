/* Many-to-one: a whole sequence in, one answer out.
 *
 * Each sequence is 16 random letters of a 4-letter alphabet (A C G T, one-hot) with one
 * of 4 motifs of 4 letters written in at a random place; the model (an LSTM with a
 * softmax head of 4 classes) says which motif it saw, at the last step only: a
 * cross-entropy loss with RNN_TARGETS_LAST_STEP, one label per sequence. The motifs
 * share letters, so the order matters, and no sequence holds two different motifs.
 *
 * It prints the accuracy on fresh sequences during training, a few answers, and ends by
 * checking that the final accuracy on 1000 fresh sequences is at least 90% (chance is
 * 25%, every class being equally likely): exit status 0 only then, so running it is a
 * test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncore.h"

#define LETTERS 4 /* input size: one-hot letter */
#define MOTIFS 4  /* classes */
#define MLEN 4    /* letters per motif */
#define T 16      /* letters per sequence */
#define BATCH 32
#define STEPS 800
#define EVAL 1000

static const char alphabet[LETTERS + 1] = "ACGT";
static const char *const motifs[MOTIFS] = {"ACGT", "TGCA", "AAGG", "GTTG"};

/* A small deterministic generator (xorshift32), so every run is the same. */
static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}
static int rng_below(uint32_t *s, int n) { return (int)(rng_next(s) % (uint32_t)n); }

/* How many of the motifs occur in seq (T letters, as a string), and the last found. */
static int motifs_in(const char *seq, int *which) {
    int k, n = 0;
    for (k = 0; k < MOTIFS; k++)
        if (strstr(seq, motifs[k])) {
            n++;
            *which = k;
        }
    return n;
}

/* One sequence: letters in text (T + 1 chars), one-hot in x ([T][LETTERS]); its label. */
static int32_t make_sequence(uint32_t *rng, char *text, float *x) {
    int k = rng_below(rng, MOTIFS), pos, t, found = -1;
    do { /* random letters with motif k at a random place, and no other motif */
        for (t = 0; t < T; t++) text[t] = alphabet[rng_below(rng, LETTERS)];
        text[T] = '\0';
        pos = rng_below(rng, T - MLEN + 1);
        memcpy(text + pos, motifs[k], MLEN);
    } while (motifs_in(text, &found) != 1);
    memset(x, 0, T * LETTERS * sizeof *x);
    for (t = 0; t < T; t++) x[t * LETTERS + (int)(strchr(alphabet, text[t]) - alphabet)] = 1.0f;
    return k;
}

/* The most probable class at the last step of sequence b of p ([n][T][MOTIFS]). */
static int predicted(const float *p, size_t b) {
    const float *last = p + (b * T + T - 1) * MOTIFS;
    int k, best = 0;
    for (k = 1; k < MOTIFS; k++)
        if (last[k] > last[best]) best = k;
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
    /* 4 inputs (one-hot letter) -> LSTM H=32 -> softmax over the 4 motifs at every step;
       only the last step is trained and read */
    rnn_config c = {RNN_CELL_LSTM, LETTERS, 32, 1, MOTIFS, RNN_OUTPUT_SOFTMAX};
    rnn_train_config tc = {RNN_OPT_ADAM, 0.01f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f};
    rnn_model *model = NULL;
    rnn_trainer *trainer = NULL;
    static float x[BATCH * T * LETTERS];
    int32_t labels[BATCH]; /* [BATCH]: one class per sequence (RNN_TARGETS_LAST_STEP) */
    /* held-out sequences, x [EVAL][T][LETTERS], probabilities p [EVAL][T][MOTIFS] */
    static float ex[EVAL * T * LETTERS], p[EVAL * T * MOTIFS];
    static int32_t elabels[EVAL];
    static char etext[EVAL][T + 1];
    char text[T + 1];
    uint32_t rng = 12345, eval_rng = 777;
    float loss = 0.0f;
    double accuracy = 0.0;
    int rc = 0, step, b, hits;

    if (rnn_abi_version() < RNN_ABI_VERSION) {
        fprintf(stderr, "the library is older than its header (ABI version)\n");
        return 1;
    }
    for (b = 0; b < EVAL; b++)
        elabels[b] = make_sequence(&eval_rng, etext[b], ex + (size_t)b * T * LETTERS);

    TRY(rnn_model_new(&c, 1, &model));
    /* the trainer keeps `model` and updates it in place: free the trainer first */
    TRY(rnn_trainer_new(model, &tc, &trainer));
    printf("LSTM H=32: which of the motifs");
    for (b = 0; b < MOTIFS; b++) printf(" %s", motifs[b]);
    printf(" is in %d random letters (answer at the last step; chance 25%%)\n", T);
    for (step = 0; step <= STEPS; step++) {
        for (b = 0; b < BATCH; b++) labels[b] = make_sequence(&rng, text, x + b * T * LETTERS);
        TRY(rnn_trainer_step_xent(trainer, NULL, x, BATCH, T, labels, BATCH,
                                  RNN_TARGETS_LAST_STEP, &loss));
        if (step % 100 == 0) {
            /* softmax at every step; the answer is the last step's */
            TRY(rnn_model_forward(model, ex, EVAL, T, p, sizeof p / sizeof *p));
            for (hits = 0, b = 0; b < EVAL; b++) hits += predicted(p, (size_t)b) == elabels[b];
            accuracy = (double)hits / EVAL;
            printf("  step %3d  loss %.4f  accuracy on %d fresh sequences %5.1f%%\n", step, loss,
                   EVAL, 100.0 * accuracy);
        }
    }
    for (b = 0; b < 4; b++) {
        int k = predicted(p, (size_t)b);
        printf("  %s -> %s (p = %.2f; true %s)\n", etext[b], motifs[k],
               p[((size_t)b * T + T - 1) * MOTIFS + k], motifs[elabels[b]]);
    }
    printf("accuracy %.1f%%, chance %.1f%%\n", 100.0 * accuracy, 100.0 / MOTIFS);
    if (!(accuracy >= 0.9)) {
        fprintf(stderr, "the model did not learn the motifs: accuracy %.3f, need >= 0.9\n",
                accuracy);
        rc = 1;
    }

done:
    rnn_trainer_free(trainer);
    rnn_model_free(model);
    return rc;
}
