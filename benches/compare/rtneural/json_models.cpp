// rnncore vs RTNeural on the same model files: RTNeural's own Keras-exported JSON models
// (models/lstm.json, gru.json, ...), each loaded both ways and stepped one sample at a time.
//   RTNeural: RTNeural::json_parser::parseJson<float> (its run-time Model<float>, the way
//             a plugin loads a model file), model->forward(&x) per sample.
//   RTNeural ModelT: for the four files RTNeural's own tests spell out as compile-time
//             models (tests/functional/sample_rate_rnn_test.cpp: ModelT<float, 1, 1,
//             DenseT, TanhActivationT, LSTMLayerT, ...>), that model, its weights read by
//             ModelT::parseJson from the same file: what a plugin built for one model runs.
//   rnncore:  rnn_model_load on the same file, rnn_model_step per sample ("step") and
//             rnn_model_forward_state on blocks of 512 samples ("block"), through the C ABI.
// Before timing, all three paths run the same 4096 samples from a zero state and the
// largest output difference is printed (the run fails above 1e-4).
//
// Timing as in bench.cpp: `rounds` rounds, the three paths back to back in an order rotated
// round by round, each over N samples (one timing lasts at least ~5 ms); ns per sample,
// median over rounds, and rnncore's ratio to RTNeural (below 1: rnncore is faster).
//
//   json_models ROUNDS MODEL.json [MODEL.json ...]     (run by benches/compare/rtneural.sh)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <RTNeural/RTNeural.h>

#include "rnncore.h"
#include "timing.hpp"

namespace {

using namespace bench;


// RTNeural's compile-time model of a file's architecture, timed in its own loop (the
// layers inlined into it, as in a plugin).
struct Fixed {
    virtual ~Fixed() = default;
    virtual void load(const std::string& path) = 0;
    virtual void reset() = 0;
    virtual float forward(const float* x) = 0;
    virtual double time(const std::vector<float>& x, size_t n) = 0;
};

template <typename M>
struct FixedT final : Fixed {
    M m;
    void load(const std::string& path) override {
        std::ifstream in(path, std::ifstream::binary);
        if (!in) die("cannot open " + path);
        m.parseJson(in);
    }
    void reset() override { m.reset(); }
    float forward(const float* x) override { return m.forward(x); }
    double time(const std::vector<float>& x, size_t n) override {
        return time_forward([&](const float* v) { return m.forward(v); }, x, n);
    }
};

// The compile-time model for the file `name` (RTNeural's models/), where its tests give
// one; null for other files.
std::unique_ptr<Fixed> fixed_model(const std::string& name) {
    using namespace RTNeural;
    if (name == "lstm.json")
        return std::make_unique<FixedT<ModelT<float, 1, 1, DenseT<float, 1, 8>, TanhActivationT<float, 8>,
                                              LSTMLayerT<float, 8, 8>, DenseT<float, 8, 1>>>>();
    if (name == "lstm_1d.json")
        return std::make_unique<FixedT<ModelT<float, 1, 1, LSTMLayerT<float, 1, 8>, DenseT<float, 8, 1>>>>();
    if (name == "gru.json")
        return std::make_unique<FixedT<ModelT<float, 1, 1, DenseT<float, 1, 8>, TanhActivationT<float, 8>,
                                              GRULayerT<float, 8, 8>, DenseT<float, 8, 8>,
                                              SigmoidActivationT<float, 8>, DenseT<float, 8, 1>>>>();
    if (name == "gru_1d.json")
        return std::make_unique<FixedT<ModelT<float, 1, 1, GRULayerT<float, 1, 8>, DenseT<float, 8, 8>,
                                              SigmoidActivationT<float, 8>, DenseT<float, 8, 1>>>>();
    return nullptr;
}

struct Case {
    std::string name;
    std::unique_ptr<RTNeural::Model<float>> rt;
    std::unique_ptr<Fixed> fixed;
    rnn_model* model = nullptr;
    rnn_state* step_state = nullptr;
    rnn_state* block_state = nullptr;
    std::vector<float> x, y;
    size_t n = kCheckLen;
    float diff = 0;
    float diff_fixed = 0;
    std::vector<double> t_rt, t_step, t_block, t_fixed;

    ~Case() {
        rnn_state_free(block_state);
        rnn_state_free(step_state);
        rnn_model_free(model);
    }

    double time_rtneural() {
        return time_forward([&](const float* v) { return rt->forward(v); }, x, n);
    }
    double time_fixed() { return fixed->time(x, n); }
    double time_step() { return bench::time_step(model, step_state, x, n); }
    double time_block() { return bench::time_block(model, block_state, x, y, n); }

    void prepare(const std::string& path) {
        const size_t slash = path.find_last_of('/');
        name = slash == std::string::npos ? path : path.substr(slash + 1);
        std::ifstream in(path);
        if (!in) die("cannot open " + path);
        rt = RTNeural::json_parser::parseJson<float>(in);
        if (!rt) die("RTNeural could not load " + path);
        if (rt->getInSize() != 1 || rt->getOutSize() != 1)
            die(path + ": this benchmark takes models of 1 input and 1 output");
        check(rnn_model_load(path.c_str(), &model), "rnn_model_load");
        if (rnn_model_output_size(model) != 1) die(path + ": rnncore sees another output size");
        check(rnn_state_new(model, 1, &step_state), "rnn_state_new");
        check(rnn_state_new_block(model, 1, kBlock, &block_state), "rnn_state_new_block");
        rt->reset();

        const auto d = check_paths(model, step_state, block_state, x, y,
                                   [&](const float* v) { return rt->forward(v); });
        diff = std::max(d.first, d.second);
        if (!(diff <= kMaxDiff)) {
            std::fprintf(stderr, "%s: outputs differ by %g (limit %g)\n", name.c_str(), diff, kMaxDiff);
            std::exit(1);
        }
        fixed = fixed_model(name);
        if (fixed) {
            // The compile-time model against RTNeural's run-time one on the check input.
            fixed->load(path);
            fixed->reset();
            rt->reset();
            for (size_t i = 0; i < x.size(); i++)
                diff_fixed = std::max(diff_fixed, std::fabs(fixed->forward(&x[i]) - rt->forward(&x[i])));
            if (!(diff_fixed <= kMaxDiff)) {
                std::fprintf(stderr, "%s: RTNeural's ModelT and Model differ by %g\n", name.c_str(), diff_fixed);
                std::exit(1);
            }
        }
        n = timing_len(std::min({time_rtneural(), time_step(), time_block()}));
        x = make_input(n, 777u);
        y.assign(n, 0.0f);
    }

    void run_round(int order) {
        const int paths = fixed ? 4 : 3;
        for (int k = 0; k < paths; k++) {
            switch ((order + k) % paths) {
                case 0: t_rt.push_back(time_rtneural()); break;
                case 1: t_step.push_back(time_step()); break;
                case 2: t_block.push_back(time_block()); break;
                default: t_fixed.push_back(time_fixed()); break;
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) die("usage: json_models ROUNDS MODEL.json [MODEL.json ...]");
    char* end = nullptr;
    const long rounds = std::strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || rounds < 1 || rounds > 1000)
        die("rounds must be an integer in 1..1000");
    std::vector<std::unique_ptr<Case>> cases;
    for (int i = 2; i < argc; i++) {
        cases.push_back(std::make_unique<Case>());
        cases.back()->prepare(argv[i]);
    }
    for (long r = 0; r < rounds; r++)
        for (auto& c : cases) c->run_round((int)(r % 4));

    std::printf("Models loaded from the same file both ways, tier `%s`, %ld rounds, ns per sample "
                "(median; ratio to RTNeural):\n\n",
                rnn_kernel_name(), rounds);
    std::printf("| model file | RTNeural (parseJson) | rnncore step | rnncore block | max |diff| "
                "| RTNeural ModelT | step / ModelT | block / ModelT |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (auto& c : cases) {
        const double rt = median(c->t_rt), st = median(c->t_step), bl = median(c->t_block);
        std::printf("| %s | %.1f | %.1f (%.2f) | %.1f (%.2f) | %.1e |", c->name.c_str(), rt, st,
                    st / rt, bl, bl / rt, (double)c->diff);
        if (c->fixed) {
            const double fx = median(c->t_fixed);
            std::printf(" %.1f | %.2f | %.2f |\n", fx, st / fx, bl / fx);
        } else {
            std::printf(" | | |\n");
        }
    }
    std::printf("\n");
    return 0;
}
