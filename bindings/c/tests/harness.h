/*
 * A minimal test harness for the C tests: CHECK records a failure and goes on, RUN runs
 * one test function and prints "ok"/"FAIL" with its name, SUMMARY prints
 * "N passed, M failed" (run_tests.sh adds these up) and gives the exit status.
 */
#ifndef RNNCORE_TEST_HARNESS_H
#define RNNCORE_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncore.h"

static int h_failures_now; /* failed CHECKs in the running test */
static int h_passed, h_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                      \
            h_failures_now++;                                                    \
        }                                                                        \
    } while (0)

/* A call that must succeed; on failure prints the status and the last error. */
#define OK(call)                                                                 \
    do {                                                                         \
        rnn_status ok_s_ = (call);                                               \
        if (ok_s_ != RNN_OK) {                                                   \
            fprintf(stderr, "  %s:%d: %s returned %d (%s): %s\n", __FILE__,      \
                    __LINE__, #call, (int)ok_s_, rnn_status_str(ok_s_),          \
                    rnn_last_error());                                           \
            h_failures_now++;                                                    \
        }                                                                        \
    } while (0)

/* A call that must fail with `want`, leaving a message in rnn_last_error() that names
   `arg` as a whole word. */
#define FAILS(call, want, arg)                                                   \
    h_expect_failure((call), (want), (arg), #call, __FILE__, __LINE__)

#define RUN(test)                                                                \
    do {                                                                         \
        h_failures_now = 0;                                                      \
        test();                                                                  \
        if (h_failures_now) {                                                    \
            printf("FAIL %s (%d checks failed)\n", #test, h_failures_now);       \
            h_failed++;                                                          \
        } else {                                                                 \
            printf("ok   %s\n", #test);                                          \
            h_passed++;                                                          \
        }                                                                        \
        fflush(stdout);                                                          \
    } while (0)

#define SUMMARY()                                                                \
    (printf("%d passed, %d failed\n", h_passed, h_failed), h_failed ? 1 : 0)

/* Whether `word` occurs in `text` with no identifier character on either side. */
static inline int h_names(const char *text, const char *word) {
    size_t n = strlen(word);
    const char *p = text;
    while ((p = strstr(p, word)) != NULL) {
        int before = p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                                  (p[-1] >= 'A' && p[-1] <= 'Z') ||
                                  (p[-1] >= '0' && p[-1] <= '9'));
        char c = p[n];
        int after = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9');
        if (!before && !after) return 1;
        p += 1;
    }
    return 0;
}

static inline void h_expect_failure(rnn_status got, rnn_status want, const char *arg,
                                    const char *call, const char *file, int line) {
    const char *e = rnn_last_error();
    if (got != want) {
        fprintf(stderr, "  %s:%d: %s returned %d, expected %d; last error: %s\n", file,
                line, call, (int)got, (int)want, e ? e : "(NULL)");
        h_failures_now++;
        return;
    }
    if (e == NULL || e[0] == '\0') {
        fprintf(stderr, "  %s:%d: %s: rnn_last_error() is empty\n", file, line, call);
        h_failures_now++;
        return;
    }
    if (getenv("RNNCORE_TEST_VERBOSE")) fprintf(stderr, "  %-10s %s\n", arg ? arg : "", e);
    if (arg != NULL && !h_names(e, arg)) {
        fprintf(stderr, "  %s:%d: %s: last error does not name '%s': %s\n", file, line,
                call, arg, e);
        h_failures_now++;
    }
}

/* Deterministic pseudo-random floats in [-1, 1). */
static inline float h_rand(uint32_t *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)((*seed >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static inline void h_fill_rand(float *p, size_t n, uint32_t seed) {
    size_t i;
    for (i = 0; i < n; i++) p[i] = h_rand(&seed);
}

static inline void h_fill(float *p, size_t n, float v) {
    size_t i;
    for (i = 0; i < n; i++) p[i] = v;
}

/* Whether all n floats are (bitwise) `v`. */
static inline int h_all_eq(const float *p, size_t n, float v) {
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&p[i], &v, sizeof v) != 0) return 0;
    return 1;
}

static inline float h_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a large difference */
    }
    return m;
}

static inline void *h_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static inline rnn_config h_config(uint32_t cell, uint32_t in, uint32_t hidden,
                                  uint32_t layers, uint32_t out, uint32_t act) {
    rnn_config c;
    c.cell = cell;
    c.input_size = in;
    c.hidden_size = hidden;
    c.num_layers = layers;
    c.output_size = out;
    c.output_activation = act;
    return c;
}

static inline rnn_train_config h_adam(float lr) {
    rnn_train_config t;
    t.optimizer = RNN_OPT_ADAM;
    t.learning_rate = lr;
    t.momentum = 0.0f;
    t.beta1 = 0.9f;
    t.beta2 = 0.999f;
    t.eps = 1e-8f;
    t.weight_decay = 0.0f;
    t.clip_norm = 0.0f;
    return t;
}

#endif
