/* Streaming step latency through the C ABI: rnn_model_step for one stream, one input
 * (an audio sample), batch 1, for LSTM and GRU (linear-before-reset) at H = 8..128 and
 * a plain RNN. Per configuration: 20 000 warm-up steps, then 15 runs of 20 000 steps;
 * prints the median and the fastest run's nanoseconds per step.
 *
 *   bash benches/c/run.sh        (builds the static library and this program, runs it)
 *
 * The same configurations in Rust: `cargo bench --bench rnncore -- step/`.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rnncore.h"

#define STEPS 20000
#define RUNS 15

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const struct {
        uint32_t cell;
        const char *name;
    } cells[] = {{RNN_CELL_LSTM, "lstm"}, {RNN_CELL_GRU_LBR, "gru"}, {RNN_CELL_RNN_TANH, "rnn"}};
    const uint32_t sizes[] = {8, 16, 32, 64, 128};
    float y[128];
    size_t c, k;
    int r, i;

    printf("rnncore %s, kernel %s: rnn_model_step, batch 1, I = 1 (ns per step)\n",
           rnn_version(), rnn_kernel_name());
    printf("%-6s %5s %10s %10s\n", "cell", "H", "median", "fastest");
    for (c = 0; c < sizeof cells / sizeof cells[0]; c++) {
        for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            rnn_config cfg = {cells[c].cell, 1, sizes[k], 1, 0, RNN_OUTPUT_IDENTITY};
            rnn_model *model = NULL;
            rnn_state *state = NULL;
            double t[RUNS];
            float x = 0.1f;
            if (rnn_model_new(&cfg, 1, &model) != RNN_OK ||
                rnn_state_new(model, 1, &state) != RNN_OK) {
                fprintf(stderr, "setup failed: %s\n", rnn_last_error());
                return 1;
            }
            for (r = -1; r < RUNS; r++) { /* run -1 is the warm-up */
                double t0 = now_ns();
                for (i = 0; i < STEPS; i++) {
                    x = -x;
                    if (rnn_model_step(model, state, &x, 1, y, sizes[k]) != RNN_OK) {
                        fprintf(stderr, "step failed: %s\n", rnn_last_error());
                        return 1;
                    }
                }
                if (r >= 0) t[r] = (now_ns() - t0) / STEPS;
            }
            qsort(t, RUNS, sizeof t[0], cmp);
            printf("%-6s %5u %10.1f %10.1f\n", cells[c].name, sizes[k], t[RUNS / 2], t[0]);
            rnn_state_free(state);
            rnn_model_free(model);
        }
    }
    return 0;
}
