// Tests of the C++ wrapper (bindings/cpp/rnncore.hpp) and, through it, of the C ABI.
// Built and run by bindings/cpp/run_tests.sh. Output: one line per failed check, then
// "N passed, M failed" (test cases); the exit status is non-zero when any failed.
#include "rnncore.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

// Counts C++ heap allocations on this thread, so a test can show that the wrapper's
// streaming overloads allocate nothing on the C++ side (the library's own allocations are
// tested in Rust).
namespace {
thread_local long g_cxx_allocations = 0;
}
void* operator new(std::size_t n) {
  ++g_cxx_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
// Not inlined, so GCC's -Wmismatched-new-delete does not pair free() with operator new.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { ::operator delete(p); }

namespace {

// ---------------------------------------------------------------------------------------
// A small test harness

int g_checks_failed_in_test = 0;

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      ++g_checks_failed_in_test;                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                           \
  } while (0)

// The status of the rnncore::Error `expr` throws (RNN_OK if it throws nothing). Any other
// exception propagates and fails the test.
template <class F>
rnn_status status_of(F&& f) {
  try {
    f();
  } catch (const rnncore::Error& e) {
    return e.status();
  }
  return RNN_OK;
}

#define CHECK_STATUS(expr, want)                                                       \
  do {                                                                                 \
    rnn_status got_ = status_of([&] { (void)(expr); });                                \
    if (got_ != (want)) {                                                              \
      ++g_checks_failed_in_test;                                                       \
      std::fprintf(stderr, "%s:%d: %s: status %u, expected %s (%u)\n", __FILE__, __LINE__, \
                   #expr, static_cast<unsigned>(got_), #want, static_cast<unsigned>(want)); \
    }                                                                                  \
  } while (0)

struct TestCase {
  const char* name;
  void (*fn)();
};
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
struct Register {
  Register(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};
#define TEST(name)                               \
  void test_##name();                            \
  const Register register_##name(#name, test_##name); \
  void test_##name()

// ---------------------------------------------------------------------------------------
// Helpers

constexpr rnn_cell kCells[] = {RNN_CELL_RNN_TANH, RNN_CELL_RNN_RELU, RNN_CELL_LSTM,
                               RNN_CELL_GRU, RNN_CELL_GRU_LBR};

// Deterministic values in [-1, 1).
std::vector<float> ramp(std::size_t n, std::uint32_t seed) {
  std::vector<float> v(n);
  std::uint32_t s = seed * 2654435761u + 12345u;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return v;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<float>::infinity();
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) {
    float d = std::fabs(a[i] - b[i]);
    if (!(d <= m)) m = d;  // NaN-propagating max
  }
  return m;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::filesystem::path temp_dir() {
  static std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("rnncore-cpp-test-" + std::to_string(static_cast<long>(::getpid())));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// ---------------------------------------------------------------------------------------
// Library-wide

TEST(version_and_extras) {
  std::string v = rnncore::version();
  CHECK(std::count(v.begin(), v.end(), '.') == 2);
  CHECK(std::string(rnn_last_error()).size() < 100000);  // never NULL
  CHECK(!rnncore::status_str(RNN_ERR_INVALID).empty());
  CHECK(rnncore::status_str(RNN_OK) != rnncore::status_str(RNN_ERR_NULL));
  CHECK(rnncore::abi_version() >= RNN_ABI_VERSION);
  CHECK(RNN_ABI_VERSION == 2);
  CHECK_STATUS(rnncore::check_abi(), RNN_OK);
  const std::string k = rnncore::kernel_name();
  CHECK(k == "avx512" || k == "avx2" || k == "avx" || k == "sse41" || k == "neon" || k == "scalar");
}

TEST(num_threads_roundtrip_and_determinism) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 4, 16, 2, 3), 5);
  auto x = ramp(32 * 6 * 4, 1);
  rnncore::set_num_threads(1);
  CHECK(rnncore::num_threads() == 1);
  auto y1 = m.forward(x, 32, 6);
  rnncore::set_num_threads(2);
  CHECK(rnncore::num_threads() == 2);
  auto y2 = m.forward(x, 32, 6);
  CHECK(bit_equal(y1, y2));
  CHECK_STATUS(rnncore::set_num_threads(static_cast<std::size_t>(-1)), RNN_ERR_INVALID);
  rnncore::set_num_threads(0);
  CHECK(rnncore::num_threads() >= 1);
}

// ---------------------------------------------------------------------------------------
// Model basics

TEST(config_roundtrip_and_output_size) {
  auto cfg = rnncore::make_config(RNN_CELL_GRU, 3, 8, 2, 5, RNN_OUTPUT_SOFTMAX);
  rnncore::Model m(cfg, 1);
  rnn_config got = m.config();
  CHECK(got.cell == RNN_CELL_GRU);
  CHECK(got.input_size == 3 && got.hidden_size == 8 && got.num_layers == 2);
  CHECK(got.output_size == 5 && got.output_activation == RNN_OUTPUT_SOFTMAX);
  CHECK(m.output_size() == 5);
  CHECK(m.input_size() == 3);
  rnncore::Model nohead(rnncore::make_config(RNN_CELL_LSTM, 3, 8), 1);
  CHECK(nohead.output_size() == 8);
}

// ---------------------------------------------------------------------------------------
// The full description (ModelDesc, rnn_model_new_desc / rnn_model_describe)

TEST(desc_without_extras_is_the_config_model) {
  auto d = rnncore::ModelDesc(RNN_CELL_GRU_LBR, 3, 8, 2).head(4, RNN_OUTPUT_SOFTMAX);
  rnncore::Model a(d, 11);
  rnncore::Model b(rnncore::make_config(RNN_CELL_GRU_LBR, 3, 8, 2, 4, RNN_OUTPUT_SOFTMAX), 11);
  auto x = ramp(2 * 5 * 3, 4);
  CHECK(bit_equal(a.forward(x, 2, 5), b.forward(x, 2, 5)));
  CHECK(a.describe() == d);
  CHECK(b.describe() == d);
  CHECK(a.input_size() == 3 && a.output_size() == 4);
}

TEST(desc_bidirectional) {
  auto d = rnncore::ModelDesc(RNN_CELL_LSTM, 3, 4, 2).bidirectional();
  rnncore::Model m(d, 2);
  CHECK(m.describe() == d && m.output_size() == 8);
  auto y = m.forward(ramp(2 * 5 * 3, 4), 2, 5);
  CHECK(y.size() == 2 * 5 * 8 && all_finite(y));
  CHECK_STATUS(rnncore::State(m, 1), RNN_ERR_INVALID);
}

TEST(dropout_seed) {
  auto d = rnncore::ModelDesc(RNN_CELL_LSTM, 3, 4, 2).dropout(0.5f);
  auto x = ramp(2 * 5 * 3, 1);
  auto target = ramp(2 * 5 * 4, 2);
  std::vector<std::vector<float>> outs;
  for (int seed : {-1, 0, 7}) {
    rnncore::Model m(d, 9);
    rnncore::Trainer t(m, rnncore::make_train_config(RNN_OPT_ADAM, 0.05f));
    if (seed >= 0) t.set_dropout_seed(static_cast<std::uint64_t>(seed));
    t.step_mse(x, 2, 5, target);
    outs.push_back(m.forward(x, 2, 5));
  }
  CHECK(bit_equal(outs[0], outs[1]));
  CHECK(!bit_equal(outs[0], outs[2]));
}

TEST(desc_layered_round_trip) {
  auto d = rnncore::ModelDesc(RNN_CELL_LSTM, 2, 6)
               .pre(5, RNN_ACT_TANH)
               .pre(4, RNN_ACT_ELU)
               .post(3, RNN_ACT_RELU)
               .post(2, RNN_ACT_IDENTITY)
               .skip()
               .forget_bias(1.0f);
  rnncore::Model m(d, 3);
  CHECK(m.input_size() == 2 && m.output_size() == 2);
  rnncore::ModelDesc got = m.describe();
  CHECK(got.c().forget_bias == 0.0f);  // an initialisation choice, not in the description
  CHECK(got != d);
  got.forget_bias(1.0f);
  CHECK(got == d);
  CHECK(got.pre_layers().size() == 2 && got.pre_layers()[1].size == 4);
  CHECK(got.post_layers().size() == 2 && got.post_layers()[0].activation == RNN_ACT_RELU);
  CHECK(got.has_skip() && got.cell() == RNN_CELL_LSTM && got.hidden_size() == 6);
  // Saved and loaded: the same description and outputs.
  auto path = (temp_dir() / "desc.safetensors").string();
  m.save(path);
  auto loaded = rnncore::Model::load(path);
  got.forget_bias(0.0f);
  CHECK(loaded.describe() == got);
  auto x = ramp(3 * 4 * 2, 8);
  CHECK(bit_equal(loaded.forward(x, 3, 4), m.forward(x, 3, 4)));
  // Streaming works on a layered model made from C++ too.
  rnncore::State s(m, 3);
  auto y0 = m.step(s, ramp(3 * 2, 1));
  CHECK(y0.size() == 3 * 2 && all_finite(y0));
}

TEST(desc_errors) {
  using rnncore::ModelDesc;
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_LSTM, 2, 4).bidirectional().pre(3, RNN_ACT_TANH), 1),
               RNN_ERR_INVALID);
  CHECK(std::strstr(rnn_last_error(), "bidirectional") != nullptr);
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_GRU, 2, 4).proj_size(2), 1), RNN_ERR_INVALID);
  CHECK(std::strstr(rnn_last_error(), "proj_size") != nullptr);
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_LSTM, 2, 4).proj_size(4), 1), RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_LSTM, 2, 4).dropout(0.2f).pre(3, RNN_ACT_TANH), 1),
               RNN_ERR_INVALID);
  CHECK(std::strstr(rnn_last_error(), "dropout") != nullptr);
  {
    auto d = ModelDesc(RNN_CELL_LSTM, 2, 4).proj_size(3).dropout(0.5f);
    rnncore::Model m(d, 1);
    CHECK(m.describe() == d && m.output_size() == 3);
  }
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_GRU, 2, 4).forget_bias(1.0f), 1),
               RNN_ERR_INVALID);
  CHECK(std::strstr(rnn_last_error(), "forget_bias") != nullptr);
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_LSTM, 2, 4).pre(3, RNN_ACT_SOFTMAX), 1),
               RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::Model(ModelDesc(RNN_CELL_LSTM, 2, 4).head(2).post(3), 1),
               RNN_ERR_INVALID);
  ModelDesc wrong_size(RNN_CELL_LSTM, 2, 4);
  wrong_size.c().struct_size = 8;
  CHECK_STATUS(rnncore::Model(wrong_size, 1), RNN_ERR_INVALID);
  CHECK(std::strstr(rnn_last_error(), "struct_size") != nullptr);
  ModelDesc full(RNN_CELL_LSTM, 2, 4);
  for (unsigned k = 0; k < RNN_MAX_DENSE; ++k) full.post(2, RNN_ACT_TANH);
  CHECK_STATUS(full.post(2), RNN_ERR_INVALID);
  CHECK(full.post_layers().size() == RNN_MAX_DENSE);
  rnncore::Model empty;
  CHECK_STATUS(empty.describe(), RNN_ERR_NULL);
}

TEST(same_seed_same_weights) {
  auto cfg = rnncore::make_config(RNN_CELL_LSTM, 3, 8, 1, 2);
  rnncore::Model a(cfg, 42), b(cfg, 42), c(cfg, 43);
  auto x = ramp(2 * 4 * 3, 9);
  CHECK(bit_equal(a.forward(x, 2, 4), b.forward(x, 2, 4)));
  CHECK(!bit_equal(a.forward(x, 2, 4), c.forward(x, 2, 4)));
}

TEST(softmax_rows_sum_to_one) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 3, 8, 1, 4, RNN_OUTPUT_SOFTMAX), 2);
  auto y = m.forward(ramp(2 * 3 * 3, 1), 2, 3);
  CHECK(y.size() == 2 * 3 * 4);
  for (std::size_t r = 0; r < 6; ++r) {
    float s = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      CHECK(y[r * 4 + k] > 0.0f);
      s += y[r * 4 + k];
    }
    CHECK(std::fabs(s - 1.0f) < 1e-5f);
  }
}

// ---------------------------------------------------------------------------------------
// Move semantics

static_assert(!std::is_copy_constructible_v<rnncore::Model>, "Model is move-only");
static_assert(!std::is_copy_assignable_v<rnncore::Model>, "Model is move-only");
static_assert(std::is_nothrow_move_constructible_v<rnncore::Model>, "");
static_assert(std::is_nothrow_move_assignable_v<rnncore::Model>, "");
static_assert(!std::is_copy_constructible_v<rnncore::State>, "State is move-only");
static_assert(std::is_nothrow_move_constructible_v<rnncore::State>, "");
static_assert(std::is_nothrow_move_assignable_v<rnncore::State>, "");
static_assert(!std::is_copy_constructible_v<rnncore::Trainer>, "Trainer is move-only");
static_assert(std::is_nothrow_move_constructible_v<rnncore::Trainer>, "");
static_assert(std::is_nothrow_move_assignable_v<rnncore::Trainer>, "");

TEST(model_move_leaves_source_empty) {
  auto cfg = rnncore::make_config(RNN_CELL_GRU, 2, 4);
  rnncore::Model a(cfg, 1);
  rnn_model* h = a.handle();
  CHECK(h != nullptr && static_cast<bool>(a));
  auto x = ramp(1 * 3 * 2, 3);
  auto ya = a.forward(x, 1, 3);

  rnncore::Model b(std::move(a));
  CHECK(!a);  // NOLINT(bugprone-use-after-move): testing the moved-from state
  CHECK(a.handle() == nullptr);
  CHECK(b.handle() == h);
  CHECK(bit_equal(b.forward(x, 1, 3), ya));
  // Calls on the empty object fail cleanly with RNN_ERR_NULL.
  CHECK_STATUS(a.forward(x, 1, 3), RNN_ERR_NULL);
  CHECK_STATUS(a.config(), RNN_ERR_NULL);
  CHECK_STATUS(a.save((temp_dir() / "never.safetensors").string()), RNN_ERR_NULL);
  CHECK(a.output_size() == 0);

  // Move-assignment frees the target's old model (ASan/valgrind would report the leak).
  rnncore::Model c(cfg, 2);
  c = std::move(b);
  CHECK(!b);
  CHECK(c.handle() == h);
  CHECK(bit_equal(c.forward(x, 1, 3), ya));
  // Assigning into a moved-from object and moving an empty one are fine.
  a = std::move(c);
  CHECK(a.handle() == h && !c);
  rnncore::Model d(std::move(c));
  CHECK(!d);
  CHECK_STATUS(rnncore::State(d, 1), RNN_ERR_NULL);
}

TEST(state_move_leaves_source_empty) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, 4), 1);
  rnncore::State s(m, 3, 2);
  rnn_state* h = s.handle();
  CHECK(s.batch() == 3 && s.max_block() == 2);
  rnncore::State t(std::move(s));
  CHECK(!s && s.handle() == nullptr && s.batch() == 0 && s.size() == 0);
  CHECK(t.handle() == h && t.batch() == 3 && t.max_block() == 2);
  CHECK(t.size() == 2 * 1 * 3 * 4);
  CHECK_STATUS(s.reset(), RNN_ERR_NULL);
  CHECK_STATUS(s.get(), RNN_ERR_NULL);
  std::vector<float> one(1, 0.0f);
  CHECK_STATUS(s.get(one.data(), one.size()), RNN_ERR_NULL);
  CHECK_STATUS(s.set(one), RNN_ERR_NULL);
  CHECK_STATUS(m.step(s, ramp(3 * 2, 1)), RNN_ERR_NULL);
  rnncore::State u(m, 1);
  u = std::move(t);
  CHECK(u.handle() == h && !t);
}

TEST(trainer_move_leaves_source_empty) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_RNN_TANH, 2, 4, 1, 1), 1);
  rnncore::Trainer t(m, rnncore::make_train_config(RNN_OPT_SGD, 0.1f));
  rnn_trainer* h = t.handle();
  rnncore::Trainer u(std::move(t));
  CHECK(!t && u.handle() == h);
  auto x = ramp(2 * 3 * 2, 1);
  auto target = ramp(2 * 3, 2);
  CHECK_STATUS(t.step_mse(x, 2, 3, target), RNN_ERR_NULL);
  CHECK_STATUS(u.step_mse(x, 2, 3, target), RNN_OK);
  rnncore::Trainer v(m, rnncore::make_train_config(RNN_OPT_ADAM, 0.1f));
  v = std::move(u);
  CHECK(v.handle() == h && !u);
  CHECK_STATUS(v.step_mse(x, 2, 3, target), RNN_OK);
}

// The trainer holds the C handle, which survives a move of the Model object.
TEST(trainer_follows_moved_model) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 2, 4, 1, 1), 1);
  rnncore::Trainer t(m, rnncore::make_train_config(RNN_OPT_SGD, 0.5f));
  rnncore::Model moved(std::move(m));
  auto x = ramp(2 * 3 * 2, 1);
  auto target = ramp(2 * 3, 2);
  auto before = moved.forward(x, 2, 3);
  t.step_mse(x, 2, 3, target);
  CHECK(!bit_equal(before, moved.forward(x, 2, 3)));
}

// ---------------------------------------------------------------------------------------
// Errors: status, message, nothing modified

TEST(error_carries_status_and_message) {
  auto cfg = rnncore::make_config(RNN_CELL_LSTM, 2, 4);
  cfg.cell = 99;
  try {
    rnncore::Model m(cfg, 1);
    CHECK(false);  // must throw
  } catch (const rnncore::Error& e) {
    CHECK(e.status() == RNN_ERR_INVALID);
    std::string what = e.what();
    CHECK(what.find("rnn_model_new") != std::string::npos);
    // The message is the library's (this thread's rnn_last_error()).
    std::string last = rnn_last_error();
    CHECK(!last.empty());
    CHECK(what.find(last) != std::string::npos);
    // Catchable as std::runtime_error too.
    const std::runtime_error& base = e;
    CHECK(std::string(base.what()) == what);
  }
}

TEST(bad_config_values) {
  using rnncore::make_config;
  auto bad_cell = make_config(RNN_CELL_LSTM, 2, 4);
  bad_cell.cell = 5;
  CHECK_STATUS(rnncore::Model(bad_cell, 1), RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::Model(make_config(RNN_CELL_LSTM, 0, 4), 1), RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::Model(make_config(RNN_CELL_LSTM, 2, 0), 1), RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::Model(make_config(RNN_CELL_LSTM, 2, 4, 0), 1), RNN_ERR_INVALID);
  auto bad_act = make_config(RNN_CELL_LSTM, 2, 4, 1, 3);
  bad_act.output_activation = 2;
  CHECK_STATUS(rnncore::Model(bad_act, 1), RNN_ERR_INVALID);
  // softmax needs a head
  CHECK_STATUS(rnncore::Model(make_config(RNN_CELL_LSTM, 2, 4, 1, 0, RNN_OUTPUT_SOFTMAX), 1),
               RNN_ERR_INVALID);
  rnncore::Model ok(make_config(RNN_CELL_LSTM, 2, 4), 1);
  CHECK(static_cast<bool>(ok));
}

TEST(forward_wrong_sizes_leave_output_untouched) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 3, 5, 1, 2), 1);
  auto x = ramp(2 * 4 * 3, 1);
  std::vector<float> y(2 * 4 * 2, kNaN);
  // y too short / too long: checked by the C ABI.
  CHECK_STATUS(m.forward(x.data(), x.size(), 2, 4, y.data(), y.size() - 1), RNN_ERR_INVALID);
  CHECK_STATUS(m.forward(x.data(), x.size(), 2, 4, y.data(), y.size()), RNN_OK);
  std::fill(y.begin(), y.end(), kNaN);
  std::vector<float> ybig(y.size() + 1, kNaN);
  CHECK_STATUS(m.forward(x.data(), x.size(), 2, 4, ybig.data(), ybig.size()), RNN_ERR_INVALID);
  CHECK(std::all_of(ybig.begin(), ybig.end(), [](float v) { return std::isnan(v); }));
  // x of the wrong size: checked by the wrapper (the C call has no x_len).
  CHECK_STATUS(m.forward(x.data(), x.size() - 1, 2, 4, y.data(), y.size()), RNN_ERR_INVALID);
  CHECK_STATUS(m.forward(x, 2, 5), RNN_ERR_INVALID);
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }));
  // Overflowing sizes are refused, not wrapped around.
  CHECK_STATUS(m.forward(x, static_cast<std::size_t>(-1) / 2, 4), RNN_ERR_INVALID);
  // NULL pointers straight to the C ABI.
  CHECK(rnn_model_forward(m.handle(), nullptr, 2, 4, y.data(), y.size()) == RNN_ERR_NULL);
  CHECK(rnn_model_forward(m.handle(), x.data(), 2, 4, nullptr, y.size()) == RNN_ERR_NULL);
}

TEST(nonfinite_input_refused) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 3, 5), 1);
  auto x = ramp(2 * 4 * 3, 1);
  x[7] = kNaN;
  CHECK_STATUS(m.forward(x, 2, 4), RNN_ERR_NONFINITE);
  x[7] = std::numeric_limits<float>::infinity();
  CHECK_STATUS(m.forward(x, 2, 4), RNN_ERR_NONFINITE);
  // Streaming: refused, and the state is left as it was.
  rnncore::State s(m, 2);
  m.step(s, ramp(2 * 3, 4));
  auto snap = s.get();
  std::vector<float> xs = ramp(2 * 3, 5);
  xs[4] = kNaN;
  std::vector<float> y(2 * 5, kNaN);
  CHECK_STATUS(m.step(s, xs.data(), xs.size(), y.data(), y.size()), RNN_ERR_NONFINITE);
  CHECK(bit_equal(s.get(), snap));
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }));
}

TEST(state_errors_leave_state_unchanged) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, 3, 2), 7);
  rnncore::State s(m, 2, 4);
  CHECK(s.size() == 2 * 2 * 2 * 3);
  m.forward_state(s, ramp(2 * 4 * 2, 1), 4);
  auto snap = s.get();
  CHECK(all_finite(snap));

  // set: wrong length, non-finite
  std::vector<float> bad(snap.size() - 1, 0.5f);
  CHECK_STATUS(s.set(bad), RNN_ERR_INVALID);
  std::vector<float> nan_in(snap.size(), 0.25f);
  nan_in.back() = kNaN;
  CHECK_STATUS(s.set(nan_in), RNN_ERR_NONFINITE);
  CHECK(bit_equal(s.get(), snap));

  // get into a wrong-size buffer: refused, buffer untouched
  std::vector<float> out(snap.size() + 1, kNaN);
  CHECK_STATUS(s.get(out.data(), out.size()), RNN_ERR_INVALID);
  CHECK(std::isnan(out[0]));

  // reset_stream out of range
  CHECK_STATUS(s.reset_stream(2), RNN_ERR_INVALID);
  CHECK(bit_equal(s.get(), snap));

  // step/forward_state with wrong x or y sizes, block too long
  std::vector<float> y(2 * 3, kNaN);
  std::vector<float> x = ramp(2 * 2, 3);
  CHECK_STATUS(m.step(s, x.data(), x.size() - 1, y.data(), y.size()), RNN_ERR_INVALID);
  CHECK_STATUS(m.step(s, x.data(), x.size(), y.data(), y.size() - 1), RNN_ERR_INVALID);
  CHECK_STATUS(m.forward_state(s, ramp(2 * 5 * 2, 1), 5), RNN_ERR_INVALID);  // 5 > max_block 4
  CHECK_STATUS(m.forward_state(s, ramp(2 * 3 * 2, 1), 4), RNN_ERR_INVALID);  // x too short
  CHECK(bit_equal(s.get(), snap));

  // a state made for another model config
  rnncore::Model other(rnncore::make_config(RNN_CELL_LSTM, 2, 4, 2), 7);
  CHECK_STATUS(other.step(s, x), RNN_ERR_INVALID);
  CHECK(bit_equal(s.get(), snap));

  // state creation
  CHECK_STATUS(rnncore::State(m, 0), RNN_ERR_INVALID);
  CHECK_STATUS(rnncore::State(m, 1, 0), RNN_ERR_INVALID);
}

TEST(trainer_errors_leave_weights_unchanged) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, 4, 1, 2), 3);
  auto x = ramp(3 * 5 * 2, 1);
  auto probe = m.forward(x, 3, 5);

  auto tc = rnncore::make_train_config(RNN_OPT_SGD, 0.1f);
  tc.optimizer = 3;
  CHECK_STATUS(rnncore::Trainer(m, tc), RNN_ERR_INVALID);
  tc = rnncore::make_train_config(RNN_OPT_ADAM, -1.0f);
  CHECK_STATUS(rnncore::Trainer(m, tc), RNN_ERR_INVALID);
  tc = rnncore::make_train_config(RNN_OPT_ADAM, kNaN);
  CHECK(status_of([&] { rnncore::Trainer t(m, tc); }) != RNN_OK);

  rnncore::Trainer t(m, rnncore::make_train_config(RNN_OPT_ADAM, 0.05f));
  auto target = ramp(3 * 5 * 2, 2);
  // bad targets value (the C ABI takes it as uint32_t; the wrapper's parameter is the enum)
  float loss = -1.0f;
  CHECK(rnn_trainer_step_mse(t.handle(), nullptr, x.data(), 3, 5, target.data(), target.size(), 2,
                             &loss) == RNN_ERR_INVALID);
  CHECK(loss == -1.0f);  // out-pointer untouched on failure
  // target size for the other mode
  CHECK_STATUS(t.step_mse(x, 3, 5, target, RNN_TARGETS_LAST_STEP), RNN_ERR_INVALID);
  // x size (wrapper) and x/batch mismatch
  CHECK_STATUS(t.step_mse(x.data(), x.size() - 2, 3, 5, target.data(), target.size()),
               RNN_ERR_INVALID);
  // non-finite target and input
  auto bad_target = target;
  bad_target[3] = kNaN;
  CHECK_STATUS(t.step_mse(x, 3, 5, bad_target), RNN_ERR_NONFINITE);
  auto bad_x = x;
  bad_x[0] = -std::numeric_limits<float>::infinity();
  CHECK_STATUS(t.step_mse(bad_x, 3, 5, target), RNN_ERR_NONFINITE);
  // labels out of range
  std::vector<std::int32_t> labels(3 * 5, 1);
  labels[4] = 2;  // output_size is 2
  CHECK_STATUS(t.step_xent(x, 3, 5, labels), RNN_ERR_INVALID);
  labels[4] = -2;
  CHECK_STATUS(t.step_xent(x, 3, 5, labels), RNN_ERR_INVALID);
  std::vector<std::int32_t> short_labels(3 * 4, 0);
  CHECK_STATUS(t.step_xent(x, 3, 5, short_labels), RNN_ERR_INVALID);
  // state of the wrong batch: refused, state untouched
  rnncore::State s(m, 2);
  auto snap = s.get();
  CHECK_STATUS(t.step_mse(x, 3, 5, target, RNN_TARGETS_EVERY_STEP, &s), RNN_ERR_INVALID);
  CHECK(bit_equal(s.get(), snap));
  // a NULL loss_out straight to the C ABI
  CHECK(rnn_trainer_step_mse(t.handle(), nullptr, x.data(), 3, 5, target.data(), target.size(),
                             RNN_TARGETS_EVERY_STEP, nullptr) == RNN_ERR_NULL);

  CHECK(bit_equal(m.forward(x, 3, 5), probe));
  // and a valid step does change them
  t.step_mse(x, 3, 5, target);
  CHECK(!bit_equal(m.forward(x, 3, 5), probe));
}

TEST(load_errors) {
  CHECK_STATUS(rnncore::Model::load((temp_dir() / "does-not-exist.safetensors").string()),
               RNN_ERR_IO);
  auto junk = temp_dir() / "junk.safetensors";
  {
    std::ofstream f(junk, std::ios::binary);
    f << "this is not a safetensors file at all";
  }
  CHECK_STATUS(rnncore::Model::load(junk.string()), RNN_ERR_FORMAT);
  // A truncated copy of a real file.
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 2, 3, 1, 2), 1);
  auto good = temp_dir() / "good.safetensors";
  m.save(good.string());
  auto size = std::filesystem::file_size(good);
  auto cut = temp_dir() / "cut.safetensors";
  std::filesystem::copy_file(good, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, size - 7);
  CHECK_STATUS(rnncore::Model::load(cut.string()), RNN_ERR_FORMAT);
  // Saving into a directory that does not exist.
  CHECK_STATUS(m.save((temp_dir() / "no-such-dir" / "m.safetensors").string()), RNN_ERR_IO);
}

// ---------------------------------------------------------------------------------------
// Numerics through the wrapper

TEST(forward_equals_stepping_every_cell) {
  const std::size_t B = 3, T = 6, I = 4, H = 7;
  for (rnn_cell cell : kCells) {
    for (std::uint32_t head : {0u, 5u}) {
      rnncore::Model m(rnncore::make_config(cell, I, H, 2, head), 11 + cell);
      const std::size_t O = m.output_size();
      auto x = ramp(B * T * I, 100 + cell);
      auto y = m.forward(x, B, T);
      CHECK(y.size() == B * T * O);
      CHECK(all_finite(y));

      // one timestep at a time
      rnncore::State s(m, B);
      std::vector<float> stepped(B * T * O, kNaN);
      for (std::size_t t = 0; t < T; ++t) {
        std::vector<float> xt(B * I);
        for (std::size_t b = 0; b < B; ++b)
          std::copy_n(&x[(b * T + t) * I], I, &xt[b * I]);
        auto yt = m.step(s, xt);
        for (std::size_t b = 0; b < B; ++b)
          std::copy_n(&yt[b * O], O, &stepped[(b * T + t) * O]);
      }
      float d = max_abs_diff(y, stepped);
      CHECK(d < 1e-5f);
      if (!(d < 1e-5f)) std::fprintf(stderr, "  cell %d head %u: step diff %g\n", cell, head, d);

      // blocks of 4 + 2 timesteps
      rnncore::State sb(m, B, 4);
      std::vector<float> blocked(B * T * O, kNaN);
      std::size_t t0 = 0;
      for (std::size_t len : {std::size_t{4}, std::size_t{2}}) {
        std::vector<float> xb(B * len * I);
        for (std::size_t b = 0; b < B; ++b)
          std::copy_n(&x[(b * T + t0) * I], len * I, &xb[b * len * I]);
        auto yb = m.forward_state(sb, xb, len);
        for (std::size_t b = 0; b < B; ++b)
          std::copy_n(&yb[b * len * O], len * O, &blocked[(b * T + t0) * O]);
        t0 += len;
      }
      CHECK(max_abs_diff(y, blocked) < 1e-5f);
      // both streaming paths end in the same state
      CHECK(max_abs_diff(s.get(), sb.get()) < 1e-5f);
    }
  }
}

TEST(streaming_overloads_do_not_allocate) {
  // Valgrind replaces operator new with its own: then nothing can be counted here.
  long probe = g_cxx_allocations;
  float* volatile counted = new float[5];
  delete[] counted;
  if (g_cxx_allocations != probe + 1) {
    std::printf("     (allocation counter inactive, e.g. under valgrind: not checked)\n");
    return;
  }
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, 8, 2, 3), 4);
  rnncore::State s1(m, 1);
  rnncore::State s4(m, 1, 4);
  std::vector<float> x = ramp(4 * 2, 1), y(4 * 3, kNaN);
  std::vector<float> snap(s1.size());
  long before = g_cxx_allocations;
  for (int i = 0; i < 100; ++i) {
    m.step(s1, x.data(), 2, y.data(), 3);
    m.forward_state(s4, x.data(), x.size(), 4, y.data(), y.size());
    s1.get(snap.data(), snap.size());
    s1.set(snap.data(), snap.size());
    s4.reset_stream(0);
  }
  CHECK(g_cxx_allocations == before);
  CHECK(all_finite(y));
}

TEST(snapshot_restore_replays) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, 6, 2, 3), 4);
  rnncore::State s(m, 2);
  for (int i = 0; i < 5; ++i) m.step(s, ramp(4, i));
  auto snap = s.get();
  auto a1 = m.step(s, ramp(4, 50));
  auto a2 = m.step(s, ramp(4, 51));
  s.set(snap);
  CHECK(bit_equal(s.get(), snap));
  CHECK(bit_equal(m.step(s, ramp(4, 50)), a1));
  CHECK(bit_equal(m.step(s, ramp(4, 51)), a2));

  // reset = a fresh state
  s.reset();
  auto zeroed = s.get();
  CHECK(std::all_of(zeroed.begin(), zeroed.end(), [](float v) { return v == 0.0f; }));
  rnncore::State fresh(m, 2);
  CHECK(bit_equal(m.step(s, ramp(4, 60)), m.step(fresh, ramp(4, 60))));
}

TEST(reset_stream_only_that_stream) {
  const std::size_t B = 3, H = 4, L = 2;
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 2, H, L), 4);
  rnncore::State s(m, B);
  for (int i = 0; i < 3; ++i) m.step(s, ramp(B * 2, i));
  auto before = s.get();
  s.reset_stream(1);
  auto after = s.get();
  // planes: h of each layer, then c of each layer; each [B][H]
  for (std::size_t p = 0; p < 2 * L; ++p)
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t k = 0; k < H; ++k) {
        std::size_t i = (p * B + b) * H + k;
        if (b == 1)
          CHECK(after[i] == 0.0f);
        else
          CHECK(after[i] == before[i]);
      }
}

TEST(initial_state_matters_and_is_used) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 2, 5, 1), 8);
  rnncore::State s(m, 1, 3);
  auto x = ramp(3 * 2, 1);
  auto from_zero = m.forward_state(s, x, 3);
  CHECK(max_abs_diff(from_zero, m.forward(x, 1, 3)) < 1e-6f);
  s.set(std::vector<float>(5, 0.5f));
  auto from_half = m.forward_state(s, x, 3);
  CHECK(max_abs_diff(from_zero, from_half) > 1e-3f);
}

// ---------------------------------------------------------------------------------------
// Training

TEST(training_mse_loss_falls) {
  for (rnn_cell cell : {RNN_CELL_LSTM, RNN_CELL_GRU, RNN_CELL_RNN_TANH}) {
    // Learn to echo the input delayed by one step.
    const std::size_t B = 8, T = 10;
    rnncore::Model m(rnncore::make_config(cell, 1, 12, 1, 1), 5);
    auto x = ramp(B * T, 3);
    std::vector<float> target(B * T, 0.0f);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 1; t < T; ++t) target[b * T + t] = x[b * T + t - 1];
    auto tc = rnncore::make_train_config(RNN_OPT_ADAM, 0.02f);
    tc.clip_norm = 1.0f;
    rnncore::Trainer tr(m, tc);
    float first = tr.step_mse(x, B, T, target);
    float last = first;
    for (int i = 0; i < 150; ++i) last = tr.step_mse(x, B, T, target);
    CHECK(std::isfinite(first) && std::isfinite(last));
    CHECK(last < 0.5f * first);
    if (!(last < 0.5f * first)) std::fprintf(stderr, "  cell %d: %g -> %g\n", cell, first, last);
  }
}

TEST(training_xent_loss_falls) {
  // Classify the sign of the running sum, every step; ignore the first step's label.
  const std::size_t B = 8, T = 6;
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU_LBR, 1, 10, 1, 2, RNN_OUTPUT_SOFTMAX), 9);
  auto x = ramp(B * T, 7);
  std::vector<std::int32_t> labels(B * T);
  for (std::size_t b = 0; b < B; ++b) {
    float sum = 0;
    for (std::size_t t = 0; t < T; ++t) {
      sum += x[b * T + t];
      labels[b * T + t] = t == 0 ? -1 : (sum > 0 ? 1 : 0);
    }
  }
  rnncore::Trainer tr(m, rnncore::make_train_config(RNN_OPT_ADAMW, 0.03f));
  float first = tr.step_xent(x, B, T, labels);
  float last = first;
  for (int i = 0; i < 100; ++i) last = tr.step_xent(x, B, T, labels);
  CHECK(last < 0.5f * first);
  // LAST_STEP labels: one per sequence
  std::vector<std::int32_t> last_labels(B);
  for (std::size_t b = 0; b < B; ++b) last_labels[b] = labels[b * T + T - 1];
  float l = tr.step_xent(x, B, T, last_labels, RNN_TARGETS_LAST_STEP);
  CHECK(std::isfinite(l) && l >= 0.0f);
}

TEST(training_with_state_carries_it) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 1, 6, 1, 1), 2);
  rnncore::Trainer tr(m, rnncore::make_train_config(RNN_OPT_SGD, 0.01f));
  rnncore::State s(m, 2);
  auto zeros = s.get();
  auto x = ramp(2 * 4, 1);
  auto target = ramp(2, 2);
  float loss = tr.step_mse(x, 2, 4, target, RNN_TARGETS_LAST_STEP, &s);
  CHECK(std::isfinite(loss));
  CHECK(!bit_equal(s.get(), zeros));  // final state left in it
}

// ---------------------------------------------------------------------------------------
// Variable lengths

TEST(lengths_forward_rows_are_sequences_alone) {
  const std::size_t B = 3, T = 5, I = 2;
  const std::vector<std::uint32_t> full = {5, 5, 5}, lens = {5, 2, 3};
  rnncore::Model uni(rnncore::make_config(RNN_CELL_LSTM, I, 6, 2, 3), 4);
  rnncore::Model bi(rnncore::ModelDesc(RNN_CELL_GRU_LBR, I, 4, 1).bidirectional(), 5);
  auto x = ramp(B * T * I, 8);
  for (rnncore::Model* m : {&uni, &bi}) {
    const std::size_t o = m->output_size();
    CHECK(bit_equal(m->forward(x, B, T, full), m->forward(x, B, T)));
    auto y = m->forward(x, B, T, lens);
    CHECK(y.size() == B * T * o);
    for (std::size_t b = 0; b < B; ++b) {
      const std::size_t n = lens[b];
      std::vector<float> xb(x.begin() + b * T * I, x.begin() + (b * T + n) * I);
      auto alone = m->forward(xb, 1, n);
      std::vector<float> row(y.begin() + b * T * o, y.begin() + (b * T + n) * o);
      CHECK(max_abs_diff(row, alone) < 1e-5f);
      CHECK(std::all_of(y.begin() + (b * T + n) * o, y.begin() + (b + 1) * T * o,
                        [](float v) { return v == 0.0f; }));
    }
  }
  // Bad lengths: RNN_ERR_NULL / RNN_ERR_INVALID, the output untouched.
  std::vector<float> y(B * T * 3, kNaN);
  const std::uint32_t zero[] = {5, 0, 1};
  CHECK_STATUS(uni.forward(x.data(), x.size(), B, T, nullptr, B, y.data(), y.size()),
               RNN_ERR_NULL);
  CHECK_STATUS(uni.forward(x.data(), x.size(), B, T, zero, B, y.data(), y.size()),
               RNN_ERR_INVALID);
  CHECK_STATUS(uni.forward(x.data(), x.size(), B, T, zero, 2, y.data(), y.size()),
               RNN_ERR_INVALID);
  CHECK_STATUS(uni.forward(x, B, T, std::vector<std::uint32_t>{5, 6, 1}), RNN_ERR_INVALID);
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }));
}

TEST(lengths_forward_state_keeps_each_streams_last) {
  const std::size_t B = 2, T = 4;
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 1, 5, 1, 2), 3);
  rnncore::State a(m, B, T), s(m, B, T), one(m, 1, T);
  auto x = ramp(B * T, 6);
  auto ya = m.forward_state(a, x, T);
  auto ys = m.forward_state(s, x, T, {4, 4});
  CHECK(bit_equal(ya, ys) && bit_equal(a.get(), s.get()));
  s.reset();
  auto y = m.forward_state(s, x, T, {4, 2});
  auto y1 = m.forward_state(one, std::vector<float>(x.begin() + T, x.begin() + T + 2), 2);
  CHECK(max_abs_diff(std::vector<float>(y.begin() + T * 2, y.begin() + T * 2 + 4), y1) < 1e-5f);
  CHECK(y[T * 2 + 4] == 0.0f && y[T * 2 + 7] == 0.0f);
  auto st = s.get(), st1 = one.get();
  CHECK(max_abs_diff(std::vector<float>(st.begin() + 5, st.begin() + 10), st1) < 1e-5f);
  auto before = s.get();
  CHECK_STATUS(m.forward_state(s, x, T, {4, 5}), RNN_ERR_INVALID);
  CHECK_STATUS(m.forward_state(s, x, T, {4}), RNN_ERR_INVALID);
  CHECK(bit_equal(s.get(), before));
}

TEST(lengths_trainer_steps) {
  const std::size_t B = 3, T = 5;
  const std::vector<std::uint32_t> full = {5, 5, 5}, lens = {5, 1, 3};
  auto cfg = rnncore::make_config(RNN_CELL_LSTM, 1, 6, 1, 2);
  rnncore::Model a(cfg, 7), b(cfg, 7), c(cfg, 7);
  auto tc = rnncore::make_train_config(RNN_OPT_ADAM, 0.05f);
  rnncore::Trainer ta(a, tc), tb(b, tc), tcc(c, tc);
  auto x = ramp(B * T, 1);
  auto target = ramp(B * T * 2, 2);
  std::vector<std::int32_t> labels(B * T, 1);
  CHECK(ta.step_mse(x, B, T, target) == tb.step_mse(x, B, T, full, target));
  CHECK(ta.step_xent(x, B, T, labels) == tb.step_xent(x, B, T, full, labels));
  CHECK(bit_equal(a.forward(x, B, T), b.forward(x, B, T)));
  // Targets past a length do not count; the weights move differently from full lengths.
  auto t2 = target;
  for (std::size_t i = 2; i < T * 2; ++i) t2[T * 2 + i] = 7.0f;
  rnncore::State s(c, B);
  float l1 = tcc.step_mse(x, B, T, lens, target, RNN_TARGETS_EVERY_STEP, &s);
  CHECK(std::isfinite(l1));
  rnncore::Model d(cfg, 7);
  rnncore::Trainer td(d, tc);
  CHECK(td.step_mse(x, B, T, lens, t2) == l1);
  CHECK(tcc.step_xent(x, B, T, lens, labels, RNN_TARGETS_EVERY_STEP, &s) > 0.0f);
  CHECK(!bit_equal(a.forward(x, B, T), c.forward(x, B, T)));
  auto before = c.forward(x, B, T);
  auto sb = s.get();
  CHECK_STATUS(tcc.step_mse(x, B, T, {5, 0, 1}, target), RNN_ERR_INVALID);
  CHECK_STATUS(tcc.step_xent(x, B, T, {5, 1}, labels, RNN_TARGETS_EVERY_STEP, &s),
               RNN_ERR_INVALID);
  CHECK(bit_equal(c.forward(x, B, T), before) && bit_equal(s.get(), sb));
}

// ---------------------------------------------------------------------------------------
// Save / load

TEST(save_load_roundtrip) {
  for (rnn_cell cell : kCells) {
    const std::uint32_t head = cell == RNN_CELL_LSTM ? 0u : 4u;
    const rnn_output act = cell == RNN_CELL_GRU ? RNN_OUTPUT_SOFTMAX : RNN_OUTPUT_IDENTITY;
    auto cfg = rnncore::make_config(cell, 3, 5, 2, head, act);
    rnncore::Model m(cfg, 100 + cell);
    auto path = (temp_dir() / ("rt" + std::to_string(cell) + ".safetensors")).string();
    m.save(path);
    rnncore::Model back = rnncore::Model::load(path);
    rnn_config got = back.config();
    CHECK(std::memcmp(&got, &cfg, sizeof cfg) == 0);
    auto x = ramp(2 * 4 * 3, 5);
    CHECK(bit_equal(back.forward(x, 2, 4), m.forward(x, 2, 4)));
  }
  // after training, the trained weights are what is saved
  rnncore::Model m(rnncore::make_config(RNN_CELL_GRU, 2, 4, 1, 1), 3);
  {
    rnncore::Trainer tr(m, rnncore::make_train_config(RNN_OPT_SGD, 0.3f));
    tr.step_mse(ramp(2 * 3 * 2, 1), 2, 3, ramp(2 * 3, 2));
  }
  auto path = (temp_dir() / "trained.safetensors").string();
  m.save(path);
  auto x = ramp(2 * 3 * 2, 9);
  CHECK(bit_equal(rnncore::Model::load(path).forward(x, 2, 3), m.forward(x, 2, 3)));
}

// ---------------------------------------------------------------------------------------
// Threads

TEST(concurrent_forward_and_step_share_a_model) {
  rnncore::Model m(rnncore::make_config(RNN_CELL_LSTM, 3, 16, 2, 4), 6);
  auto x = ramp(4 * 8 * 3, 1);
  auto want = m.forward(x, 4, 8);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      try {
        rnncore::State s(m, 4, 8);
        for (int r = 0; r < 20; ++r) {
          if ((r + k) % 2 == 0) {
            if (!bit_equal(m.forward(x, 4, 8), want)) ++mismatches;
          } else {
            s.reset();
            if (max_abs_diff(m.forward_state(s, x, 8), want) > 1e-5f) ++mismatches;
          }
        }
      } catch (...) {
        ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(mismatches.load() == 0);
}

TEST(last_error_is_per_thread) {
  // An error on another thread does not change this thread's message.
  CHECK_STATUS(rnncore::Model(rnncore::make_config(RNN_CELL_LSTM, 0, 4), 1), RNN_ERR_INVALID);
  std::string mine = rnn_last_error();
  std::thread([] {
    try {
      auto cfg = rnncore::make_config(RNN_CELL_LSTM, 1, 1);
      cfg.cell = 42;
      rnncore::Model m(cfg, 1);
    } catch (const rnncore::Error&) {
    }
  }).join();
  CHECK(std::string(rnn_last_error()) == mine);
}

}  // namespace

int main() {
  // Line-buffered, so nothing is lost if a sanitizer ends the process at exit.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int passed = 0, failed = 0;
  for (const auto& tc : registry()) {
    g_checks_failed_in_test = 0;
    try {
      tc.fn();
    } catch (const rnncore::Error& e) {
      ++g_checks_failed_in_test;
      std::fprintf(stderr, "%s: unexpected rnncore::Error (status %u): %s\n", tc.name,
                   static_cast<unsigned>(e.status()), e.what());
    } catch (const std::exception& e) {
      ++g_checks_failed_in_test;
      std::fprintf(stderr, "%s: unexpected exception: %s\n", tc.name, e.what());
    }
    if (g_checks_failed_in_test == 0) {
      ++passed;
      std::printf("ok   %s\n", tc.name);
    } else {
      ++failed;
      std::printf("FAIL %s (%d checks)\n", tc.name, g_checks_failed_in_test);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(temp_dir(), ec);
  std::printf("%d passed, %d failed\n", passed, failed);
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}
