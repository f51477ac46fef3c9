// What bench.cpp and json_models.cpp share: errors, the clock, the input signal, medians,
// and the timing of rnncore's two streaming paths through the C ABI.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "rnncore.h"

namespace bench {

constexpr size_t kBlock = 512;       // rnncore block path: samples per rnn_model_forward_state
constexpr size_t kCheckLen = 4096;   // samples of the equivalence check
constexpr double kMinTimingNs = 5e6; // each timing runs at least this long (about)
constexpr float kMaxDiff = 1e-4f;    // the equivalence check fails above this

[[noreturn]] inline void die(const std::string& what) {
    std::fprintf(stderr, "bench: %s\n", what.c_str());
    std::exit(1);
}

inline void check(rnn_status s, const char* what) {
    if (s != RNN_OK)
        die(std::string(what) + ": " + rnn_status_str(s) + ": " + rnn_last_error());
}

inline double now_ns() {
    return (double)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A realistic audio-like input in [-1, 1]: two sines plus a little noise.
inline std::vector<float> make_input(size_t len, uint32_t seed) {
    std::vector<float> x(len);
    uint32_t r = seed;
    for (size_t i = 0; i < len; i++) {
        r = r * 1664525u + 1013904223u;
        const float noise = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.04f;
        const double p = 2.0 * 3.14159265358979323846 * (double)i;
        x[i] = (float)(0.6 * std::sin(p * 220.0 / 48000.0) + 0.3 * std::sin(p * 1375.0 / 48000.0)) + noise;
    }
    return x;
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

inline volatile float g_sink;  // keeps the outputs observable

// ns per sample of `forward(&x[i])` over x[0..n), one sample per call: an RTNeural
// model's forward, inlined into the loop as a plugin's audio callback would have it.
template <typename Forward>
double time_forward(Forward&& forward, const std::vector<float>& x, size_t n) {
    float acc = 0;
    const double t0 = now_ns();
    for (size_t i = 0; i < n; i++) acc += forward(&x[i]);
    const double dt = now_ns() - t0;
    g_sink = acc;
    return dt / (double)n;
}

// ns per sample of rnn_model_step over x[0..n), one sample per call (1 input, 1 output).
inline double time_step(const rnn_model* model, rnn_state* state, const std::vector<float>& x, size_t n) {
    float acc = 0, out = 0;
    const double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        rnn_status s = rnn_model_step(model, state, &x[i], 1, &out, 1);
        if (s != RNN_OK) check(s, "rnn_model_step");
        acc += out;
    }
    const double dt = now_ns() - t0;
    g_sink = acc;
    return dt / (double)n;
}

// ns per sample of rnn_model_forward_state over x[0..n) in blocks of kBlock (n a multiple).
inline double time_block(const rnn_model* model, rnn_state* state, const std::vector<float>& x,
                         std::vector<float>& y, size_t n) {
    const double t0 = now_ns();
    for (size_t i = 0; i < n; i += kBlock) {
        rnn_status s = rnn_model_forward_state(model, state, &x[i], kBlock, &y[i], kBlock);
        if (s != RNN_OK) check(s, "rnn_model_forward_state");
    }
    const double dt = now_ns() - t0;
    g_sink = y[n - 1];
    return dt / (double)n;
}

// The equivalence check: x = the check input, run from zero state through rnncore's block
// path (into y) and its step path, each step's output compared with ref(&x[i]) (the other
// library's, called in order) and with the block's. Returns {max |step - ref|,
// max |step - block|}.
template <class Ref>
std::pair<float, float> check_paths(const rnn_model* model, rnn_state* step_state, rnn_state* block_state,
                                    std::vector<float>& x, std::vector<float>& y, Ref ref) {
    x = make_input(kCheckLen, 12345u);
    y.assign(kCheckLen, 0.0f);
    for (size_t i = 0; i < kCheckLen; i += kBlock)
        check(rnn_model_forward_state(model, block_state, &x[i], kBlock, &y[i], kBlock),
              "rnn_model_forward_state");
    float to_ref = 0, to_block = 0;
    for (size_t i = 0; i < kCheckLen; i++) {
        float out = 0;
        check(rnn_model_step(model, step_state, &x[i], 1, &out, 1), "rnn_model_step");
        to_ref = std::max(to_ref, std::fabs(out - ref(&x[i])));
        to_block = std::max(to_block, std::fabs(out - y[i]));
    }
    return {to_ref, to_block};
}

// Samples per timing for a path that took `fastest_ns` per sample: about kMinTimingNs,
// at least kCheckLen, whole blocks.
inline size_t timing_len(double fastest_ns) {
    const double want = std::ceil(kMinTimingNs / std::max(fastest_ns, 0.1));
    return std::max(kCheckLen, ((size_t)want + kBlock - 1) / kBlock * kBlock);
}

}  // namespace bench
