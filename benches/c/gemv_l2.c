/* What bounds a single-stream LSTM step at H = 128 on an AVX-512 core: the recurrent
 * product alone, in the layout of rnncore's fused kernel, against plain reads of the
 * same bytes. No rnncore code: a yardstick for the step's time.
 *
 *   gcc -O3 -mavx512f -mfma benches/c/gemv_l2.c -o gemv_l2 && taskset -c 0 ./gemv_l2 [U]
 *
 * U unit vectors of 16 (H = 16·U; 8: H = 128, 4: H = 64). The weights are U chunks of H
 * rows of 4 gate vectors (256 bytes a row, 4·H·H floats in all: 256 KiB at H = 128, in L2),
 * as `StreamWeights` lays out the AVX-512 kernel's; `h` is broadcast one element per row.
 * - reads:  the same bytes summed with 16 independent vector adds (a read rate);
 * - pairs:  the kernel's product: even and odd rows in separate sums, 8 chains of FMAs
 *           with the weight as a memory operand (what rnncore's kernel compiles to);
 * - quads:  four partial sums per row (16 chains);
 * - wide:   two unit vectors per pass, even and odd rows (16 chains, 512-byte rows).
 * - reads-zz, pairs-zz: reads and pairs with the order of the U chunks turned back on
 *           every other pass, as the kernels sweep a `W_hh` over 32 KiB (`sweep_chunk`):
 *           a pass then starts on the chunk the pass before read last, still in L1.
 * Every variant's sums feed the next pass, so none is optimised away.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float sink;

/* Chunk i of u in a pass's order: the last first where `back`. */
static int chunk(int i, int u, int back) { return back ? u - 1 - i : i; }

static void reads(const float *w, int u, int rows, int back) {
    __m512 a[16];
    size_t n = (size_t)rows * 64;
    for (int j = 0; j < 16; j++) a[j] = _mm512_setzero_ps();
    for (int i = 0; i < u; i++) {
        const float *wc = w + (size_t)chunk(i, u, back) * n;
        for (size_t k = 0; k < n; k += 256)
            for (int j = 0; j < 16; j++) a[j] = _mm512_add_ps(a[j], _mm512_load_ps(wc + k + 16 * j));
    }
    for (int j = 1; j < 16; j++) a[0] = _mm512_add_ps(a[0], a[j]);
    sink += _mm512_reduce_add_ps(a[0]);
}

static void pairs(const float *w, const float *h, int u, int rows, int back) {
    __m512 keep = _mm512_setzero_ps();
    for (int i = 0; i < u; i++) {
        const float *wc = w + (size_t)chunk(i, u, back) * rows * 64;
        __m512 e[4], o[4];
        for (int v = 0; v < 4; v++) e[v] = o[v] = _mm512_setzero_ps();
        for (int p = 0; p < rows; p += 2) {
            __m512 a0 = _mm512_set1_ps(h[p]), a1 = _mm512_set1_ps(h[p + 1]);
            const float *r = wc + (size_t)p * 64;
            for (int v = 0; v < 4; v++) {
                e[v] = _mm512_fmadd_ps(a0, _mm512_load_ps(r + 16 * v), e[v]);
                o[v] = _mm512_fmadd_ps(a1, _mm512_load_ps(r + 64 + 16 * v), o[v]);
            }
        }
        for (int v = 0; v < 4; v++) keep = _mm512_add_ps(keep, _mm512_add_ps(e[v], o[v]));
    }
    sink += _mm512_reduce_add_ps(keep);
}

static void quads(const float *w, const float *h, int u, int rows) {
    __m512 keep = _mm512_setzero_ps();
    for (int c = 0; c < u; c++) {
        const float *wc = w + (size_t)c * rows * 64;
        __m512 s[16];
        for (int j = 0; j < 16; j++) s[j] = _mm512_setzero_ps();
        for (int p = 0; p < rows; p += 4) {
            const float *r = wc + (size_t)p * 64;
            for (int q = 0; q < 4; q++) {
                __m512 a = _mm512_set1_ps(h[p + q]);
                for (int v = 0; v < 4; v++)
                    s[4 * q + v] = _mm512_fmadd_ps(a, _mm512_load_ps(r + 64 * q + 16 * v), s[4 * q + v]);
            }
        }
        for (int j = 0; j < 16; j++) keep = _mm512_add_ps(keep, s[j]);
    }
    sink += _mm512_reduce_add_ps(keep);
}

static void wide(const float *w, const float *h, int u, int rows) {
    __m512 keep = _mm512_setzero_ps();
    for (int c = 0; c + 1 < u; c += 2) {
        const float *wc = w + (size_t)c * rows * 64;
        __m512 e[8], o[8];
        for (int v = 0; v < 8; v++) e[v] = o[v] = _mm512_setzero_ps();
        for (int p = 0; p < rows; p += 2) {
            __m512 a0 = _mm512_set1_ps(h[p]), a1 = _mm512_set1_ps(h[p + 1]);
            const float *r = wc + (size_t)p * 128;
            for (int v = 0; v < 8; v++) {
                e[v] = _mm512_fmadd_ps(a0, _mm512_load_ps(r + 16 * v), e[v]);
                o[v] = _mm512_fmadd_ps(a1, _mm512_load_ps(r + 128 + 16 * v), o[v]);
            }
        }
        for (int v = 0; v < 8; v++) keep = _mm512_add_ps(keep, _mm512_add_ps(e[v], o[v]));
    }
    sink += _mm512_reduce_add_ps(keep);
}

int main(int argc, char **argv) {
    int u = argc > 1 ? atoi(argv[1]) : 8;
    if (u < 2 || u > 64 || u % 2) {
        fprintf(stderr, "usage: gemv_l2 [U: even, 2..64]\n");
        return 2;
    }
    int rows = 16 * u;
    size_t n = (size_t)u * rows * 64;
    float *w = aligned_alloc(64, n * sizeof(float));
    float *h = aligned_alloc(64, 64 * (size_t)u * sizeof(float));
    if (!w || !h) return 1;
    for (size_t i = 0; i < n; i++) w[i] = 1e-4f * (float)(i % 13);
    for (int i = 0; i < rows; i++) h[i] = 0.01f * (float)i;
    long reps = (long)(2e10 / (double)(n * sizeof(float)));
    printf("H = %d, W_hh %zu KiB, %ld passes each, one thread\n", rows, n * 4 / 1024, reps);
    const char *name[] = {"reads", "pairs", "quads", "wide", "reads-zz", "pairs-zz"};
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 6; k++) {
            double t0 = now();
            for (long r = 0; r < reps; r++) {
                switch (k) {
                case 0: reads(w, u, rows, 0); break;
                case 1: pairs(w, h, u, rows, 0); break;
                case 2: quads(w, h, u, rows); break;
                case 3: wide(w, h, u, rows); break;
                case 4: reads(w, u, rows, r & 1); break;
                default: pairs(w, h, u, rows, r & 1); break;
                }
                h[r % rows] += sink * 1e-30f;
            }
            double s = now() - t0;
            printf("%-8s %7.3f us a pass, %6.1f GB/s\n", name[k], s / reps * 1e6,
                   (double)reps * n * sizeof(float) / s / 1e9);
        }
    }
    printf("(%g)\n", sink);
    return 0;
}
