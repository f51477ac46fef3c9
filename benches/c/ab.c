/* Two builds of rnncore side by side in one process: before/after on a noisy machine.
 *
 *   bash benches/compare/ab.sh REV [rounds] [kinds]      (builds both, runs this)
 *   ab LIB_A LIB_B [rounds] [kinds]                      (kinds: step,block,infer,train)
 *
 * Each library is dlopen'ed with RTLD_LOCAL, so both export the same C ABI (version 1
 * functions only: any build since the ABI was frozen) without clashing. Every timing of
 * A is followed or preceded by the same timing of B (the order alternates from round to
 * round), so a slow spell of a shared machine falls on both; the table gives min and
 * median per build and the ratio B / A of the medians and of the mins (below 1: B faster).
 *
 * Configurations (one thread, RNNCORE_KERNEL from the environment for both):
 * - step:  one stream, I = 1, a dense head to 1 output, rnn_model_step per sample
 *          (the RTNeural comparison's model), LSTM and GRU (linear-before-reset),
 *          H = 8..128; ns per sample.
 * - block: the same models, rnn_model_forward_state on 512 samples; ns per sample.
 * - infer: rnn_model_forward on the batched harness's shapes (I, H, B, T) = (64, 128, 64,
 *          64), (256, 512, 32, 64), (512, 1024, 64, 32), LSTM, GRU, RNN; ms per call.
 * - train: rnn_trainer_step_mse (SGD, learning rate 0, targets at every step) on the
 *          same shapes; ms per call.
 * AB_CELLS (a subset of "lstm,gru,rnn") and AB_H (hidden sizes, e.g. "16,1024") narrow the
 * run to those configurations; for step and block AB_H may name any sizes (e.g. "20,40,96",
 * where sizes between the fused kernels' are the question). AB_STREAMS (1..16, default 1)
 * gives step and block states of that many streams (stereo: 2); their times are then per
 * stream and sample. AB_LAYERS (default 1) stacks that many layers in every generated model.
 * AB_MODELS (model files, comma-separated: anything rnn_model_load reads, e.g. RTNeural's
 * JSON) adds step and block rows for each file, loaded by each build, with one input and
 * its output size per step (models with dense layers take their own step path).
 * Before timing, A and B must give the same outputs to 1e-4 (they are the same model);
 * a pair that does not is reported and the run fails.
 */
#define _POSIX_C_SOURCE 199309L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnncore.h"

typedef struct {
    const char *path;
    void *dl;
    enum rnn_status (*model_new)(const struct rnn_config *, uint64_t, struct rnn_model **);
    void (*model_free)(struct rnn_model *);
    enum rnn_status (*forward)(const struct rnn_model *, const float *, size_t, size_t, float *,
                               size_t);
    enum rnn_status (*state_new)(const struct rnn_model *, size_t, struct rnn_state **);
    enum rnn_status (*state_new_block)(const struct rnn_model *, size_t, size_t,
                                       struct rnn_state **);
    void (*state_free)(struct rnn_state *);
    enum rnn_status (*step)(const struct rnn_model *, struct rnn_state *, const float *, size_t,
                            float *, size_t);
    enum rnn_status (*forward_state)(const struct rnn_model *, struct rnn_state *, const float *,
                                     size_t, float *, size_t);
    enum rnn_status (*trainer_new)(struct rnn_model *, const struct rnn_train_config *,
                                   struct rnn_trainer **);
    void (*trainer_free)(struct rnn_trainer *);
    enum rnn_status (*step_mse)(struct rnn_trainer *, struct rnn_state *, const float *, size_t,
                                size_t, const float *, size_t, uint32_t, float *);
    enum rnn_status (*set_threads)(size_t);
    const char *(*kernel_name)(void);
    const char *(*last_error)(void);
    /* Looked up only when AB_MODELS is set (the other functions are any build's). */
    enum rnn_status (*model_load)(const char *, struct rnn_model **);
    size_t (*output_size)(const struct rnn_model *);
} lib;

static void *sym(lib *l, const char *name) {
    void *p = dlsym(l->dl, name);
    if (!p) {
        fprintf(stderr, "ab: %s has no %s\n", l->path, name);
        exit(1);
    }
    return p;
}

static void open_lib(lib *l, const char *path) {
    l->path = path;
    l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l->dl) {
        fprintf(stderr, "ab: %s\n", dlerror());
        exit(1);
    }
    /* POSIX lets a function pointer pass through a void *: dlsym's contract. */
    *(void **)&l->model_new = sym(l, "rnn_model_new");
    *(void **)&l->model_free = sym(l, "rnn_model_free");
    *(void **)&l->forward = sym(l, "rnn_model_forward");
    *(void **)&l->state_new = sym(l, "rnn_state_new");
    *(void **)&l->state_new_block = sym(l, "rnn_state_new_block");
    *(void **)&l->state_free = sym(l, "rnn_state_free");
    *(void **)&l->step = sym(l, "rnn_model_step");
    *(void **)&l->forward_state = sym(l, "rnn_model_forward_state");
    *(void **)&l->trainer_new = sym(l, "rnn_trainer_new");
    *(void **)&l->trainer_free = sym(l, "rnn_trainer_free");
    *(void **)&l->step_mse = sym(l, "rnn_trainer_step_mse");
    *(void **)&l->set_threads = sym(l, "rnn_set_num_threads");
    *(void **)&l->kernel_name = sym(l, "rnn_kernel_name");
    *(void **)&l->last_error = sym(l, "rnn_last_error");
}

static void check(lib *l, enum rnn_status s, const char *what) {
    if (s != RNN_OK) {
        fprintf(stderr, "ab: %s: %s failed: %s\n", l->path, what, l->last_error());
        exit(1);
    }
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/* One configuration's work for one library: set up once, then timed calls. */
typedef struct {
    lib *l;
    struct rnn_model *model;
    struct rnn_state *state;
    struct rnn_trainer *trainer;
    float *x, *y, *target;
    size_t b, t, i, o, steps;
} work;

enum kind { STEP, BLOCK, INFER, TRAIN };
static const char *kind_name[] = {"step", "block", "infer", "train"};

static float *filled(size_t n, unsigned seed) {
    float *v = malloc(n * sizeof *v);
    if (!v) {
        fprintf(stderr, "ab: out of memory\n");
        exit(1);
    }
    for (size_t k = 0; k < n; k++) {
        seed = seed * 1664525u + 1013904223u;
        v[k] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return v;
}

static void setup(work *w, lib *l, enum kind k, const char *file, uint32_t cell, size_t i,
                  size_t h, size_t b, size_t t) {
    memset(w, 0, sizeof *w);
    w->l = l;
    if (file) {
        /* A model file: one input a step, its own output size. */
        check(l, l->model_load(file, &w->model), file);
        w->b = b, w->t = t, w->i = 1, w->o = l->output_size(w->model);
    } else {
        /* AB_LAYERS: stacked layers (default 1). */
        const char *le = getenv("AB_LAYERS");
        uint32_t layers = le && *le ? (uint32_t)strtoul(le, NULL, 10) : 1;
        struct rnn_config cfg = {cell, (uint32_t)i, (uint32_t)h, layers, 0, RNN_OUTPUT_IDENTITY};
        if (k == STEP || k == BLOCK) cfg.output_size = 1;
        check(l, l->model_new(&cfg, 7, &w->model), "rnn_model_new");
        w->b = b, w->t = t, w->i = i, w->o = cfg.output_size ? cfg.output_size : h;
    }
    w->x = filled(b * t * i, 11);
    w->y = calloc(b * t * w->o, sizeof(float));
    if (k == STEP || k == BLOCK) check(l, l->state_new_block(w->model, b, t, &w->state), "state");
    if (k == TRAIN) {
        struct rnn_train_config tc;
        memset(&tc, 0, sizeof tc);
        tc.optimizer = RNN_OPT_SGD;
        check(l, l->trainer_new(w->model, &tc, &w->trainer), "rnn_trainer_new");
        w->target = filled(b * t * w->o, 13);
    }
}

static void teardown(work *w) {
    if (w->trainer) w->l->trainer_free(w->trainer);
    if (w->state) w->l->state_free(w->state);
    w->l->model_free(w->model);
    free(w->x), free(w->y), free(w->target);
}

/* Runs `n` units of work (samples for step and block, calls otherwise). */
static void run(work *w, enum kind k, size_t n) {
    lib *l = w->l;
    float loss;
    for (size_t r = 0; r < n; r++) {
        switch (k) {
        case STEP:
            /* One sample per stream: any b·i of the inputs. */
            check(l,
                  l->step(w->model, w->state, w->x + (r % w->t) * w->b * w->i, w->b * w->i, w->y,
                          w->b * w->o),
                  "rnn_model_step");
            break;
        case BLOCK:
            check(l, l->forward_state(w->model, w->state, w->x, w->t, w->y, w->b * w->t * w->o),
                  "rnn_model_forward_state");
            break;
        case INFER:
            check(l, l->forward(w->model, w->x, w->b, w->t, w->y, w->b * w->t * w->o),
                  "rnn_model_forward");
            break;
        case TRAIN:
            check(l,
                  l->step_mse(w->trainer, NULL, w->x, w->b, w->t, w->target,
                              w->b * w->t * w->o, RNN_TARGETS_EVERY_STEP, &loss),
                  "rnn_trainer_step_mse");
            break;
        }
    }
}

static double timed(work *w, enum kind k, size_t n) {
    double t0 = now_ns();
    run(w, k, n);
    return now_ns() - t0;
}

#define MAX_ROUNDS 64

static int failed = 0;

static void compare(lib *a, lib *b, enum kind k, const char *file, uint32_t cell,
                    const char *cname, size_t i, size_t h, size_t bt, size_t t, int rounds) {
    work wa, wb;
    setup(&wa, a, k, file, cell, i, h, bt, t);
    setup(&wb, b, k, file, cell, i, h, bt, t);
    /* Same model, same input: the outputs must agree (a forward from a zero state). */
    size_t ny = bt * t * wa.o;
    float *ya = malloc(ny * sizeof(float)), *yb = malloc(ny * sizeof(float));
    check(a, a->forward(wa.model, wa.x, bt, t, ya, ny), "rnn_model_forward");
    check(b, b->forward(wb.model, wb.x, bt, t, yb, ny), "rnn_model_forward");
    double diff = 0;
    for (size_t q = 0; q < ny; q++) diff = fmax(diff, fabs((double)ya[q] - (double)yb[q]));
    free(ya), free(yb);
    if (!(diff <= 1e-4)) {
        fprintf(stderr, "ab: %s %s H=%zu: outputs differ by %g\n", kind_name[k], cname, h, diff);
        failed = 1;
    }
    /* Units per timing: about 5 ms of A's work (at least one call). */
    size_t n = 1;
    for (;;) {
        double ns = timed(&wa, k, n);
        if (ns >= 5e6 || n >= ((size_t)1 << 24)) break;
        n = ns < 1e5 ? n * 16 : (size_t)((double)n * 5e6 / ns) + 1;
    }
    run(&wb, k, n);
    double ta[MAX_ROUNDS], tb[MAX_ROUNDS];
    double per = (k == STEP)    ? (double)(n * bt)
                 : (k == BLOCK) ? (double)(n * t * bt)
                                : (double)n * 1e6;
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            ta[r] = timed(&wa, k, n) / per;
            tb[r] = timed(&wb, k, n) / per;
        } else {
            tb[r] = timed(&wb, k, n) / per;
            ta[r] = timed(&wa, k, n) / per;
        }
    }
    double mina = min_of(ta, rounds), minb = min_of(tb, rounds);
    double meda = median(ta, rounds), medb = median(tb, rounds);
    char shape[64];
    if (file && bt > 1)
        snprintf(shape, sizeof shape, "model file, %zu streams", bt);
    else if (file)
        snprintf(shape, sizeof shape, "model file");
    else if ((k == STEP || k == BLOCK) && bt > 1)
        snprintf(shape, sizeof shape, "H %zu, %zu streams", h, bt);
    else if (k == STEP || k == BLOCK)
        snprintf(shape, sizeof shape, "H %zu", h);
    else
        snprintf(shape, sizeof shape, "%zu, %zu, %zu, %zu", i, h, bt, t);
    printf("| %s | %s | %s | %.1f / %.1f | %.1f / %.1f | %.3f | %.3f |\n", kind_name[k], cname,
           shape, mina, meda, minb, medb, medb / meda, minb / mina);
    fflush(stdout);
    teardown(&wa);
    teardown(&wb);
}

/* AB_CELLS (e.g. "lstm,gru") and AB_H (e.g. "16,1024") narrow the run; unset: everything. */
static int wanted_cell(const char *name) {
    const char *env = getenv("AB_CELLS");
    return !env || !*env || strstr(env, name) != NULL;
}

static int wanted_h(size_t h) {
    const char *env = getenv("AB_H");
    if (!env || !*env) return 1;
    for (const char *p = env; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p) break;
        if (v == h) return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ab LIB_A LIB_B [rounds] [step,block,infer,train]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "ab: rounds must be 1..%d\n", MAX_ROUNDS);
        return 2;
    }
    const char *kinds = argc > 4 ? argv[4] : "step,block,infer,train";
    const char *se = getenv("AB_STREAMS");
    size_t streams = se && *se ? strtoul(se, NULL, 10) : 1;
    if (streams < 1 || streams > 16) {
        fprintf(stderr, "ab: AB_STREAMS must be 1..16\n");
        return 2;
    }
    lib a, b;
    open_lib(&a, argv[1]);
    open_lib(&b, argv[2]);
    check(&a, a.set_threads(1), "rnn_set_num_threads");
    check(&b, b.set_threads(1), "rnn_set_num_threads");
    printf("A = %s (kernel `%s`), B = %s (kernel `%s`); one thread, %d rounds, A and B "
           "alternated. step, block: ns per sample; infer, train: ms per call; min / "
           "median; ratios B / A (below 1: B faster).\n\n",
           a.path, a.kernel_name(), b.path, b.kernel_name(), rounds);
    printf("| kind | cell | shape (I, H, B, T) | A | B | B / A (median) | B / A (min) |\n");
    printf("| --- | --- | --- | --: | --: | --: | --: |\n");
    const struct {
        uint32_t cell;
        const char *name;
    } cells[] = {{RNN_CELL_LSTM, "lstm"}, {RNN_CELL_GRU_LBR, "gru"}, {RNN_CELL_RNN_TANH, "rnn"}};
    /* Steps and blocks: the sizes AB_H names (any, e.g. "20,40,96"), else 8 ... 128. */
    size_t hs[16] = {8, 16, 32, 64, 128};
    int nh = 5;
    const char *hl = getenv("AB_H");
    if (hl && *hl) {
        nh = 0;
        for (const char *p = hl; *p && nh < 16;) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) break;
            if (v >= 1 && v <= 4096) hs[nh++] = v;
            p = *end ? end + 1 : end;
        }
    }
    const size_t shapes[][4] = {{64, 128, 64, 64}, {256, 512, 32, 64}, {512, 1024, 64, 32}};
    for (int k = STEP; k <= TRAIN; k++) {
        if (!strstr(kinds, kind_name[k])) continue;
        for (int c = 0; c < 3; c++) {
            if (!wanted_cell(cells[c].name)) continue;
            if (k == STEP || k == BLOCK) {
                if (cells[c].cell == RNN_CELL_RNN_TANH) continue;
                for (int q = 0; q < nh; q++)
                    compare(&a, &b, (enum kind)k, NULL, cells[c].cell, cells[c].name, 1, hs[q],
                            streams, k == STEP ? 64 : 512, rounds);
            } else {
                for (int q = 0; q < 3; q++)
                    if (wanted_h(shapes[q][1]))
                        compare(&a, &b, (enum kind)k, NULL, cells[c].cell, cells[c].name,
                                shapes[q][0], shapes[q][1], shapes[q][2], shapes[q][3], rounds);
            }
        }
        /* Model files: step and block rows for each. */
        const char *ml = getenv("AB_MODELS");
        if (ml && *ml && (k == STEP || k == BLOCK)) {
            *(void **)&a.model_load = sym(&a, "rnn_model_load");
            *(void **)&b.model_load = sym(&b, "rnn_model_load");
            *(void **)&a.output_size = sym(&a, "rnn_model_output_size");
            *(void **)&b.output_size = sym(&b, "rnn_model_output_size");
            char files[4096];
            snprintf(files, sizeof files, "%s", ml);
            for (char *f = strtok(files, ","); f; f = strtok(NULL, ",")) {
                const char *base = strrchr(f, '/');
                compare(&a, &b, (enum kind)k, f, 0, base ? base + 1 : f, 1, 0, streams,
                        k == STEP ? 64 : 512, rounds);
            }
        }
    }
    return failed;
}
