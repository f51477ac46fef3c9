/* Threads: 8 pthreads share one model, each with its own state (and its own batched
   forward), and get results bit-identical to one thread doing the same work; each
   thread's rnn_last_error() is its own. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "harness.h"

#define THREADS 8
#define STEPS 64
#define BLOCK 16
#define IN 2
#define OUT 3
#define FB 3 /* batch of the whole-sequence forward */
#define FT 10

static rnn_model *g_model;

typedef struct {
    int id;
    float stream_out[STEPS * OUT]; /* stepping a signal one sample at a time */
    float block_out[STEPS * OUT];  /* the same signal in blocks of BLOCK */
    float forward_out[FB * FT * OUT];
    int failures;
    int saw_own_error;
} job;

static void signal_for(int id, float *x, size_t n) { h_fill_rand(x, n, 1000u + (uint32_t)id); }

static void *work(void *arg) {
    job *j = (job *)arg;
    float x[STEPS * IN], fx[FB * FT * IN];
    rnn_state *s = NULL, *blk = NULL;
    int t;
    signal_for(j->id, x, STEPS * IN);
    h_fill_rand(fx, FB * FT * IN, 5000u + (uint32_t)j->id);
    if (rnn_state_new(g_model, 1, &s) != RNN_OK ||
        rnn_state_new_block(g_model, 1, BLOCK, &blk) != RNN_OK) {
        j->failures++;
        return NULL;
    }
    for (t = 0; t < STEPS; t++)
        if (rnn_model_step(g_model, s, x + t * IN, IN, j->stream_out + t * OUT, OUT) != RNN_OK)
            j->failures++;
    for (t = 0; t < STEPS; t += BLOCK)
        if (rnn_model_forward_state(g_model, blk, x + t * IN, BLOCK, j->block_out + t * OUT,
                                    BLOCK * OUT) != RNN_OK)
            j->failures++;
    if (rnn_model_forward(g_model, fx, FB, FT, j->forward_out, FB * FT * OUT) != RNN_OK)
        j->failures++;
    /* an error on this thread is seen here, named after this thread's argument */
    if (j->id % 2 == 0) {
        if (rnn_state_reset_stream(s, (size_t)j->id + 100) != RNN_ERR_INVALID) j->failures++;
        j->saw_own_error = h_names(rnn_last_error(), "stream");
    } else {
        j->saw_own_error = strcmp(rnn_last_error(), "") == 0;
    }
    rnn_state_free(s);
    rnn_state_free(blk);
    return NULL;
}

static void test_shared_model_is_bit_identical_to_one_thread(void) {
    static job serial[THREADS], parallel[THREADS];
    pthread_t tid[THREADS];
    int i;
    for (i = 0; i < THREADS; i++) { /* reference: the same jobs, one after another */
        serial[i].id = i;
        work(&serial[i]);
        CHECK(serial[i].failures == 0);
    }
    for (i = 0; i < THREADS; i++) {
        parallel[i].id = i;
        CHECK(pthread_create(&tid[i], NULL, work, &parallel[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) CHECK(pthread_join(tid[i], NULL) == 0);
    for (i = 0; i < THREADS; i++) {
        CHECK(parallel[i].failures == 0);
        CHECK(parallel[i].saw_own_error);
        CHECK(memcmp(serial[i].stream_out, parallel[i].stream_out,
                     sizeof serial[i].stream_out) == 0);
        CHECK(memcmp(serial[i].block_out, parallel[i].block_out,
                     sizeof serial[i].block_out) == 0);
        CHECK(memcmp(serial[i].forward_out, parallel[i].forward_out,
                     sizeof serial[i].forward_out) == 0);
        /* stepping and blocks agree too, and different signals give different outputs */
        CHECK(h_max_abs_diff(parallel[i].stream_out, parallel[i].block_out, STEPS * OUT) <= 1e-5f);
        if (i > 0)
            CHECK(memcmp(parallel[i].stream_out, parallel[0].stream_out,
                         sizeof parallel[i].stream_out) != 0);
    }
}

/* The main thread's error is not overwritten by the workers' calls. */
static void test_last_error_stays_on_its_thread(void) {
    static job j;
    pthread_t tid;
    CHECK(rnn_state_reset(NULL) == RNN_ERR_NULL);
    j.id = 1; /* an odd id: the worker succeeds, its own last error is "" */
    CHECK(pthread_create(&tid, NULL, work, &j) == 0);
    CHECK(pthread_join(tid, NULL) == 0);
    CHECK(j.saw_own_error);
    CHECK(h_names(rnn_last_error(), "state"));
    CHECK(strstr(rnn_last_error(), "rnn_state_reset") != NULL);
}

int main(void) {
    rnn_config c = h_config(RNN_CELL_LSTM, IN, 24, 2, OUT, RNN_OUTPUT_SOFTMAX);
    int rc;
    if (rnn_model_new(&c, 31, &g_model) != RNN_OK) {
        fprintf(stderr, "rnn_model_new: %s\n", rnn_last_error());
        return 1;
    }
    RUN(test_shared_model_is_bit_identical_to_one_thread);
    RUN(test_last_error_stays_on_its_thread);
    rc = SUMMARY();
    rnn_model_free(g_model);
    return rc;
}
