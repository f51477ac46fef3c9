/* Streaming an audio-style signal through a model in fixed-size blocks, as an audio
 * callback would: the state is made once, with room for the largest block, and every
 * block then runs through rnn_model_forward_state without allocating or locking.
 *
 * The same signal is also run one sample at a time (rnn_model_step) to show that the
 * block size does not change the output.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rnncore.h"

#define SAMPLE_RATE 48000
#define SECONDS 1
#define BLOCK 256 /* samples per audio callback */

static int fail(const char *what, rnn_status s) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, rnn_status_str(s), rnn_last_error());
    return 1;
}

static double now_seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

int main(void) {
    /* one input (the sample), one output: a GRU "effect" with a dense head */
    rnn_config c = {RNN_CELL_GRU_LBR, 1, 32, 1, 1, RNN_OUTPUT_IDENTITY};
    rnn_model *model = NULL;
    rnn_state *blocks = NULL, *samples = NULL;
    const size_t n = SAMPLE_RATE * SECONDS;
    float *in = malloc(n * sizeof *in), *out_block = malloc(n * sizeof *out_block);
    float *out_step = malloc(n * sizeof *out_step);
    double start, elapsed, max_diff = 0.0, energy = 0.0;
    size_t i, pos, calls = 0;
    rnn_status s;

    if (!in || !out_block || !out_step) return 1;
    for (i = 0; i < n; i++) /* a 440 Hz tone with a little deterministic noise */
        in[i] = 0.5f * (float)sin(2.0 * 3.14159265358979 * 440.0 * (double)i / SAMPLE_RATE) +
                0.01f * (float)((int)(i * 2654435761u % 200) - 100) / 100.0f;

    if ((s = rnn_model_new(&c, 7, &model)) != RNN_OK) return fail("rnn_model_new", s);
    /* one stream (batch 1), blocks of up to BLOCK samples: all scratch allocated here */
    if ((s = rnn_state_new_block(model, 1, BLOCK, &blocks)) != RNN_OK)
        return fail("rnn_state_new_block", s);
    if ((s = rnn_state_new(model, 1, &samples)) != RNN_OK) return fail("rnn_state_new", s);

    start = now_seconds();
    for (pos = 0; pos < n; pos += BLOCK) { /* the audio callback */
        size_t len = n - pos < BLOCK ? n - pos : BLOCK; /* the last block may be short */
        s = rnn_model_forward_state(model, blocks, in + pos, len, out_block + pos, len);
        if (s != RNN_OK) return fail("rnn_model_forward_state", s);
        calls++;
    }
    elapsed = now_seconds() - start;

    for (i = 0; i < n; i++) {
        s = rnn_model_step(model, samples, in + i, 1, out_step + i, 1);
        if (s != RNN_OK) return fail("rnn_model_step", s);
    }
    for (i = 0; i < n; i++) {
        double d = fabs((double)out_block[i] - (double)out_step[i]);
        if (d > max_diff) max_diff = d;
        energy += (double)out_block[i] * out_block[i];
    }
    printf("%zu samples in %zu blocks of %d: %.2f us per block (%.1fx real time)\n", n, calls,
           BLOCK, 1e6 * elapsed / (double)calls,
           elapsed > 0 ? (double)SECONDS / elapsed : 0.0);
    printf("output RMS %.5f; blocks vs single samples differ by at most %.3g\n",
           sqrt(energy / (double)n), max_diff);

    /* a new file starts: forget the history without reallocating */
    rnn_state_reset(blocks);

    rnn_state_free(blocks);
    rnn_state_free(samples);
    rnn_model_free(model);
    free(in);
    free(out_block);
    free(out_step);
    return max_diff <= 1e-5 ? 0 : 1;
}
