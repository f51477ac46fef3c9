/* rnn_model_step on a model file (anything rnn_model_load reads: RTNeural's JSON,
 * safetensors, ...), one stream, one sample per call: the fastest of 5 passes of N steps,
 * in nanoseconds per step. For before/after on a model with dense layers, build it
 * against each build's static library and run the two alternately.
 *
 *   gcc -O2 -std=c99 -I include benches/c/model_step.c target/release/librnncore.a \
 *       -lpthread -ldl -lm -o model_step && taskset -c 0 ./model_step FILE [N]
 *
 * The model must take one input and give one output per step.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rnncore.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: model_step FILE [N]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 100000;
    struct rnn_model *m;
    struct rnn_state *s;
    if (rnn_model_load(argv[1], &m) != RNN_OK || rnn_state_new(m, 1, &s) != RNN_OK) {
        fprintf(stderr, "model_step: %s\n", rnn_last_error());
        return 1;
    }
    float x, y = 0, acc = 0;
    double best = 1e30;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            x = (float)(i % 100) * 0.01f;
            if (rnn_model_step(m, s, &x, 1, &y, 1) != RNN_OK) {
                fprintf(stderr, "model_step: %s\n", rnn_last_error());
                return 1;
            }
            acc += y;
        }
        double ns = (now() - t0) / (double)n * 1e9;
        if (ns < best) best = ns;
    }
    printf("%.1f ns a step (%g)\n", best, acc);
    rnn_state_free(s);
    rnn_model_free(m);
    return 0;
}
