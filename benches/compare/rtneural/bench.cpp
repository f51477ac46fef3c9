// rnncore vs RTNeural: streaming latency of one small recurrent model, one sample at a time.
//
// For cell in {LSTM, GRU} and H in {8, 16, 24, 32, 40, 64, 128}: one recurrent layer, 1
// input, a dense head to 1 output, batch 1, f32; and two stacked layers at H = 16 and 32.
//   RTNeural: compile-time ModelT<float, 1, 1, LSTMLayerT<float, 1, H> (or GRULayerT),
//             [LSTMLayerT<float, H, H>,] DenseT<float, H, 1>>, model.forward(&x) per
//             sample (Eigen backend).
//   rnncore:  rnn_model_step per sample ("step"), and rnn_model_forward_state on blocks
//             of 512 samples ("block"), through the C ABI.
// Both models hold the same weights: rnncore draws them (rnn_model_new), saves them with
// rnn_model_save (safetensors, PyTorch state_dict names), and this program reads that
// file and loads it into RTNeural. Before timing, both run the same 4096 samples from a
// zero state and the largest output difference is printed (and checked).
//
// Timing: `rounds` rounds (argv[1], default 5); in each round every config runs its three
// paths back to back (their order rotated round by round), each over N samples, N chosen
// per config so one timing takes at least ~5 ms. Per path: min and median over rounds
// of the nanoseconds per sample. Output: a markdown table on stdout.
//
// Built and run by benches/compare/rtneural.sh (RTNEURAL_DIR=... bash benches/compare/rtneural.sh).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include <RTNeural/RTNeural.h>

#include "rnncore.h"
#include "timing.hpp"

#ifndef BENCH_CXXFLAGS
#define BENCH_CXXFLAGS "(unknown flags)"
#endif
#ifndef RTNEURAL_COMMIT
#define RTNEURAL_COMMIT "(unknown commit)"
#endif

namespace {

using namespace bench;





// ---- a minimal JSON reader: enough for a safetensors header ------------------------

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    double num = 0;
    std::string str;
    std::vector<Json> arr;
    std::map<std::string, Json> obj;
};

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : s_(text) {}

    Json parse() {
        Json v = value();
        ws();
        if (i_ != s_.size()) fail("trailing characters");
        return v;
    }

private:
    const std::string& s_;
    size_t i_ = 0;

    [[noreturn]] void fail(const char* why) {
        die(std::string("safetensors header: ") + why + " at byte " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
    }
    char peek() {
        ws();
        if (i_ >= s_.size()) fail("unexpected end");
        return s_[i_];
    }
    void expect(char c) {
        if (peek() != c) fail("unexpected character");
        i_++;
    }
    bool literal(const char* word) {
        size_t n = std::strlen(word);
        if (s_.compare(i_, n, word) != 0) return false;
        i_ += n;
        return true;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (true) {
            if (i_ >= s_.size()) fail("unterminated string");
            char c = s_[i_++];
            if (c == '"') return out;
            if (c == '\\') {
                if (i_ >= s_.size()) fail("unterminated escape");
                char e = s_[i_++];
                switch (e) {
                    case 'n': out += '\n'; break;
                    case 't': out += '\t'; break;
                    case 'r': out += '\r'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'u':  // not needed for tensor names: keep it verbatim
                        out += "\\u";
                        break;
                    default: out += e; break;  // " \ /
                }
            } else {
                out += c;
            }
        }
    }
    Json value() {
        Json v;
        char c = peek();
        if (c == '{') {
            v.kind = Json::Object;
            i_++;
            if (peek() == '}') { i_++; return v; }
            while (true) {
                std::string key = string();
                expect(':');
                v.obj[key] = value();
                if (peek() == ',') { i_++; continue; }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            v.kind = Json::Array;
            i_++;
            if (peek() == ']') { i_++; return v; }
            while (true) {
                v.arr.push_back(value());
                if (peek() == ',') { i_++; continue; }
                expect(']');
                return v;
            }
        }
        if (c == '"') {
            v.kind = Json::String;
            v.str = string();
            return v;
        }
        if (literal("true")) { v.kind = Json::Bool; v.num = 1; return v; }
        if (literal("false")) { v.kind = Json::Bool; return v; }
        if (literal("null")) return v;
        const char* begin = s_.c_str() + i_;
        char* end = nullptr;
        v.num = std::strtod(begin, &end);
        if (end == begin) fail("not a JSON value");
        v.kind = Json::Number;
        i_ += (size_t)(end - begin);
        return v;
    }
};

// ---- rnncore's weights, read back from the safetensors file it saves -----------------

struct Tensor {
    std::vector<size_t> shape;
    std::vector<float> data;
};

std::map<std::string, Tensor> read_safetensors(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) die("cannot open " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() < 8) die(path + ": too short for safetensors");
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | (uint8_t)bytes[(size_t)k];  // little-endian
    if (n > bytes.size() - 8) die(path + ": header length past the end");
    const std::string header(bytes.data() + 8, (size_t)n);
    const char* data = bytes.data() + 8 + n;
    const size_t data_len = bytes.size() - 8 - (size_t)n;

    Json root = JsonParser(header).parse();
    if (root.kind != Json::Object) die(path + ": header is not a JSON object");
    std::map<std::string, Tensor> out;
    for (const auto& kv : root.obj) {
        if (kv.first == "__metadata__") continue;
        const Json& t = kv.second;
        auto dtype = t.obj.find("dtype");
        auto shape = t.obj.find("shape");
        auto offs = t.obj.find("data_offsets");
        if (dtype == t.obj.end() || shape == t.obj.end() || offs == t.obj.end() ||
            offs->second.arr.size() != 2)
            die(path + ": tensor " + kv.first + " lacks dtype/shape/data_offsets");
        if (dtype->second.str != "F32")
            die(path + ": tensor " + kv.first + " is " + dtype->second.str + ", expected F32");
        Tensor tensor;
        size_t count = 1;
        for (const Json& d : shape->second.arr) {
            tensor.shape.push_back((size_t)d.num);
            count *= (size_t)d.num;
        }
        const size_t begin = (size_t)offs->second.arr[0].num, end = (size_t)offs->second.arr[1].num;
        if (end < begin || end > data_len || end - begin != count * sizeof(float))
            die(path + ": tensor " + kv.first + " has bad data_offsets");
        tensor.data.resize(count);
        std::memcpy(tensor.data.data(), data + begin, count * sizeof(float));  // f32 LE, as x86
        out[kv.first] = std::move(tensor);
    }
    return out;
}

const Tensor& get(const std::map<std::string, Tensor>& w, const std::string& name,
                  std::vector<size_t> shape) {
    auto it = w.find(name);
    if (it == w.end()) die("rnncore's saved model has no tensor " + name);
    if (it->second.shape != shape) die("tensor " + name + " has an unexpected shape");
    return it->second;
}

std::map<std::string, Tensor> rnncore_weights(const rnn_model* model) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/rnncore-rtneural-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = mkstemp(name.data());
    if (fd < 0) die("mkstemp failed for " + tmpl);
    close(fd);
    const std::string path(name.data());
    rnn_status s = rnn_model_save(model, path.c_str());
    if (s != RNN_OK) {
        std::remove(path.c_str());
        check(s, "rnn_model_save");
    }
    auto w = read_safetensors(path);
    std::remove(path.c_str());
    return w;
}

// ---- the same weights into RTNeural -------------------------------------------------
//
// PyTorch (rnncore): weight_ih [G*H, 1], weight_hh [G*H, H], bias_ih, bias_hh [G*H], rows
// gate-major. RTNeural (Keras layout): W [in][G*H], U [H][G*H], i.e. transposed.
// LSTM: both use gate order i, f, g(c), o; RTNeural has one bias: bias_ih + bias_hh.
// GRU: PyTorch r, z, n; RTNeural z, r, c, with two biases (input side, recurrent side),
// the candidate's recurrent part (U_c h + b_hc) multiplied by r: linear before reset,
// which is rnncore's RNN_CELL_GRU_LBR.

template <int H>
void load_dense(RTNeural::DenseT<float, H, 1>& dense, const std::map<std::string, Tensor>& w) {
    const Tensor& hw = get(w, "head.weight", {1, (size_t)H});
    const Tensor& hb = get(w, "head.bias", {1});
    dense.setWeights(std::vector<std::vector<float>>{hw.data});
    dense.setBias(hb.data.data());
}

// Layer `layer`'s four tensors (PyTorch's names), `G` gates of `h` units, `in` inputs.
struct LayerTensors {
    const Tensor &wih, &whh, &bih, &bhh;
};
LayerTensors layer_tensors(const std::map<std::string, Tensor>& w, int layer, size_t G, size_t h,
                           size_t in) {
    const std::string l = std::to_string(layer);
    return {get(w, "weight_ih_l" + l, {G * h, in}), get(w, "weight_hh_l" + l, {G * h, h}),
            get(w, "bias_ih_l" + l, {G * h}), get(w, "bias_hh_l" + l, {G * h})};
}

// Layer `layer` of `In` inputs (1 for the first, H above it).
template <int In, int H>
void load_lstm(RTNeural::LSTMLayerT<float, In, H>& lstm, const std::map<std::string, Tensor>& w,
               int layer) {
    const size_t G = 4, h = (size_t)H, in = (size_t)In;
    const auto [wih, whh, bih, bhh] = layer_tensors(w, layer, G, h, in);
    std::vector<std::vector<float>> wv(in, std::vector<float>(G * h));
    std::vector<std::vector<float>> uv(h, std::vector<float>(G * h));
    std::vector<float> bv(G * h);
    for (size_t row = 0; row < G * h; row++) {
        for (size_t i = 0; i < in; i++) wv[i][row] = wih.data[row * in + i];
        for (size_t j = 0; j < h; j++) uv[j][row] = whh.data[row * h + j];
        bv[row] = bih.data[row] + bhh.data[row];
    }
    lstm.setWVals(wv);
    lstm.setUVals(uv);
    lstm.setBVals(bv);
}

template <int In, int H>
void load_gru(RTNeural::GRULayerT<float, In, H>& gru, const std::map<std::string, Tensor>& w,
              int layer) {
    const size_t G = 3, h = (size_t)H, in = (size_t)In;
    const auto [wih, whh, bih, bhh] = layer_tensors(w, layer, G, h, in);
    const size_t torch_gate[3] = {1, 0, 2};  // RTNeural's z, r, c are PyTorch's blocks 1, 0, 2
    std::vector<std::vector<float>> wv(in, std::vector<float>(G * h));
    std::vector<std::vector<float>> uv(h, std::vector<float>(G * h));
    std::vector<std::vector<float>> bv(2, std::vector<float>(G * h));
    for (size_t g = 0; g < G; g++) {
        for (size_t k = 0; k < h; k++) {
            const size_t rt = g * h + k, pt = torch_gate[g] * h + k;
            for (size_t i = 0; i < in; i++) wv[i][rt] = wih.data[pt * in + i];
            for (size_t j = 0; j < h; j++) uv[j][rt] = whh.data[pt * h + j];
            bv[0][rt] = bih.data[pt];
            bv[1][rt] = bhh.data[pt];
        }
    }
    gru.setWVals(wv);
    gru.setUVals(uv);
    gru.setBVals(bv);
}

// ---- one configuration --------------------------------------------------------------

struct Timings {
    std::vector<double> rtneural, step, block;  // ns per sample, one per round
};

struct Bench {
    virtual ~Bench() = default;
    virtual const char* cell() const = 0;
    virtual int hidden() const = 0;
    virtual int layers() const = 0;
    virtual void prepare() = 0;       // weights, states, check, N
    virtual void run_round(int order) = 0;
    float max_diff_rt = 0, max_diff_block = 0;
    size_t n = 0;
    Timings t;
};



// The model RTNeural runs: `Layers` (1 or 2) recurrent layers of H units, then the head.
template <int H, bool Lstm, int Layers>
struct RtModel;
template <int H, bool Lstm>
struct RtModel<H, Lstm, 1> {
    using First = typename std::conditional<Lstm, RTNeural::LSTMLayerT<float, 1, H>,
                                            RTNeural::GRULayerT<float, 1, H>>::type;
    using Type = RTNeural::ModelT<float, 1, 1, First, RTNeural::DenseT<float, H, 1>>;
};
template <int H, bool Lstm>
struct RtModel<H, Lstm, 2> {
    using First = typename RtModel<H, Lstm, 1>::First;
    using Second = typename std::conditional<Lstm, RTNeural::LSTMLayerT<float, H, H>,
                                             RTNeural::GRULayerT<float, H, H>>::type;
    using Type = RTNeural::ModelT<float, 1, 1, First, Second, RTNeural::DenseT<float, H, 1>>;
};

template <int H, bool Lstm, int Layers = 1>
struct BenchT final : Bench {
    using Model = typename RtModel<H, Lstm, Layers>::Type;

    Model rt;
    rnn_model* model = nullptr;
    rnn_state* step_state = nullptr;
    rnn_state* block_state = nullptr;
    std::vector<float> x, y;

    ~BenchT() override {
        rnn_state_free(block_state);
        rnn_state_free(step_state);
        rnn_model_free(model);
    }
    const char* cell() const override { return Lstm ? "LSTM" : "GRU"; }
    int hidden() const override { return H; }
    int layers() const override { return Layers; }

    double time_rtneural() {
        return time_forward([&](const float* v) { return rt.forward(v); }, x, n);
    }
    double time_step() { return bench::time_step(model, step_state, x, n); }
    double time_block() { return bench::time_block(model, block_state, x, y, n); }

    void prepare() override {
        const rnn_config cfg = {Lstm ? (uint32_t)RNN_CELL_LSTM : (uint32_t)RNN_CELL_GRU_LBR,
                                1, (uint32_t)H, (uint32_t)Layers, 1, RNN_OUTPUT_IDENTITY};
        check(rnn_model_new(&cfg, 0x5EED0000u + (uint64_t)H + 0x1000u * (Layers - 1), &model),
              "rnn_model_new");
        check(rnn_state_new(model, 1, &step_state), "rnn_state_new");
        check(rnn_state_new_block(model, 1, kBlock, &block_state), "rnn_state_new_block");

        const auto w = rnncore_weights(model);
        if constexpr (Lstm)
            load_lstm<1, H>(rt.template get<0>(), w, 0);
        else
            load_gru<1, H>(rt.template get<0>(), w, 0);
        if constexpr (Layers == 2) {
            if constexpr (Lstm)
                load_lstm<H, H>(rt.template get<1>(), w, 1);
            else
                load_gru<H, H>(rt.template get<1>(), w, 1);
        }
        load_dense<H>(rt.template get<Layers>(), w);
        rt.reset();

        // Equivalence: the same kCheckLen samples from zero state through all three paths.
        std::tie(max_diff_rt, max_diff_block) =
            check_paths(model, step_state, block_state, x, y, [&](const float* v) { return rt.forward(v); });
        if (!(max_diff_rt <= kMaxDiff) || !(max_diff_block <= kMaxDiff)) {
            std::fprintf(stderr, "%s x%d H=%d: outputs differ: |rnncore step - RTNeural| = %g, "
                                 "|step - block| = %g (limit %g)\n",
                         cell(), Layers, H, max_diff_rt, max_diff_block, kMaxDiff);
            std::exit(1);
        }

        // Size N from a pilot over the check input (which also warms all three paths).
        n = kCheckLen;
        n = timing_len(std::min({time_rtneural(), time_step(), time_block()}));
        x = make_input(n, 777u + (uint32_t)H + 100u * (uint32_t)(Layers - 1));
        y.assign(n, 0.0f);
    }

    void run_round(int order) override {
        for (int k = 0; k < 3; k++) {
            switch ((order + k) % 3) {
                case 0: t.rtneural.push_back(time_rtneural()); break;
                case 1: t.step.push_back(time_step()); break;
                default: t.block.push_back(time_block()); break;
            }
        }
    }
};

double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("model name", 0) == 0) {
            const size_t colon = line.find(':');
            if (colon != std::string::npos) {
                size_t b = line.find_first_not_of(" \t", colon + 1);
                return b == std::string::npos ? "" : line.substr(b);
            }
        }
    }
    return "(unknown CPU)";
}

template <bool Lstm>
void add_cell(std::vector<std::unique_ptr<Bench>>& out) {
    out.emplace_back(new BenchT<8, Lstm>());
    out.emplace_back(new BenchT<16, Lstm>());
    // 24 and 40: sizes between the powers of two (GuitarML's Proteus captures are LSTMs
    // of 40 units, by its README).
    out.emplace_back(new BenchT<24, Lstm>());
    out.emplace_back(new BenchT<32, Lstm>());
    out.emplace_back(new BenchT<40, Lstm>());
    out.emplace_back(new BenchT<64, Lstm>());
    out.emplace_back(new BenchT<128, Lstm>());
    // Two stacked layers (the second's inputs are the first's H outputs).
    out.emplace_back(new BenchT<16, Lstm, 2>());
    out.emplace_back(new BenchT<32, Lstm, 2>());
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    if (argc > 1) {
        char* end = nullptr;
        long r = std::strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || r < 1 || r > 1000) die("rounds must be an integer in 1..1000");
        rounds = (int)r;
    }
    if (rnn_abi_version() < RNN_ABI_VERSION) die("librnncore.a is older than rnncore.h (ABI version)");

    std::vector<std::unique_ptr<Bench>> benches;
    add_cell<true>(benches);
    add_cell<false>(benches);
    for (auto& b : benches) b->prepare();
    for (int r = 0; r < rounds; r++)
        for (auto& b : benches) b->run_round(r);

    std::printf("### rnncore kernel `%s`\n\n", rnn_kernel_name());
    std::printf("CPU: %s, one pinned core. rnncore %s (kernel `%s`, RNNCORE_KERNEL=%s); RTNeural %s, "
                "Eigen backend; g++ %s `%s`.\n",
                cpu_model().c_str(), rnn_version(), rnn_kernel_name(),
                std::getenv("RNNCORE_KERNEL") ? std::getenv("RNNCORE_KERNEL") : "(unset)",
                RTNEURAL_COMMIT, __VERSION__, BENCH_CXXFLAGS);
    std::printf("Batch 1, 1 input, one layer (layers 2: two stacked), dense head to 1 output, f32. ns per sample, "
                "min / median of %d rounds; N = samples per timing; block = "
                "rnn_model_forward_state on %zu samples; ratios from medians (< 1: rnncore "
                "faster). max diff = max |rnncore step - RTNeural| over %zu samples.\n\n",
                rounds, kBlock, kCheckLen);
    std::printf("| cell | layers | H | N | RTNeural | rnncore step | rnncore block | step / RTNeural "
                "| block / RTNeural | max diff |\n");
    std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (auto& b : benches) {
        const double rt = median(b->t.rtneural), st = median(b->t.step), bl = median(b->t.block);
        std::printf("| %s | %d | %d | %zu | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.2f | %.2f | %.1e |\n",
                    b->cell(), b->layers(), b->hidden(), b->n, minimum(b->t.rtneural), rt, minimum(b->t.step), st,
                    minimum(b->t.block), bl, st / rt, bl / rt, (double)b->max_diff_rt);
    }
    std::printf("\n");
    return 0;
}
