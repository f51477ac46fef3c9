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
    remove_dir(g_dir);
    rc = SUMMARY();
    return rc;
}
