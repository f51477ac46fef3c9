/* A host's own parallel-for (rnn_set_parallel_for): a small pthread pool of this test's
   own and a plain serial loop each run rnncore's batched work (a forward pass and three
   training steps large enough to split), and the results are bit-identical to the
   built-in pool's and to one thread's. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "harness.h"

#define IN 8
#define HID 64
#define OUT 3
#define B 4 /* 4 x 24 rows of a 2-layer LSTM H64: just above the size at which work splits */
#define T 24
#define STEPS 3
#define WORKERS 3

/* ---- a minimal pool: WORKERS threads; run() hands them one job at a time ---- */
typedef struct {
    pthread_t threads[WORKERS];
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    pthread_mutex_t one_job; /* several rnncore callers may call run() at once */
    rnn_task task;
    void *task_ctx;
    size_t n, next, finished;
    unsigned long generation;
    int quit;
    unsigned long runs, tasks;
} pool;

static void *worker(void *arg) {
    pool *p = (pool *)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->work, &p->lock);
        if (p->quit) break;
        seen = p->generation;
        while (p->next < p->n) {
            size_t i = p->next++;
            rnn_task task = p->task;
            void *ctx = p->task_ctx;
            pthread_mutex_unlock(&p->lock);
            task(ctx, i);
            pthread_mutex_lock(&p->lock);
            p->tasks++;
            if (++p->finished == p->n) pthread_cond_signal(&p->done);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_run(void *ctx, size_t n, rnn_task task, void *task_ctx) {
    pool *p = (pool *)ctx;
    pthread_mutex_lock(&p->one_job);
    pthread_mutex_lock(&p->lock);
    p->task = task;
    p->task_ctx = task_ctx;
    p->n = n;
    p->next = 0;
    p->finished = 0;
    p->generation++;
    p->runs++;
    pthread_cond_broadcast(&p->work);
    while (p->finished < n) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->one_job);
}

static void pool_start(pool *p) {
    int i;
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->one_job, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (i = 0; i < WORKERS; i++) pthread_create(&p->threads[i], NULL, worker, p);
}

static void pool_stop(pool *p) {
    int i;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (i = 0; i < WORKERS; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->one_job);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
}

/* every task in order on the calling thread */
static unsigned long serial_runs;
static void serial_run(void *ctx, size_t n, rnn_task task, void *task_ctx) {
    size_t i;
    (void)ctx;
    serial_runs++;
    for (i = 0; i < n; i++) task(task_ctx, i);
}

/* ---- the work: three training steps, then a forward pass of the trained model ---- */
typedef struct {
    float loss[STEPS];
    float y[B * T * OUT];
} result;

static float g_x[B * T * IN], g_target[B * T * OUT];

static void work(result *r) {
    rnn_config c = h_config(RNN_CELL_LSTM, IN, HID, 2, OUT, RNN_OUTPUT_IDENTITY);
    rnn_train_config tc = h_adam(0.01f);
    rnn_model *m = NULL;
    rnn_trainer *tr = NULL;
    int s;
    memset(r, 0, sizeof *r);
    OK(rnn_model_new(&c, 7, &m));
    OK(rnn_trainer_new(m, &tc, &tr));
    for (s = 0; s < STEPS; s++)
        OK(rnn_trainer_step_mse(tr, NULL, g_x, B, T, g_target, B * T * OUT,
                                RNN_TARGETS_EVERY_STEP, &r->loss[s]));
    OK(rnn_model_forward(m, g_x, B, T, r->y, B * T * OUT));
    rnn_trainer_free(tr);
    rnn_model_free(m);
}

static int same(const result *a, const result *b) { return memcmp(a, b, sizeof *a) == 0; }

static result one, got;

static void test_host_pool_and_serial_loop_give_the_built_in_bits(void) {
    pool p;
    h_fill_rand(g_x, B * T * IN, 11);
    h_fill_rand(g_target, B * T * OUT, 12);
    OK(rnn_set_num_threads(1));
    work(&one);
    CHECK(one.loss[0] > 0.0f && one.loss[STEPS - 1] < one.loss[0]);

    OK(rnn_set_num_threads(2));
    work(&got);
    CHECK(same(&one, &got));

    pool_start(&p);
    OK(rnn_set_num_threads(0));
    OK(rnn_set_parallel_for(pool_run, &p));
    work(&got);
    CHECK(same(&one, &got));
    CHECK(p.runs > 0 && p.tasks >= 2 * p.runs); /* the work went through the pool, split */

    OK(rnn_set_num_threads(5)); /* five parts on three workers */
    work(&got);
    CHECK(same(&one, &got));

    OK(rnn_set_parallel_for(serial_run, NULL));
    work(&got);
    CHECK(same(&one, &got));
    CHECK(serial_runs > 0);

    /* NULL restores the built-in pool: the host sees nothing more */
    OK(rnn_set_parallel_for(NULL, NULL));
    {
        unsigned long before = p.runs, sruns = serial_runs;
        work(&got);
        CHECK(same(&one, &got));
        CHECK(p.runs == before && serial_runs == sruns);
    }
    OK(rnn_set_num_threads(0));
    pool_stop(&p);
}

int main(void) {
    RUN(test_host_pool_and_serial_loop_give_the_built_in_bits);
    return SUMMARY();
}
