// rnncore.hpp: header-only C++17 RAII wrapper over the rnncore C ABI (include/rnncore.h).
//
// Ownership: Model, State and Trainer each own one C handle, are move-only, and free it in
// their destructor. A moved-from object is empty (`!obj`); destroying or assigning to it is
// safe, and calling a method on it throws rnncore::Error with RNN_ERR_NULL.
//
// Errors: every non-OK rnn_status becomes an rnncore::Error (a std::runtime_error) carrying
// the status and the rnn_last_error() message of the failing call (which names the
// function). Sizes the C ABI cannot check itself (an `x` passed without its length) are
// checked here and reported the same way, as RNN_ERR_INVALID. Per the C contract, a failed
// call changes nothing the caller owns.
//
// Threads (as the C ABI): a Model may be used by any number of threads at once for
// forward/step/forward_state (each thread with its own State). A State or Trainer is used by
// one thread at a time. Trainer::step_* changes its model's weights: while it runs, no other
// call may use that model.
//
// Layouts: all arrays are row-major float. x: [batch][seq_len][input_size],
// y: [batch][seq_len][output_size()]. State snapshots: h as [num_layers][batch][H], then for
// LSTM c as [num_layers][batch][H].
#ifndef RNNCORE_HPP
#define RNNCORE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "rnncore.h"

namespace rnncore {

// ---------------------------------------------------------------------------------------
// Errors

/// A failed rnncore call: the C status and the library's message.
class Error : public std::runtime_error {
 public:
  Error(rnn_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}

  /// The rnn_status the C function returned (never RNN_OK).
  rnn_status status() const noexcept { return status_; }

 private:
  rnn_status status_;
};

namespace detail {

/// Throws Error for a non-OK status with this thread's rnn_last_error() message (which
/// names the function and the argument); `what` stands in if the message is empty.
inline void check(rnn_status status, const char* what) {
  if (status == RNN_OK) return;
  const char* msg = rnn_last_error();
  if (msg != nullptr && *msg != '\0') throw Error(status, msg);
  throw Error(status, std::string(what) + ": " + rnn_status_str(status));
}

/// Throws RNN_ERR_INVALID for a size the C ABI cannot check (an array passed without length).
[[noreturn]] inline void size_error(const char* what, std::size_t got, std::size_t expected) {
  throw Error(RNN_ERR_INVALID, std::string(what) + " has " + std::to_string(got) +
                                   " elements, expected " + std::to_string(expected));
}

/// a * b * c, or RNN_ERR_INVALID on overflow.
inline std::size_t product(const char* what, std::size_t a, std::size_t b, std::size_t c = 1) {
  std::size_t out = 1;
  for (std::size_t d : {a, b, c}) {
    if (d != 0 && out > static_cast<std::size_t>(-1) / d) {
      throw Error(RNN_ERR_INVALID, std::string(what) + ": size overflows");
    }
    out *= d;
  }
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Library-wide

/// The library version, "MAJOR.MINOR.PATCH".
inline std::string version() { return rnn_version(); }

/// A short English description of a status (e.g. "a required pointer was NULL").
inline std::string status_str(rnn_status status) { return rnn_status_str(status); }

/// The ABI generation of the linked library: at least RNN_ABI_VERSION of the header this
/// program was built with (the ABI only grows). `check_abi()` throws when it is older.
inline std::uint32_t abi_version() { return rnn_abi_version(); }

/// The SIMD kernel tier in use: "avx512", "avx2" or "scalar".
inline std::string kernel_name() { return rnn_kernel_name(); }

/// Throws RNN_ERR_INVALID when the linked library is older than this header (its ABI
/// generation is below RNN_ABI_VERSION); a newer library runs this program unchanged.
inline void check_abi() {
  if (rnn_abi_version() < RNN_ABI_VERSION) {
    throw Error(RNN_ERR_INVALID, "rnncore: library ABI version " +
                                     std::to_string(rnn_abi_version()) + ", older than header " +
                                     std::to_string(RNN_ABI_VERSION));
  }
}

/// Threads used for batched work; 0 goes back to the default (one per core).
/// Streaming steps always run on the calling thread.
inline void set_num_threads(std::size_t n) {
  detail::check(rnn_set_num_threads(n), "rnn_set_num_threads");
}

/// Threads batched work runs on now.
inline std::size_t num_threads() { return rnn_get_num_threads(); }

/// A model configuration (see rnn_config). Any field may be set to any value; the library
/// validates it when a Model is made (RNN_ERR_INVALID).
inline rnn_config make_config(rnn_cell cell, std::uint32_t input_size, std::uint32_t hidden_size,
                              std::uint32_t num_layers = 1, std::uint32_t output_size = 0,
                              rnn_output output_activation = RNN_OUTPUT_IDENTITY) {
  rnn_config c{};
  c.cell = static_cast<std::uint32_t>(cell);
  c.input_size = input_size;
  c.hidden_size = hidden_size;
  c.num_layers = num_layers;
  c.output_size = output_size;
  c.output_activation = static_cast<std::uint32_t>(output_activation);
  return c;
}

/// Training hyperparameters with PyTorch's defaults (beta1 0.9, beta2 0.999, eps 1e-8,
/// no momentum, no weight decay, no clipping).
inline rnn_train_config make_train_config(rnn_optimizer optimizer, float learning_rate) {
  rnn_train_config t{};
  t.optimizer = static_cast<std::uint32_t>(optimizer);
  t.learning_rate = learning_rate;
  t.momentum = 0.0f;
  t.beta1 = 0.9f;
  t.beta2 = 0.999f;
  t.eps = 1e-8f;
  t.weight_decay = 0.0f;
  t.clip_norm = 0.0f;
  return t;
}

/// A model's full description (rnn_model_desc): the recurrent stack, its head, dense layers
/// before and after it, the skip and an initial forget-gate bias. Always zero-initialised
/// with struct_size set, as the C ABI asks; the setters return *this to chain:
///
///   auto d = rnncore::ModelDesc(RNN_CELL_LSTM, 1, 32).pre(8, RNN_ACT_TANH)
///                .post(1, RNN_ACT_IDENTITY).skip().forget_bias(1.0f);
///   rnncore::Model m(d, 7);
///
/// Any value may be set; the library validates it when a Model is made (RNN_ERR_INVALID
/// naming the field). Only pre()/post() past RNN_MAX_DENSE layers throw here.
class ModelDesc {
 public:
  ModelDesc(rnn_cell cell, std::uint32_t input_size, std::uint32_t hidden_size,
            std::uint32_t num_layers = 1) {
    d_.cell = static_cast<std::uint32_t>(cell);
    d_.input_size = input_size;
    d_.hidden_size = hidden_size;
    d_.num_layers = num_layers;
  }
  /// A copy of a C description (struct_size is this header's).
  explicit ModelDesc(const rnn_model_desc& d) : d_(d) { d_.struct_size = sizeof(rnn_model_desc); }

  /// A dense head H -> output_size right after the stack (none with post layers).
  ModelDesc& head(std::uint32_t output_size, rnn_output activation = RNN_OUTPUT_IDENTITY) {
    d_.output_size = output_size;
    d_.output_activation = static_cast<std::uint32_t>(activation);
    return *this;
  }
  /// Appends a dense layer before the stack (the first reads input_size features).
  ModelDesc& pre(std::uint32_t size, rnn_activation activation = RNN_ACT_IDENTITY) {
    push(d_.pre, d_.num_pre, "pre", size, activation);
    return *this;
  }
  /// Appends a dense layer after the stack (the last gives the model's outputs).
  ModelDesc& post(std::uint32_t size, rnn_activation activation = RNN_ACT_IDENTITY) {
    push(d_.post, d_.num_post, "post", size, activation);
    return *this;
  }
  /// Adds the model's input to its output (needs equal widths).
  ModelDesc& skip(bool on = true) {
    d_.skip = on ? 1u : 0u;
    return *this;
  }
  /// Initial LSTM forget-gate bias (0 = PyTorch's initialisation; 1 is usual).
  ModelDesc& forget_bias(float bias) {
    d_.forget_bias = bias;
    return *this;
  }
  /// Reserved: refused by this build of the library until the core supports them.
  ModelDesc& bidirectional(bool on = true) {
    d_.bidirectional = on ? 1u : 0u;
    return *this;
  }
  ModelDesc& proj_size(std::uint32_t size) {
    d_.proj_size = size;
    return *this;
  }
  ModelDesc& dropout(float p) {
    d_.dropout = p;
    return *this;
  }

  /// The C struct, to read or change any field directly.
  const rnn_model_desc& c() const noexcept { return d_; }
  rnn_model_desc& c() noexcept { return d_; }

  rnn_cell cell() const noexcept { return static_cast<rnn_cell>(d_.cell); }
  std::uint32_t input_size() const noexcept { return d_.input_size; }
  std::uint32_t hidden_size() const noexcept { return d_.hidden_size; }
  std::uint32_t num_layers() const noexcept { return d_.num_layers; }
  std::uint32_t output_size() const noexcept { return d_.output_size; }
  bool has_skip() const noexcept { return d_.skip != 0; }
  /// The dense layers before / after the stack, in order (at most RNN_MAX_DENSE read).
  std::vector<rnn_dense> pre_layers() const { return list(d_.pre, d_.num_pre); }
  std::vector<rnn_dense> post_layers() const { return list(d_.post, d_.num_post); }

  /// Field-by-field equality of the C structs.
  friend bool operator==(const ModelDesc& a, const ModelDesc& b) noexcept {
    return std::memcmp(&a.d_, &b.d_, sizeof(rnn_model_desc)) == 0;
  }
  friend bool operator!=(const ModelDesc& a, const ModelDesc& b) noexcept { return !(a == b); }

 private:
  static void push(rnn_dense* layers, std::uint32_t& count, const char* which, std::uint32_t size,
                   rnn_activation activation) {
    if (count >= RNN_MAX_DENSE) {
      throw Error(RNN_ERR_INVALID, std::string("rnncore::ModelDesc: more than ") +
                                       std::to_string(RNN_MAX_DENSE) + " " + which +
                                       " layers (RNN_MAX_DENSE)");
    }
    layers[count].size = size;
    layers[count].activation = static_cast<std::uint32_t>(activation);
    ++count;
  }
  static std::vector<rnn_dense> list(const rnn_dense* layers, std::uint32_t count) {
    std::size_t n = count < RNN_MAX_DENSE ? count : RNN_MAX_DENSE;
    return std::vector<rnn_dense>(layers, layers + n);
  }

  rnn_model_desc d_ = zeroed();
  static rnn_model_desc zeroed() noexcept {
    rnn_model_desc d;
    std::memset(&d, 0, sizeof d);
    d.struct_size = sizeof(rnn_model_desc);
    return d;
  }
};

class State;
class Trainer;

// ---------------------------------------------------------------------------------------
// Model

/// Owns an rnn_model. Immutable except through a Trainer; shareable across threads.
class Model {
 public:
  /// An empty model (no handle).
  Model() noexcept = default;

  /// A new model with PyTorch-like initialization from `seed`.
  Model(const rnn_config& config, std::uint64_t seed) {
    detail::check(rnn_model_new(&config, seed, &handle_), "rnn_model_new");
    cache_sizes();
  }

  /// A new model from a full description (rnn_model_new_desc): dense layers, skip,
  /// forget-gate bias. Without those, the same weights as Model(config, seed).
  Model(const ModelDesc& desc, std::uint64_t seed) {
    detail::check(rnn_model_new_desc(&desc.c(), seed, &handle_), "rnn_model_new_desc");
    cache_sizes();
  }

  /// Loads a safetensors file (PyTorch tensor names; see API.md "Weight files").
  static Model load(const std::string& path) {
    Model m;
    detail::check(rnn_model_load(path.c_str(), &m.handle_), "rnn_model_load");
    m.cache_sizes();
    return m;
  }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        input_size_(std::exchange(other.input_size_, 0)),
        output_size_(std::exchange(other.output_size_, 0)) {}
  Model& operator=(Model&& other) noexcept {
    if (this != &other) {
      rnn_model_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
      input_size_ = std::exchange(other.input_size_, 0);
      output_size_ = std::exchange(other.output_size_, 0);
    }
    return *this;
  }
  ~Model() { rnn_model_free(handle_); }

  /// Whether this object holds a model.
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  /// The C handle (still owned by this object).
  rnn_model* handle() const noexcept { return handle_; }

  /// Writes the weights and config as safetensors; atomic (never a partial file).
  void save(const std::string& path) const {
    detail::check(rnn_model_save(handle_, path.c_str()), "rnn_model_save");
  }

  rnn_config config() const {
    rnn_config c{};
    detail::check(rnn_model_config(handle_, &c), "rnn_model_config");
    return c;
  }

  /// The model's full description (rnn_model_describe): for any model, loaded ones
  /// included. forget_bias reads 0.
  ModelDesc describe() const {
    ModelDesc d(RNN_CELL_LSTM, 0, 0);
    detail::check(rnn_model_describe(handle_, &d.c()), "rnn_model_describe");
    return d;
  }

  /// Elements per output row: output_size, or hidden_size without a head. 0 when empty.
  std::size_t output_size() const noexcept { return output_size_; }
  /// Features per timestep. 0 when empty.
  std::size_t input_size() const noexcept { return input_size_; }

  /// Whole sequences from zero state. x: [batch][seq_len][input_size] (x_len elements),
  /// y: [batch][seq_len][output_size()] (y_len elements).
  void forward(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len, float* y,
               std::size_t y_len) const {
    check_x(x_len, batch, seq_len);
    detail::check(rnn_model_forward(handle_, x, batch, seq_len, y, y_len), "rnn_model_forward");
  }

  std::vector<float> forward(const std::vector<float>& x, std::size_t batch,
                             std::size_t seq_len) const {
    check_x(x.size(), batch, seq_len);  // before allocating y from possibly bad sizes
    std::vector<float> y(detail::product("y", batch, seq_len, output_size()));
    forward(x.data(), x.size(), batch, seq_len, y.data(), y.size());
    return y;
  }

  /// Whole sequences of different lengths (a padded batch) from zero state:
  /// rnn_model_forward_lengths. lengths: one per sequence (batch of them), each in
  /// 1..seq_len; y holds each sequence's outputs at its valid steps and zeros after.
  void forward(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len,
               const std::uint32_t* lengths, std::size_t lengths_len, float* y,
               std::size_t y_len) const {
    check_x(x_len, batch, seq_len);
    detail::check(rnn_model_forward_lengths(handle_, x, batch, seq_len, lengths, lengths_len, y,
                                            y_len),
                  "rnn_model_forward_lengths");
  }

  std::vector<float> forward(const std::vector<float>& x, std::size_t batch, std::size_t seq_len,
                             const std::vector<std::uint32_t>& lengths) const {
    check_x(x.size(), batch, seq_len);
    std::vector<float> y(detail::product("y", batch, seq_len, output_size()));
    forward(x.data(), x.size(), batch, seq_len, lengths.data(), lengths.size(), y.data(),
            y.size());
    return y;
  }

  /// One timestep of every stream of `state`. x: [batch][input_size], y: [batch][output_size()].
  inline void step(State& state, const float* x, std::size_t x_len, float* y,
                   std::size_t y_len) const;
  inline std::vector<float> step(State& state, const std::vector<float>& x) const;

  /// A block of seq_len (<= the state's max_block) timesteps from `state`, leaving the final
  /// state in it. x: [batch][seq_len][input_size], y: [batch][seq_len][output_size()].
  inline void forward_state(State& state, const float* x, std::size_t x_len, std::size_t seq_len,
                            float* y, std::size_t y_len) const;
  inline std::vector<float> forward_state(State& state, const std::vector<float>& x,
                                          std::size_t seq_len) const;

  /// A block of seq_len timesteps in which stream b advances lengths[b] (1..seq_len) steps:
  /// rnn_model_forward_state_lengths. Its outputs past that are zero and the state keeps
  /// the one after its own last step. Allocates (not for a real-time thread); seq_len is
  /// not limited by max_block. On error neither y nor the state changes.
  inline void forward_state(State& state, const float* x, std::size_t x_len, std::size_t seq_len,
                            const std::uint32_t* lengths, std::size_t lengths_len, float* y,
                            std::size_t y_len) const;
  inline std::vector<float> forward_state(State& state, const std::vector<float>& x,
                                          std::size_t seq_len,
                                          const std::vector<std::uint32_t>& lengths) const;

 private:
  // The config never changes (a Trainer changes weights only), so the sizes are read once:
  // the streaming overloads then make exactly one C call.
  void cache_sizes() {
    input_size_ = config().input_size;
    output_size_ = rnn_model_output_size(handle_);
  }

  void check_x(std::size_t x_len, std::size_t batch, std::size_t seq_len) const {
    if (handle_ == nullptr) return;  // the C call reports RNN_ERR_NULL
    std::size_t want = detail::product("x", batch, seq_len, input_size_);
    if (x_len != want) detail::size_error("x", x_len, want);
  }

  rnn_model* handle_ = nullptr;
  std::size_t input_size_ = 0;
  std::size_t output_size_ = 0;
};

// ---------------------------------------------------------------------------------------
// State

/// Owns an rnn_state: h (and c) of `batch` streams plus scratch for blocks of up to
/// max_block timesteps. Used by one thread at a time. It does not keep a pointer to the
/// model; it works with any model of the same config.
class State {
 public:
  State() noexcept = default;

  /// A zero state for `batch` streams of `model`, for blocks of up to `max_block` timesteps
  /// (rnn_state_new when max_block is 1, else rnn_state_new_block).
  State(const Model& model, std::size_t batch, std::size_t max_block = 1) {
    if (max_block == 1) {
      detail::check(rnn_state_new(model.handle(), batch, &handle_), "rnn_state_new");
    } else {
      detail::check(rnn_state_new_block(model.handle(), batch, max_block, &handle_),
                    "rnn_state_new_block");
    }
    batch_ = batch;
    max_block_ = max_block;
  }

  State(const State&) = delete;
  State& operator=(const State&) = delete;
  State(State&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        batch_(std::exchange(other.batch_, 0)),
        max_block_(std::exchange(other.max_block_, 0)) {}
  State& operator=(State&& other) noexcept {
    if (this != &other) {
      rnn_state_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
      batch_ = std::exchange(other.batch_, 0);
      max_block_ = std::exchange(other.max_block_, 0);
    }
    return *this;
  }
  ~State() { rnn_state_free(handle_); }

  explicit operator bool() const noexcept { return handle_ != nullptr; }
  rnn_state* handle() const noexcept { return handle_; }
  std::size_t batch() const noexcept { return batch_; }
  std::size_t max_block() const noexcept { return max_block_; }

  /// Every stream back to zeros.
  void reset() { detail::check(rnn_state_reset(handle_), "rnn_state_reset"); }
  /// One stream back to zeros (RNN_ERR_INVALID if stream >= batch()).
  void reset_stream(std::size_t stream) {
    detail::check(rnn_state_reset_stream(handle_, stream), "rnn_state_reset_stream");
  }

  /// Elements of a snapshot (0 when empty).
  std::size_t size() const noexcept { return rnn_state_len(handle_); }

  void get(float* out, std::size_t len) const {
    detail::check(rnn_state_get(handle_, out, len), "rnn_state_get");
  }
  std::vector<float> get() const {
    std::vector<float> out(size());
    get(out.data(), out.size());
    return out;
  }
  /// Replaces the snapshot; non-finite values are refused (RNN_ERR_NONFINITE), unchanged.
  void set(const float* in, std::size_t len) {
    detail::check(rnn_state_set(handle_, in, len), "rnn_state_set");
  }
  void set(const std::vector<float>& in) { set(in.data(), in.size()); }

 private:
  rnn_state* handle_ = nullptr;
  std::size_t batch_ = 0;
  std::size_t max_block_ = 0;
};

inline void Model::step(State& state, const float* x, std::size_t x_len, float* y,
                        std::size_t y_len) const {
  detail::check(rnn_model_step(handle_, state.handle(), x, x_len, y, y_len), "rnn_model_step");
}

inline std::vector<float> Model::step(State& state, const std::vector<float>& x) const {
  std::vector<float> y(detail::product("y", state.batch(), output_size()));
  step(state, x.data(), x.size(), y.data(), y.size());
  return y;
}

inline void Model::forward_state(State& state, const float* x, std::size_t x_len,
                                 std::size_t seq_len, float* y, std::size_t y_len) const {
  check_x(x_len, state.batch(), seq_len);
  detail::check(rnn_model_forward_state(handle_, state.handle(), x, seq_len, y, y_len),
                "rnn_model_forward_state");
}

inline std::vector<float> Model::forward_state(State& state, const std::vector<float>& x,
                                               std::size_t seq_len) const {
  check_x(x.size(), state.batch(), seq_len);
  std::vector<float> y(detail::product("y", state.batch(), seq_len, output_size()));
  forward_state(state, x.data(), x.size(), seq_len, y.data(), y.size());
  return y;
}

inline void Model::forward_state(State& state, const float* x, std::size_t x_len,
                                 std::size_t seq_len, const std::uint32_t* lengths,
                                 std::size_t lengths_len, float* y, std::size_t y_len) const {
  check_x(x_len, state.batch(), seq_len);
  detail::check(rnn_model_forward_state_lengths(handle_, state.handle(), x, seq_len, lengths,
                                                lengths_len, y, y_len),
                "rnn_model_forward_state_lengths");
}

inline std::vector<float> Model::forward_state(State& state, const std::vector<float>& x,
                                               std::size_t seq_len,
                                               const std::vector<std::uint32_t>& lengths) const {
  check_x(x.size(), state.batch(), seq_len);
  std::vector<float> y(detail::product("y", state.batch(), seq_len, output_size()));
  forward_state(state, x.data(), x.size(), seq_len, lengths.data(), lengths.size(), y.data(),
                y.size());
  return y;
}

// ---------------------------------------------------------------------------------------
// Trainer

/// Owns an rnn_trainer: optimizer state for one model, whose weights it updates in place.
///
/// LIFETIME: the trainer keeps a pointer to the model's C handle. The Model (or whatever
/// Model object the handle was moved into) must outlive the Trainer, and while a step runs
/// no other call may use that model. Destroy the Trainer first.
class Trainer {
 public:
  Trainer() noexcept = default;

  Trainer(Model& model, const rnn_train_config& config) {
    detail::check(rnn_trainer_new(model.handle(), &config, &handle_), "rnn_trainer_new");
    input_size_ = model.input_size();
  }

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  Trainer(Trainer&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        input_size_(std::exchange(other.input_size_, 0)) {}
  Trainer& operator=(Trainer&& other) noexcept {
    if (this != &other) {
      rnn_trainer_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
      input_size_ = std::exchange(other.input_size_, 0);
    }
    return *this;
  }
  ~Trainer() { rnn_trainer_free(handle_); }

  explicit operator bool() const noexcept { return handle_ != nullptr; }
  rnn_trainer* handle() const noexcept { return handle_; }

  /// One optimizer step on an MSE loss; returns the loss before the update.
  /// x: [batch][seq_len][input_size]; target: [batch][seq_len][out] (EVERY_STEP) or
  /// [batch][out] (LAST_STEP). state: nullptr starts from zeros; otherwise starts from it
  /// and leaves the final state in it (truncated BPTT).
  float step_mse(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len,
                 const float* target, std::size_t target_len,
                 rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    check_x(x_len, batch, seq_len);
    float loss = 0.0f;
    detail::check(rnn_trainer_step_mse(handle_, state != nullptr ? state->handle() : nullptr, x,
                                       batch, seq_len, target, target_len,
                                       static_cast<std::uint32_t>(targets), &loss),
                  "rnn_trainer_step_mse");
    return loss;
  }
  float step_mse(const std::vector<float>& x, std::size_t batch, std::size_t seq_len,
                 const std::vector<float>& target, rnn_targets targets = RNN_TARGETS_EVERY_STEP,
                 State* state = nullptr) {
    return step_mse(x.data(), x.size(), batch, seq_len, target.data(), target.size(), targets,
                    state);
  }

  /// One optimizer step on softmax cross-entropy of the logits; labels are class indices,
  /// -1 = ignored: [batch][seq_len] (EVERY_STEP) or [batch] (LAST_STEP).
  float step_xent(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len,
                  const std::int32_t* labels, std::size_t labels_len,
                  rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    check_x(x_len, batch, seq_len);
    float loss = 0.0f;
    detail::check(rnn_trainer_step_xent(handle_, state != nullptr ? state->handle() : nullptr, x,
                                        batch, seq_len, labels, labels_len,
                                        static_cast<std::uint32_t>(targets), &loss),
                  "rnn_trainer_step_xent");
    return loss;
  }
  float step_xent(const std::vector<float>& x, std::size_t batch, std::size_t seq_len,
                  const std::vector<std::int32_t>& labels,
                  rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    return step_xent(x.data(), x.size(), batch, seq_len, labels.data(), labels.size(), targets,
                     state);
  }

  /// step_mse on a padded batch of sequences of different lengths
  /// (rnn_trainer_step_mse_lengths): lengths, one per sequence in 1..seq_len, come after
  /// seq_len; the loss averages over valid steps only and targets past a length are
  /// ignored (LAST_STEP: each sequence's target is for its own last step).
  float step_mse(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len,
                 const std::uint32_t* lengths, std::size_t lengths_len, const float* target,
                 std::size_t target_len, rnn_targets targets = RNN_TARGETS_EVERY_STEP,
                 State* state = nullptr) {
    check_x(x_len, batch, seq_len);
    float loss = 0.0f;
    detail::check(
        rnn_trainer_step_mse_lengths(handle_, state != nullptr ? state->handle() : nullptr, x,
                                     batch, seq_len, lengths, lengths_len, target, target_len,
                                     static_cast<std::uint32_t>(targets), &loss),
        "rnn_trainer_step_mse_lengths");
    return loss;
  }
  float step_mse(const std::vector<float>& x, std::size_t batch, std::size_t seq_len,
                 const std::vector<std::uint32_t>& lengths, const std::vector<float>& target,
                 rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    return step_mse(x.data(), x.size(), batch, seq_len, lengths.data(), lengths.size(),
                    target.data(), target.size(), targets, state);
  }

  /// step_xent on a padded batch (rnn_trainer_step_xent_lengths): labels past a length
  /// are ignored, the loss averages over the counted labels of valid steps.
  float step_xent(const float* x, std::size_t x_len, std::size_t batch, std::size_t seq_len,
                  const std::uint32_t* lengths, std::size_t lengths_len,
                  const std::int32_t* labels, std::size_t labels_len,
                  rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    check_x(x_len, batch, seq_len);
    float loss = 0.0f;
    detail::check(
        rnn_trainer_step_xent_lengths(handle_, state != nullptr ? state->handle() : nullptr, x,
                                      batch, seq_len, lengths, lengths_len, labels, labels_len,
                                      static_cast<std::uint32_t>(targets), &loss),
        "rnn_trainer_step_xent_lengths");
    return loss;
  }
  float step_xent(const std::vector<float>& x, std::size_t batch, std::size_t seq_len,
                  const std::vector<std::uint32_t>& lengths,
                  const std::vector<std::int32_t>& labels,
                  rnn_targets targets = RNN_TARGETS_EVERY_STEP, State* state = nullptr) {
    return step_xent(x.data(), x.size(), batch, seq_len, lengths.data(), lengths.size(),
                     labels.data(), labels.size(), targets, state);
  }

  /// Seeds the dropout masks of a model with dropout between layers
  /// (rnn_trainer_set_dropout_seed): step n uses masks from (seed, n); 0 by default.
  void set_dropout_seed(std::uint64_t seed) {
    detail::check(rnn_trainer_set_dropout_seed(handle_, seed), "rnn_trainer_set_dropout_seed");
  }

 private:
  void check_x(std::size_t x_len, std::size_t batch, std::size_t seq_len) const {
    if (handle_ == nullptr) return;  // the C call reports RNN_ERR_NULL
    std::size_t want = detail::product("x", batch, seq_len, input_size_);
    if (x_len != want) detail::size_error("x", x_len, want);
  }

  rnn_trainer* handle_ = nullptr;
  std::size_t input_size_ = 0;
};

}  // namespace rnncore

#endif  // RNNCORE_HPP
