/* The versioned model description (ABI version 2): rnn_model_new_desc and
   rnn_model_describe round trips for plain, layered and loaded models; the size rules of
   struct_size (smaller, larger with a zero or nonzero tail); every bad field refused with
   RNN_ERR_INVALID naming it and nothing written; the forget-gate bias in the saved
   weights. */
#define _XOPEN_SOURCE 700
#include <unistd.h>

#include "harness.h"

static char g_dir[256];
static char g_root[512]; /* the repository root, from this file's path */

/* A zeroed description with struct_size set, as the header asks callers to make one. */
static rnn_model_desc new_desc(uint32_t cell, uint32_t in, uint32_t hidden, uint32_t layers) {
    rnn_model_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.cell = cell;
    d.input_size = in;
    d.hidden_size = hidden;
    d.num_layers = layers;
    return d;
}

static rnn_dense dense(uint32_t size, uint32_t act) {
    rnn_dense e;
    e.size = size;
    e.activation = act;
    return e;
}

/* Whether two descriptions are the same, field by field (no padding: all 4-byte). */
static int same_desc(const rnn_model_desc *a, const rnn_model_desc *b) {
    return memcmp(a, b, sizeof *a) == 0;
}

static rnn_model_desc describe(const rnn_model *m) {
    rnn_model_desc d;
    memset(&d, 0xAB, sizeof d); /* every field must be written */
    d.struct_size = sizeof d;
    OK(rnn_model_describe(m, &d));
    return d;
}

/* Forward of batch 2 x 5 steps, outputs into y (NaN first, so a gap shows). */
static void run_forward(const rnn_model *m, float *y, size_t y_cap) {
    float x[2 * 5 * 16];
    rnn_config c;
    size_t n;
    OK(rnn_model_config(m, &c));
    n = 2 * 5 * rnn_model_output_size(m);
    CHECK(c.input_size <= 16 && n <= y_cap);
    if (c.input_size > 16 || n > y_cap) return;
    h_fill_rand(x, 2 * 5 * c.input_size, 5);
    h_fill(y, y_cap, NAN);
    OK(rnn_model_forward(m, x, 2, 5, y, n));
    CHECK(!h_all_eq(y, 1, NAN));
    {
        size_t i;
        for (i = 0; i < n; i++) CHECK(isfinite(y[i]));
    }
}

static void test_plain_round_trip_and_rnn_model_new_weights(void) {
    rnn_model_desc d = new_desc(RNN_CELL_LSTM, 3, 5, 2), got;
    rnn_config c = h_config(RNN_CELL_LSTM, 3, 5, 2, 4, RNN_OUTPUT_SOFTMAX), back;
    rnn_model *a = NULL, *b = NULL;
    float ya[64], yb[64];
    d.output_size = 4;
    d.output_activation = RNN_OUTPUT_SOFTMAX;
    OK(rnn_model_new_desc(&d, 42, &a));
    OK(rnn_model_new(&c, 42, &b));
    if (!a || !b) return;
    got = describe(a);
    CHECK(same_desc(&got, &d));
    OK(rnn_model_config(a, &back));
    CHECK(memcmp(&back, &c, sizeof c) == 0);
    /* No extras: exactly rnn_model_new's weights for the same config and seed. */
    run_forward(a, ya, 64);
    run_forward(b, yb, 64);
    CHECK(memcmp(ya, yb, 2 * 5 * 4 * sizeof(float)) == 0);
    /* rnn_model_describe of rnn_model_new's model too. */
    got = describe(b);
    CHECK(same_desc(&got, &d));
    rnn_model_free(a);
    rnn_model_free(b);
}

static rnn_model_desc layered_desc(void) {
    rnn_model_desc d = new_desc(RNN_CELL_GRU_LBR, 2, 5, 2);
    d.num_pre = 2;
    d.pre[0] = dense(6, RNN_ACT_TANH);
    d.pre[1] = dense(4, RNN_ACT_RELU);
    d.num_post = 3;
    d.post[0] = dense(3, RNN_ACT_ELU);
    d.post[1] = dense(7, RNN_ACT_SIGMOID);
    d.post[2] = dense(2, RNN_ACT_IDENTITY);
    d.skip = 1;
    return d;
}

static void test_layered_round_trip_save_and_load(void) {
    rnn_model_desc d = layered_desc(), got;
    rnn_model *m = NULL, *loaded = NULL, *again = NULL;
    rnn_config c;
    float y1[64], y2[64];
    char path[300];
    OK(rnn_model_new_desc(&d, 3, &m));
    if (!m) return;
    got = describe(m);
    CHECK(same_desc(&got, &d));
    /* rnn_config shows the model's outer widths. */
    OK(rnn_model_config(m, &c));
    CHECK(c.input_size == 2 && c.hidden_size == 5 && c.num_layers == 2 && c.output_size == 2);
    CHECK(rnn_model_output_size(m) == 2);
    run_forward(m, y1, 64);
    /* Saved and loaded, it describes the same and computes the same. */
    snprintf(path, sizeof path, "%s/layered.safetensors", g_dir);
    OK(rnn_model_save(m, path));
    OK(rnn_model_load(path, &loaded));
    if (loaded) {
        got = describe(loaded);
        CHECK(same_desc(&got, &d));
        run_forward(loaded, y2, 64);
        CHECK(memcmp(y1, y2, 2 * 5 * 2 * sizeof(float)) == 0);
        rnn_model_free(loaded);
    }
    /* A description rebuilds a model of the same shape (other weights: another seed). */
    OK(rnn_model_new_desc(&got, 4, &again));
    if (again) {
        rnn_model_desc d2 = describe(again);
        CHECK(same_desc(&d2, &d));
        run_forward(again, y2, 64);
        CHECK(memcmp(y1, y2, 2 * 5 * 2 * sizeof(float)) != 0);
        rnn_model_free(again);
    }
    rnn_model_free(m);
}

static void test_a_lone_identity_post_layer_is_the_head(void) {
    rnn_model_desc d = new_desc(RNN_CELL_RNN_TANH, 3, 4, 1), got;
    rnn_model *m = NULL;
    d.num_post = 1;
    d.post[0] = dense(2, RNN_ACT_SOFTMAX);
    OK(rnn_model_new_desc(&d, 1, &m));
    if (!m) return;
    got = describe(m);
    CHECK(got.num_post == 0 && got.post[0].size == 0);
    CHECK(got.output_size == 2 && got.output_activation == RNN_OUTPUT_SOFTMAX);
    rnn_model_free(m);
}

static void test_pre_layers_and_a_head(void) {
    rnn_model_desc d = new_desc(RNN_CELL_GRU, 3, 4, 1), got;
    rnn_model *m = NULL;
    d.num_pre = 1;
    d.pre[0] = dense(8, RNN_ACT_SIGMOID);
    d.output_size = 2;
    OK(rnn_model_new_desc(&d, 1, &m));
    if (!m) return;
    got = describe(m);
    CHECK(same_desc(&got, &d));
    CHECK(rnn_model_output_size(m) == 2);
    rnn_model_free(m);
}

/* A struct as a program built against a newer header sees it: ours, then more fields. */
typedef struct {
    rnn_model_desc d;
    uint32_t newer[4];
} newer_desc;

static void test_struct_size_larger_with_zero_tail_is_accepted(void) {
    newer_desc n;
    rnn_model *m = NULL;
    memset(&n, 0, sizeof n);
    n.d = new_desc(RNN_CELL_LSTM, 2, 3, 1);
    n.d.struct_size = sizeof n;
    OK(rnn_model_new_desc(&n.d, 1, &m));
    CHECK(m != NULL);
    if (!m) return;
    /* describe writes our size, says so, and leaves the caller's tail alone. */
    memset(&n, 0xCD, sizeof n);
    n.d.struct_size = sizeof n;
    OK(rnn_model_describe(m, &n.d));
    CHECK(n.d.struct_size == sizeof(rnn_model_desc));
    CHECK(n.d.hidden_size == 3 && n.d.cell == RNN_CELL_LSTM && n.d.pre[15].size == 0);
    CHECK(n.newer[0] == 0xCDCDCDCDu && n.newer[3] == 0xCDCDCDCDu);
    rnn_model_free(m);
}

static void test_struct_size_larger_with_nonzero_tail_is_refused(void) {
    newer_desc n;
    rnn_model *const untouched = (rnn_model *)&g_dir;
    rnn_model *m = untouched;
    size_t i;
    for (i = 0; i < 4 * sizeof(uint32_t); i++) {
        memset(&n, 0, sizeof n);
        n.d = new_desc(RNN_CELL_LSTM, 2, 3, 1);
        n.d.struct_size = sizeof n;
        ((unsigned char *)n.newer)[i] = 1; /* a field this library does not know */
        FAILS(rnn_model_new_desc(&n.d, 1, &m), RNN_ERR_INVALID, "struct_size");
        CHECK(m == untouched);
    }
    /* The message names the size and the byte. */
    CHECK(strstr(rnn_last_error(), "328") != NULL);
    CHECK(strstr(rnn_last_error(), "byte 327") != NULL);
}

static void test_struct_size_smaller_is_refused(void) {
    rnn_model *const untouched = (rnn_model *)&g_dir;
    rnn_model *m = untouched, *ok = NULL;
    rnn_model_desc d = new_desc(RNN_CELL_LSTM, 2, 3, 1), copy;
    uint32_t sizes[] = {0, 4, sizeof(rnn_model_desc) - 4, sizeof(rnn_model_desc) - 1,
                        4097, 0xFFFFFFFFu};
    size_t i;
    CHECK(sizeof(rnn_model_desc) == RNN_MODEL_DESC_SIZE_V1);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        d.struct_size = sizes[i];
        FAILS(rnn_model_new_desc(&d, 1, &m), RNN_ERR_INVALID, "struct_size");
        CHECK(m == untouched);
    }
    /* describe refuses it too and writes nothing. */
    d.struct_size = sizeof d;
    OK(rnn_model_new_desc(&d, 1, &ok));
    if (!ok) return;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(&d, 0x5A, sizeof d);
        d.struct_size = sizes[i];
        copy = d;
        FAILS(rnn_model_describe(ok, &d), RNN_ERR_INVALID, "struct_size");
        CHECK(memcmp(&d, &copy, sizeof d) == 0);
    }
    rnn_model_free(ok);
}

static void test_nulls(void) {
    rnn_model_desc d = new_desc(RNN_CELL_LSTM, 2, 3, 1);
    rnn_model *const untouched = (rnn_model *)&g_dir;
    rnn_model *m = untouched;
    FAILS(rnn_model_new_desc(NULL, 1, &m), RNN_ERR_NULL, "desc");
    FAILS(rnn_model_new_desc(&d, 1, NULL), RNN_ERR_NULL, "out");
    FAILS(rnn_model_describe(NULL, &d), RNN_ERR_NULL, "model");
    CHECK(m == untouched);
    OK(rnn_model_new_desc(&d, 1, &m));
    FAILS(rnn_model_describe(m, NULL), RNN_ERR_NULL, "desc");
    rnn_model_free(m);
}

/* One bad description: refused with RNN_ERR_INVALID naming `field`, `*out` untouched. */
#define BAD(edit, field)                                                                   \
    do {                                                                                   \
        rnn_model_desc d = new_desc(RNN_CELL_LSTM, 2, 4, 1);                               \
        rnn_model *const untouched = (rnn_model *)&g_dir;                                  \
        rnn_model *m = untouched;                                                          \
        edit;                                                                              \
        FAILS(rnn_model_new_desc(&d, 1, &m), RNN_ERR_INVALID, field);                      \
        CHECK(m == untouched);                                                             \
    } while (0)

/* A bidirectional stack: built, described, run over whole sequences (outputs 2H wide,
   or the head's); streaming refused with nothing written; no dense layers around it
   except its head. */
static void test_bidirectional(void) {
    rnn_model_desc d = new_desc(RNN_CELL_GRU_LBR, 3, 4, 2), e;
    rnn_model *m = NULL;
    rnn_state *const untouched = (rnn_state *)&g_dir;
    rnn_state *st = untouched;
    float y[2 * 5 * 8];
    d.bidirectional = 1;
    OK(rnn_model_new_desc(&d, 7, &m));
    e = describe(m);
    CHECK(e.bidirectional == 1 && same_desc(&d, &e));
    CHECK(rnn_model_output_size(m) == 8);
    run_forward(m, y, sizeof y / sizeof y[0]);
    FAILS(rnn_state_new(m, 1, &st), RNN_ERR_INVALID, "bidirectional");
    CHECK(st == untouched);
    rnn_model_free(m);

    /* With a head, given as output_size or as one identity post layer. */
    d.output_size = 2;
    OK(rnn_model_new_desc(&d, 7, &m));
    CHECK(rnn_model_output_size(m) == 2 && describe(m).output_size == 2);
    run_forward(m, y, sizeof y / sizeof y[0]);
    rnn_model_free(m);
    d.output_size = 0;
    d.num_post = 1;
    d.post[0] = dense(2, RNN_ACT_IDENTITY);
    OK(rnn_model_new_desc(&d, 7, &m));
    e = describe(m);
    CHECK(e.bidirectional == 1 && e.output_size == 2 && e.num_post == 0);
    rnn_model_free(m);
    BAD((d.bidirectional = 1, d.num_post = 1, d.post[0] = dense(2, RNN_ACT_TANH)),
        "bidirectional");
    BAD((d.bidirectional = 1, d.num_pre = 1, d.pre[0] = dense(2, RNN_ACT_TANH)),
        "bidirectional");
}

/* An LSTM projection and dropout: built, described, run (outputs P wide); a projection
   needs an LSTM and P < H, dropout no dense layers. */
static void test_projection_and_dropout(void) {
    rnn_model_desc d = new_desc(RNN_CELL_LSTM, 3, 4, 2), e;
    rnn_model *m = NULL;
    float y[2 * 5 * 8];
    d.proj_size = 3;
    d.dropout = 0.25f;
    OK(rnn_model_new_desc(&d, 7, &m));
    e = describe(m);
    CHECK(e.proj_size == 3 && e.dropout == 0.25f && same_desc(&d, &e));
    CHECK(rnn_model_output_size(m) == 3);
    run_forward(m, y, sizeof y / sizeof y[0]);
    rnn_model_free(m);
    /* Dropout's masks follow the trainer's seed: the same seed, the same step, bit for
       bit; another seed, other weights. */
    {
        rnn_model *a = NULL, *b = NULL, *c = NULL;
        rnn_trainer *ta = NULL, *tb = NULL, *tc = NULL;
        rnn_train_config cfg = h_adam(0.05f);
        float x[2 * 5 * 3], target[2 * 5 * 4], loss = 0.0f, ya[2 * 5 * 4], yb[2 * 5 * 4],
              yc[2 * 5 * 4];
        d.proj_size = 0;
        d.dropout = 0.5f;
        OK(rnn_model_new_desc(&d, 9, &a));
        OK(rnn_model_new_desc(&d, 9, &b));
        OK(rnn_model_new_desc(&d, 9, &c));
        OK(rnn_trainer_new(a, &cfg, &ta));
        OK(rnn_trainer_new(b, &cfg, &tb));
        OK(rnn_trainer_new(c, &cfg, &tc));
        OK(rnn_trainer_set_dropout_seed(tb, 0));
        OK(rnn_trainer_set_dropout_seed(tc, 7));
        FAILS(rnn_trainer_set_dropout_seed(NULL, 1), RNN_ERR_NULL, "trainer");
        h_fill_rand(x, 2 * 5 * 3, 3);
        h_fill_rand(target, 2 * 5 * 4, 4);
        OK(rnn_trainer_step_mse(ta, NULL, x, 2, 5, target, 2 * 5 * 4, RNN_TARGETS_EVERY_STEP, &loss));
        OK(rnn_trainer_step_mse(tb, NULL, x, 2, 5, target, 2 * 5 * 4, RNN_TARGETS_EVERY_STEP, &loss));
        OK(rnn_trainer_step_mse(tc, NULL, x, 2, 5, target, 2 * 5 * 4, RNN_TARGETS_EVERY_STEP, &loss));
        run_forward(a, ya, sizeof ya / sizeof ya[0]);
        run_forward(b, yb, sizeof yb / sizeof yb[0]);
        run_forward(c, yc, sizeof yc / sizeof yc[0]);
        CHECK(memcmp(ya, yb, sizeof ya) == 0);
        CHECK(memcmp(ya, yc, sizeof ya) != 0);
        rnn_trainer_free(ta);
        rnn_trainer_free(tb);
        rnn_trainer_free(tc);
        rnn_model_free(a);
        rnn_model_free(b);
        rnn_model_free(c);
        d.dropout = 0.25f;
    }
    BAD((d.cell = RNN_CELL_GRU, d.proj_size = 2), "proj_size");
    BAD(d.proj_size = 4, "proj_size");
    BAD((d.dropout = 0.5f, d.num_pre = 1, d.pre[0] = dense(2, RNN_ACT_TANH)), "dropout");
}

static void test_every_bad_field_is_refused(void) {
    BAD(d.cell = 5, "cell");
    BAD(d.cell = 0xFFFFFFFFu, "cell");
    BAD(d.output_activation = 2, "output_activation");
    BAD(d.output_activation = RNN_OUTPUT_SOFTMAX, "output_activation"); /* no head */
    BAD(d.input_size = 0, "input_size");
    BAD(d.hidden_size = 0, "hidden_size");
    BAD(d.num_layers = 0, "num_layers");
    BAD(d.input_size = (1u << 20) + 1, "input_size");
    BAD((d.input_size = 0, d.num_pre = 1, d.pre[0] = dense(3, RNN_ACT_TANH)), "input_size");
    BAD(d.bidirectional = 2, "bidirectional");
    BAD(d.dropout = NAN, "dropout");
    BAD(d.dropout = 1.0f, "dropout");
    BAD(d.dropout = -0.5f, "dropout");
    BAD(d.forget_bias = INFINITY, "forget_bias");
    BAD(d.forget_bias = NAN, "forget_bias");
    BAD((d.cell = RNN_CELL_GRU, d.forget_bias = 1.0f), "forget_bias");
    BAD(d.skip = 2, "skip");
    BAD(d.num_pre = RNN_MAX_DENSE + 1, "num_pre");
    BAD(d.num_post = 0xFFFFFFFFu, "num_post");
    BAD(d.num_pre = 1, "size"); /* pre[0] left zero */
    BAD((d.num_post = 1, d.post[0] = dense(0, RNN_ACT_TANH)), "size");
    BAD((d.num_pre = 1, d.pre[0] = dense(3, 6)), "activation");
    BAD((d.num_post = 1, d.post[0] = dense(3, 0xFFFFFFFFu)), "activation");
    /* softmax anywhere but the model's last layer */
    BAD((d.num_pre = 1, d.pre[0] = dense(3, RNN_ACT_SOFTMAX)), "softmax");
    BAD((d.num_post = 2, d.post[0] = dense(3, RNN_ACT_SOFTMAX), d.post[1] = dense(3, 0)),
        "softmax");
    BAD((d.num_post = 1, d.post[0] = dense(2, RNN_ACT_SOFTMAX), d.skip = 1), "skip");
    /* a head and post layers */
    BAD((d.output_size = 3, d.num_post = 1, d.post[0] = dense(3, RNN_ACT_TANH)),
        "output_size");
    /* unused entries must be zero */
    BAD(d.pre[0].size = 3, "num_pre");
    BAD((d.num_post = 1, d.post[0] = dense(3, 0), d.post[RNN_MAX_DENSE - 1].activation = 1),
        "num_post");
    /* skip needs input width == output width */
    BAD((d.skip = 1, d.output_size = 3), "skip");
}

/* The bytes of tensor `name` in a safetensors file (F32), or NULL. */
static float *tensor(const unsigned char *file, size_t len, const char *name, size_t *n) {
    uint64_t hlen = 0;
    char key[64], *header, *at, *off;
    unsigned long a, b;
    int i;
    if (len < 8) return NULL;
    for (i = 7; i >= 0; i--) hlen = hlen << 8 | file[i];
    if (8 + hlen > len) return NULL;
    header = h_xmalloc((size_t)hlen + 1);
    memcpy(header, file + 8, (size_t)hlen);
    header[hlen] = '\0';
    snprintf(key, sizeof key, "\"%s\"", name);
    at = strstr(header, key);
    off = at ? strstr(at, "\"data_offsets\"") : NULL;
    if (!off || sscanf(off, "\"data_offsets\":[%lu,%lu]", &a, &b) != 2 || b > len) {
        free(header);
        return NULL;
    }
    free(header);
    *n = (b - a) / sizeof(float);
    {
        float *out = h_xmalloc(b - a);
        memcpy(out, file + 8 + hlen + a, b - a);
        return out;
    }
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = h_xmalloc((size_t)n);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* The forget-gate rows (H..2H of PyTorch's i, f, g, o) of bias_ih are the bias and of
   bias_hh zero, in every layer; every other bias row is the plain model's (same seed). */
static void test_forget_bias_is_in_the_weights(void) {
    enum { H = 4 };
    rnn_model_desc d = new_desc(RNN_CELL_LSTM, 3, H, 2), got;
    rnn_model *fb = NULL, *plain = NULL;
    char p1[300], p2[300];
    unsigned char *f1, *f2;
    size_t l1 = 0, l2 = 0;
    int k;
    d.num_pre = 1; /* with a dense layer before the stack too */
    d.pre[0] = dense(5, RNN_ACT_TANH);
    OK(rnn_model_new_desc(&d, 9, &plain));
    d.forget_bias = 1.0f;
    OK(rnn_model_new_desc(&d, 9, &fb));
    if (!fb || !plain) return;
    /* An initialisation choice: describe says 0. */
    got = describe(fb);
    CHECK(got.forget_bias == 0.0f);
    got.forget_bias = 1.0f;
    CHECK(same_desc(&got, &d));
    snprintf(p1, sizeof p1, "%s/fb.safetensors", g_dir);
    snprintf(p2, sizeof p2, "%s/plain.safetensors", g_dir);
    OK(rnn_model_save(fb, p1));
    OK(rnn_model_save(plain, p2));
    f1 = read_all(p1, &l1);
    f2 = read_all(p2, &l2);
    CHECK(f1 && f2);
    for (k = 0; k < 2 && f1 && f2; k++) {
        char ih[32], hh[32];
        size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0, j;
        float *ih1, *ih2, *hh1, *hh2;
        snprintf(ih, sizeof ih, "bias_ih_l%d", k);
        snprintf(hh, sizeof hh, "bias_hh_l%d", k);
        ih1 = tensor(f1, l1, ih, &n1);
        ih2 = tensor(f2, l2, ih, &n2);
        hh1 = tensor(f1, l1, hh, &n3);
        hh2 = tensor(f2, l2, hh, &n4);
        CHECK(ih1 && ih2 && hh1 && hh2 && n1 == 4 * H && n2 == n1 && n3 == n1 && n4 == n1);
        if (ih1 && ih2 && hh1 && hh2 && n1 == 4 * H && n2 == n1 && n3 == n1 && n4 == n1) {
            for (j = 0; j < 4 * H; j++) {
                if (j >= H && j < 2 * H) {
                    CHECK(ih1[j] == 1.0f);
                    CHECK(hh1[j] == 0.0f);
                    CHECK(ih2[j] != 1.0f); /* PyTorch's init is within 1/sqrt(H) = 0.5 */
                } else {
                    CHECK(ih1[j] == ih2[j]);
                    CHECK(hh1[j] == hh2[j]);
                }
            }
        }
        free(ih1);
        free(ih2);
        free(hh1);
        free(hh2);
    }
    free(f1);
    free(f2);
    rnn_model_free(fb);
    rnn_model_free(plain);
}

static rnn_model *load_fixture(const char *rel) {
    char path[800];
    rnn_model *m = NULL;
    snprintf(path, sizeof path, "%s/tests/fixtures/third_party/%s", g_root, rel);
    OK(rnn_model_load(path, &m));
    return m;
}

/* Loaded layered models describe their layers, and a model rebuilt from the description
   has the same shape. */
static void check_rebuilds(const rnn_model *m, const rnn_model_desc *d) {
    rnn_model *again = NULL;
    rnn_config c1, c2;
    OK(rnn_model_new_desc(d, 1, &again));
    if (!again) return;
    {
        rnn_model_desc d2 = describe(again);
        CHECK(same_desc(&d2, d));
    }
    OK(rnn_model_config(m, &c1));
    OK(rnn_model_config(again, &c2));
    CHECK(memcmp(&c1, &c2, sizeof c1) == 0);
    rnn_model_free(again);
}

static void test_describe_loaded_layered_models(void) {
    rnn_model *m = load_fixture("rtneural/gru.json");
    rnn_model_desc d;
    if (m) {
        /* Keras: time-distributed dense 8 tanh, GRU 8, dense 8 sigmoid, dense 1. */
        d = describe(m);
        CHECK(d.struct_size == sizeof d);
        CHECK(d.cell == RNN_CELL_GRU || d.cell == RNN_CELL_GRU_LBR);
        CHECK(d.input_size == 1 && d.hidden_size == 8 && d.num_layers == 1);
        CHECK(d.output_size == 0 && d.skip == 0);
        CHECK(d.num_pre == 1 && d.pre[0].size == 8 && d.pre[0].activation == RNN_ACT_TANH);
        CHECK(d.num_post == 2);
        CHECK(d.post[0].size == 8 && d.post[0].activation == RNN_ACT_SIGMOID);
        CHECK(d.post[1].size == 1 && d.post[1].activation == RNN_ACT_IDENTITY);
        CHECK(d.bidirectional == 0 && d.proj_size == 0 && d.dropout == 0.0f);
        CHECK(d.forget_bias == 0.0f && d.pre[1].size == 0 && d.post[2].activation == 0);
        check_rebuilds(m, &d);
        rnn_model_free(m);
    }
    m = load_fixture("rtneural/lstm.json");
    if (m) {
        d = describe(m);
        CHECK(d.cell == RNN_CELL_LSTM && d.input_size == 1 && d.hidden_size == 8);
        CHECK(d.num_pre == 1 && d.pre[0].size == 8 && d.pre[0].activation == RNN_ACT_TANH);
        CHECK(d.num_post == 1 && d.post[0].size == 1 && d.output_size == 0);
        check_rebuilds(m, &d);
        rnn_model_free(m);
    }
    /* GuitarML: LSTM 32 with a dense head and the input skip. */
    m = load_fixture("agm/ht1-ht11_lstm32.json");
    if (m) {
        d = describe(m);
        CHECK(d.cell == RNN_CELL_LSTM && d.input_size == 1 && d.hidden_size == 32);
        CHECK(d.skip == 1 && d.num_pre == 0);
        CHECK(d.num_post == 1 && d.post[0].size == 1 && d.output_size == 0);
        check_rebuilds(m, &d);
        rnn_model_free(m);
    }
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    const char *file = __FILE__;
    const char *cut = strstr(file, "/bindings/c/tests/");
    if (cut == NULL) {
        fprintf(stderr, "cannot find the repository root from %s\n", file);
        return 2;
    }
    snprintf(g_root, sizeof g_root, "%.*s", (int)(cut - file), file);
    snprintf(g_dir, sizeof g_dir, "%s/rnncore-desc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_plain_round_trip_and_rnn_model_new_weights);
    RUN(test_layered_round_trip_save_and_load);
    RUN(test_a_lone_identity_post_layer_is_the_head);
    RUN(test_pre_layers_and_a_head);
    RUN(test_struct_size_larger_with_zero_tail_is_accepted);
    RUN(test_struct_size_larger_with_nonzero_tail_is_refused);
    RUN(test_struct_size_smaller_is_refused);
    RUN(test_nulls);
    RUN(test_bidirectional);
    RUN(test_projection_and_dropout);
    RUN(test_every_bad_field_is_refused);
    RUN(test_forget_bias_is_in_the_weights);
    RUN(test_describe_loaded_layered_models);
    {
        char p[300];
        snprintf(p, sizeof p, "%s/layered.safetensors", g_dir);
        remove(p);
        snprintf(p, sizeof p, "%s/fb.safetensors", g_dir);
        remove(p);
        snprintf(p, sizeof p, "%s/plain.safetensors", g_dir);
        remove(p);
        rmdir(g_dir);
    }
    return SUMMARY();
}
