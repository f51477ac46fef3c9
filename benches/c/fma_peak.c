/* One core's multiply-add peak, the yardstick for "fraction of the FMA peak": 12
 * independent chains of fused multiply-adds (enough to cover the latency on two FMA
 * ports), 512-bit then 256-bit. No rnncore code.
 *
 *   gcc -O3 -march=native benches/c/fma_peak.c -o fma_peak && taskset -c 0 ./fma_peak
 *
 * Built without AVX-512 (-mno-avx512f) it reports the 256-bit rate only.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const long n = 200000000;
    float s = 0;
#ifdef __AVX512F__
    {
        __m512 a[12], m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
        for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps((float)j);
        double t0 = now();
        for (long i = 0; i < n; i++)
            for (int j = 0; j < 12; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
        double t = now() - t0;
        for (int j = 0; j < 12; j++) s += _mm512_reduce_add_ps(a[j]);
        printf("512-bit: %.1f GFLOP/s\n", 2.0 * 16 * 12 * n / t / 1e9);
    }
#endif
    {
        __m256 b[12], m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
        for (int j = 0; j < 12; j++) b[j] = _mm256_set1_ps((float)j);
        double t0 = now();
        for (long i = 0; i < n; i++)
            for (int j = 0; j < 12; j++) b[j] = _mm256_fmadd_ps(b[j], m, c);
        double t = now() - t0;
        float v[8];
        for (int j = 0; j < 12; j++) {
            _mm256_storeu_ps(v, b[j]);
            s += v[0];
        }
        printf("256-bit: %.1f GFLOP/s\n", 2.0 * 8 * 12 * n / t / 1e9);
    }
    printf("(%g)\n", s);
    return 0;
}
