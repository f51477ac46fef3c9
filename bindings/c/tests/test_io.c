/* Model files through the C ABI: exact round trips; malformed files (garbage, empty,
   every truncation, corrupted header bytes, absurd header lengths) are RNN_ERR_FORMAT,
   unreadable paths RNN_ERR_IO, never a crash; saving is atomic. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char g_dir[256];

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
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

static int write_all(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    size_t w;
    if (!f) return 0;
    w = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && w == len;
}

static size_t entries_in(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Loading `path` must fail with `want` and leave the out-pointer alone. */
static void load_fails(const char *path, rnn_status want) {
    rnn_model *const untouched = (rnn_model *)&g_dir;
    rnn_model *m = untouched;
    rnn_status s = rnn_model_load(path, &m);
    if (s != want)
        fprintf(stderr, "  load %s: status %d, expected %d (%s)\n", path, (int)s, (int)want,
                rnn_last_error());
    CHECK(s == want);
    CHECK(rnn_last_error()[0] != '\0');
    CHECK(m == untouched);
    if (s == RNN_OK && m != untouched) rnn_model_free(m);
}

static rnn_model *small_model(uint32_t cell, uint64_t seed) {
    rnn_config c = h_config(cell, 2, 3, 2, 2, RNN_OUTPUT_SOFTMAX);
    rnn_model *m = NULL;
    OK(rnn_model_new(&c, seed, &m));
    return m;
}

static void outputs(const rnn_model *m, float *y, size_t y_len) {
    float x[2 * 4 * 8];
    size_t o = rnn_model_output_size(m);
    rnn_config c;
    OK(rnn_model_config(m, &c));
    h_fill_rand(x, 2 * 4 * c.input_size, 3);
    CHECK(y_len == 2 * 4 * o);
    OK(rnn_model_forward(m, x, 2, 4, y, y_len));
}

static void test_round_trip_every_cell(void) {
    uint32_t cell, h;
    char path[512];
    for (cell = 0; cell < 5; cell++)
        for (h = 0; h < 2; h++) {
            rnn_config c = h_config(cell, 3, 4, 2, h ? 5 : 0,
                                    h ? RNN_OUTPUT_SOFTMAX : RNN_OUTPUT_IDENTITY);
            rnn_config back;
            rnn_model *m = NULL, *l = NULL;
            float ya[2 * 4 * 5], yb[2 * 4 * 5];
            size_t n;
            path_in(path, sizeof path, "round.safetensors");
            OK(rnn_model_new(&c, 100 + cell, &m));
            if (!m) continue;
            OK(rnn_model_save(m, path));
            OK(rnn_model_load(path, &l));
            if (!l) { rnn_model_free(m); continue; }
            OK(rnn_model_config(l, &back));
            CHECK(memcmp(&c, &back, sizeof c) == 0);
            n = 2 * 4 * rnn_model_output_size(m);
            outputs(m, ya, n);
            outputs(l, yb, n);
            CHECK(memcmp(ya, yb, n * sizeof(float)) == 0);
            rnn_model_free(m);
            rnn_model_free(l);
        }
}

static void test_garbage_and_empty_files(void) {
    char path[512];
    unsigned char junk[1000];
    size_t i;
    uint32_t seed = 9;
    for (i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(h_rand(&seed) * 127.0f + 128.0f);
    path_in(path, sizeof path, "garbage.safetensors");
    CHECK(write_all(path, junk, sizeof junk));
    load_fails(path, RNN_ERR_FORMAT);
    CHECK(write_all(path, "hello, world\n", 13));
    load_fails(path, RNN_ERR_FORMAT);
    CHECK(write_all(path, "", 0));
    load_fails(path, RNN_ERR_FORMAT);
    /* a valid safetensors file that is not a model */
    {
        static const char empty_st[] = "{}      ";
        unsigned char buf[8 + 8];
        uint64_t hl = 8;
        for (i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
        memcpy(buf + 8, empty_st, 8);
        CHECK(write_all(path, buf, sizeof buf));
        load_fails(path, RNN_ERR_FORMAT);
    }
}

static void test_every_truncation_is_format(void) {
    char good[512], cut[512];
    rnn_model *m = small_model(RNN_CELL_LSTM, 1);
    unsigned char *bytes;
    size_t n = 0, len;
    path_in(good, sizeof good, "good.safetensors");
    path_in(cut, sizeof cut, "cut.safetensors");
    if (!m) return;
    OK(rnn_model_save(m, good));
    bytes = read_all(good, &n);
    CHECK(bytes != NULL && n > 100);
    if (!bytes) return;
    for (len = 0; len < n; len++) {
        CHECK(write_all(cut, bytes, len));
        load_fails(cut, RNN_ERR_FORMAT);
    }
    /* and one byte too many */
    {
        unsigned char *longer = h_xmalloc(n + 1);
        memcpy(longer, bytes, n);
        longer[n] = 0;
        CHECK(write_all(cut, longer, n + 1));
        load_fails(cut, RNN_ERR_FORMAT);
        free(longer);
    }
    free(bytes);
    rnn_model_free(m);
}

static void test_corrupted_header(void) {
    char good[512], bad[512];
    rnn_model *m = small_model(RNN_CELL_GRU, 2);
    unsigned char *bytes;
    size_t n = 0, header_len = 0, i, formats = 0;
    int k;
    path_in(good, sizeof good, "good.safetensors");
    path_in(bad, sizeof bad, "bad.safetensors");
    if (!m) return;
    OK(rnn_model_save(m, good));
    bytes = read_all(good, &n);
    if (!bytes) return;
    for (k = 0; k < 8; k++) header_len |= (size_t)bytes[k] << (8 * k);
    CHECK(header_len > 2 && 8 + header_len < n);
    /* the JSON's opening brace */
    bytes[8] ^= 0x01;
    CHECK(write_all(bad, bytes, n));
    load_fails(bad, RNN_ERR_FORMAT);
    bytes[8] ^= 0x01;
    /* absurd header lengths */
    {
        static const uint64_t lens[] = {UINT64_MAX, (uint64_t)1 << 40, (uint64_t)1 << 32, 0, 1};
        size_t j;
        unsigned char saved[8];
        memcpy(saved, bytes, 8);
        for (j = 0; j < sizeof lens / sizeof *lens; j++) {
            for (k = 0; k < 8; k++) bytes[k] = (unsigned char)(lens[j] >> (8 * k));
            CHECK(write_all(bad, bytes, n));
            load_fails(bad, RNN_ERR_FORMAT);
        }
        for (k = 0; k < 8; k++) bytes[k] = (unsigned char)((uint64_t)n >> (8 * k));
        CHECK(write_all(bad, bytes, n));
        load_fails(bad, RNN_ERR_FORMAT);
        memcpy(bytes, saved, 8);
    }
    /* every single header byte flipped: a FORMAT error or a model, never IO or a crash */
    for (i = 8; i < 8 + header_len; i++) {
        rnn_model *l = NULL;
        rnn_status s;
        bytes[i] ^= 0x5A;
        CHECK(write_all(bad, bytes, n));
        s = rnn_model_load(bad, &l);
        CHECK(s == RNN_OK || s == RNN_ERR_FORMAT);
        if (s == RNN_OK) {
            CHECK(l != NULL);
            rnn_model_free(l);
        } else {
            CHECK(l == NULL);
            formats++;
        }
        bytes[i] ^= 0x5A;
    }
    CHECK(formats > header_len / 2);
    /* a NaN weight is a format error too (it is the last float of the file) */
    {
        float nan = NAN;
        memcpy(bytes + n - 4, &nan, 4);
        CHECK(write_all(bad, bytes, n));
        load_fails(bad, RNN_ERR_FORMAT);
    }
    free(bytes);
    rnn_model_free(m);
}

static void test_unreadable_paths_are_io(void) {
    char path[512];
    load_fails(g_dir, RNN_ERR_IO); /* a directory */
    path_in(path, sizeof path, "does-not-exist.safetensors");
    load_fails(path, RNN_ERR_IO);
    path_in(path, sizeof path, "no-such-dir/model.safetensors");
    load_fails(path, RNN_ERR_IO);
    load_fails("", RNN_ERR_IO);
}

static void test_save_failures_leave_nothing(void) {
    char path[512], sub[512];
    rnn_model *m = small_model(RNN_CELL_RNN_RELU, 3);
    size_t before = entries_in(g_dir);
    struct stat st;
    if (!m) return;
    path_in(path, sizeof path, "missing-dir/model.safetensors");
    FAILS(rnn_model_save(m, path), RNN_ERR_IO, NULL);
    path_in(sub, sizeof sub, "missing-dir");
    CHECK(stat(sub, &st) != 0);
    /* saving over a directory */
    path_in(sub, sizeof sub, "a-directory");
    CHECK(mkdir(sub, 0700) == 0);
    FAILS(rnn_model_save(m, sub), RNN_ERR_IO, NULL);
    CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(rmdir(sub) == 0);
    CHECK(entries_in(g_dir) == before);
    rnn_model_free(m);
}

/* A save that fails half-way (the file size limit is hit while writing) leaves an existing
   file byte-identical and no temporary file behind; a save that succeeds replaces it. */
static void test_save_is_atomic(void) {
    char path[600], dir[512];
    rnn_model *a = small_model(RNN_CELL_LSTM, 10), *b = NULL, *l = NULL;
    rnn_config big = h_config(RNN_CELL_LSTM, 2, 64, 2, 2, RNN_OUTPUT_SOFTMAX);
    unsigned char *orig, *after;
    size_t n = 0, m_len = 0;
    struct rlimit old, lim;
    float ya[2 * 4 * 2], yl[2 * 4 * 2];
    OK(rnn_model_new(&big, 11, &b));
    if (!a || !b) return;
    path_in(dir, sizeof dir, "atomic");
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    OK(rnn_model_save(a, path));
    orig = read_all(path, &n);
    if (!orig) return;

    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 4096; /* b's file is ~140 KB: its write fails part-way */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    FAILS(rnn_model_save(b, path), RNN_ERR_IO, NULL);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);

    after = read_all(path, &m_len);
    CHECK(after != NULL && m_len == n && memcmp(orig, after, n) == 0);
    CHECK(entries_in(dir) == 1); /* no temporary file left */
    free(after);

    OK(rnn_model_save(b, path)); /* now it succeeds and replaces the file whole */
    OK(rnn_model_load(path, &l));
    if (l) {
        outputs(b, ya, sizeof ya / sizeof *ya);
        outputs(l, yl, sizeof yl / sizeof *yl);
        CHECK(memcmp(ya, yl, sizeof ya) == 0);
        rnn_model_free(l);
    }
    CHECK(entries_in(dir) == 1);
    CHECK(unlink(path) == 0);
    CHECK(rmdir(dir) == 0);
    free(orig);
    rnn_model_free(a);
    rnn_model_free(b);
}

/* File names are bytes: a name that is not UTF-8 works. */
static void test_non_utf8_path(void) {
    char path[512];
    rnn_model *m = small_model(RNN_CELL_GRU_LBR, 4), *l = NULL;
    if (!m) return;
    path_in(path, sizeof path, "caf\xe9-\xff.safetensors");
    OK(rnn_model_save(m, path));
    OK(rnn_model_load(path, &l));
    CHECK(l != NULL);
    rnn_model_free(l);
    CHECK(unlink(path) == 0);
    rnn_model_free(m);
}

/* A small RTNeural Keras export: time-distributed dense (tanh), LSTM of 2 units, dense
   (sigmoid), dense (linear). */
static const char keras_json[] =
    "{\"in_shape\": [null, null, 1], \"layers\": ["
    "{\"type\": \"time-distributed-dense\", \"activation\": \"tanh\", \"shape\": [null, null, 2],"
    " \"weights\": [[[0.5, -0.25]], [0.1, 0.0]]},"
    "{\"type\": \"lstm\", \"activation\": \"tanh\", \"shape\": [null, null, 2], \"weights\": ["
    " [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8]],"
    " [[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4], [0.4, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3]],"
    " [0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 0.1]]},"
    "{\"type\": \"dense\", \"activation\": \"sigmoid\", \"shape\": [null, null, 2],"
    " \"weights\": [[[0.3, -0.3], [0.6, 0.2]], [0.0, 0.1]]},"
    "{\"type\": \"dense\", \"activation\": \"\", \"shape\": [null, null, 1],"
    " \"weights\": [[[0.3], [0.7]], [0.05]]}]}";

/* A GuitarML / Automated-GuitarAmpModelling SimpleRNN: GRU of 1 unit, skip. */
static const char guitarml_json[] =
    "{\"model_data\": {\"model\": \"SimpleRNN\", \"input_size\": 1, \"skip\": 1,"
    " \"output_size\": 1, \"unit_type\": \"GRU\", \"num_layers\": 1, \"hidden_size\": 1,"
    " \"bias_fl\": true}, \"state_dict\": {"
    "\"rec.weight_ih_l0\": [[0.5], [-0.5], [0.25]], \"rec.weight_hh_l0\": [[0.1], [0.2], [0.3]],"
    " \"rec.bias_ih_l0\": [0.0, 0.1, 0.2], \"rec.bias_hh_l0\": [0.3, 0.2, 0.1],"
    " \"lin.weight\": [[0.9]], \"lin.bias\": [0.01]}}";

/* `text` with the first occurrence of `from` replaced by `to`, into `buf`. */
static const char *edited(char *buf, size_t n, const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    CHECK(at != NULL);
    if (!at) return text;
    snprintf(buf, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return buf;
}

/* Loading `text` must fail with RNN_ERR_FORMAT and a message containing `says`. */
static void json_fails(const char *text, size_t len, const char *says) {
    char path[512];
    path_in(path, sizeof path, "bad.json");
    CHECK(write_all(path, text, len));
    load_fails(path, RNN_ERR_FORMAT);
    if (says && !strstr(rnn_last_error(), says)) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", rnn_last_error(), says);
        CHECK(0);
    }
}

/* json_fails on `text` with `from` replaced by `to`. */
static void edit_fails(const char *text, const char *from, const char *to, const char *says) {
    char buf[4096];
    const char *t = edited(buf, sizeof buf, text, from, to);
    json_fails(t, strlen(t), says);
}

static void test_json_models_load_and_round_trip(void) {
    const char *texts[2];
    size_t t;
    char path[512], saved[512];
    texts[0] = keras_json;
    texts[1] = guitarml_json;
    path_in(path, sizeof path, "model.json");
    path_in(saved, sizeof saved, "model.safetensors");
    for (t = 0; t < 2; t++) {
        rnn_model *m = NULL, *l = NULL;
        rnn_state *s = NULL;
        rnn_config c;
        float x[16], ya[16], yb[16], ys[16];
        size_t i;
        CHECK(write_all(path, texts[t], strlen(texts[t])));
        OK(rnn_model_load(path, &m));
        if (!m) continue;
        OK(rnn_model_config(m, &c));
        CHECK(c.input_size == 1 && c.output_size == 1);
        CHECK(rnn_model_output_size(m) == 1);
        for (i = 0; i < 16; i++) x[i] = 0.3f * (float)((int)(i % 5) - 2);
        OK(rnn_model_forward(m, x, 1, 16, ya, 16));
        /* the streaming step gives the same outputs */
        OK(rnn_state_new(m, 1, &s));
        for (i = 0; i < 16; i++) OK(rnn_model_step(m, s, x + i, 1, ys + i, 1));
        for (i = 0; i < 16; i++) CHECK(fabsf(ys[i] - ya[i]) < 1e-6f);
        rnn_state_free(s);
        /* and the canonical safetensors file gives the same bits */
        OK(rnn_model_save(m, saved));
        OK(rnn_model_load(saved, &l));
        if (l) {
            OK(rnn_model_forward(l, x, 1, 16, yb, 16));
            CHECK(memcmp(ya, yb, sizeof ya) == 0);
            rnn_model_free(l);
        }
        rnn_model_free(m);
    }
}

static void test_bad_json_models_are_format(void) {
    size_t n, len = strlen(keras_json);
    /* every truncation of a valid file */
    for (n = 1; n < len; n += 7) json_fails(keras_json, n, NULL);
    for (n = 1; n < strlen(guitarml_json); n += 11) json_fails(guitarml_json, n, NULL);
    /* unknown layer, named */
    edit_fails(keras_json, "\"lstm\"", "\"conv1d\"", "conv1d");
    /* wrong shapes: a kernel row of the wrong width, a dense that does not chain */
    edit_fails(keras_json, "[[0.5, -0.25]]", "[[0.5, -0.25, 1.0]]", NULL);
    edit_fails(keras_json, "[[0.3], [0.7]]", "[[0.3], [0.7], [0.1]]", "rows");
    /* missing keys */
    edit_fails(keras_json, "\"weights\"", "\"weightz\"", "weights");
    edit_fails(guitarml_json, "\"lin.bias\"", "\"lin.bogus\"", "lin.bogus");
    edit_fails(guitarml_json, "\"hidden_size\": 1", "\"hidden_size\": 2", "hidden_size");
    /* non-finite weights: a NaN literal is not JSON; 1e99 overflows f32 */
    edit_fails(keras_json, "0.05]", "NaN]", NULL);
    edit_fails(guitarml_json, "0.01]", "1e99]", "finite");
    /* other architectures, named */
    edit_fails(guitarml_json, "\"GRU\"", "\"LSTMCell\"", "LSTMCell");
    {
        static const char wavenet[] = "{\"version\": \"0.5.4\", \"architecture\": \"WaveNet\","
                                      " \"config\": {}, \"weights\": []}";
        static const char future[] = "{\"version\": \"0.9.0\", \"architecture\": \"LSTM\","
                                     " \"config\": {}, \"weights\": []}";
        static const char other[] = "{\"something\": 1}";
        json_fails(wavenet, strlen(wavenet), "WaveNet");
        json_fails(future, strlen(future), "version");
        json_fails(other, strlen(other), "unrecognised");
    }
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    int rc;
    snprintf(g_dir, sizeof g_dir, "%s/rnncore-io-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_round_trip_every_cell);
    RUN(test_garbage_and_empty_files);
    RUN(test_every_truncation_is_format);
    RUN(test_corrupted_header);
    RUN(test_unreadable_paths_are_io);
    RUN(test_save_failures_leave_nothing);
    RUN(test_save_is_atomic);
    RUN(test_non_utf8_path);
    RUN(test_json_models_load_and_round_trip);
    RUN(test_bad_json_models_are_format);
    remove_dir(g_dir);
    rc = SUMMARY();
    return rc;
}
