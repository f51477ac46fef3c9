// The header compiled as C++ (run_tests.sh: -std=c++11 -Wall -Wextra -Werror -pedantic),
// linked against the static library and run: extern "C" linkage, enum and struct types.
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "rnncore.h"

static_assert(RNN_OK == 0 && RNN_ERR_PANIC == 7, "rnn_status numbers");
static_assert(RNN_CELL_GRU_LBR == 4 && RNN_OUTPUT_SOFTMAX == 1, "enum numbers");
static_assert(sizeof(rnn_config) == 6 * sizeof(uint32_t), "rnn_config is six uint32_t");
static_assert(sizeof(rnn_train_config) == 8 * 4, "rnn_train_config is packed as in C");
static_assert(std::is_standard_layout<rnn_config>::value, "plain C struct");
// rnn_model_desc's first version is fixed: later versions only append fields.
static_assert(sizeof(rnn_model_desc) == RNN_MODEL_DESC_SIZE_V1, "rnn_model_desc v1 size");
static_assert(offsetof(rnn_model_desc, struct_size) == 0 && offsetof(rnn_model_desc, dropout) == 36 && offsetof(rnn_model_desc, num_post) == 52 &&
                  offsetof(rnn_model_desc, pre) == 56 && offsetof(rnn_model_desc, post) == 184,
              "rnn_model_desc v1 layout");
static_assert(sizeof(rnn_dense) == 8 && RNN_MAX_DENSE == 16 && RNN_ACT_SOFTMAX == 5,
              "rnn_dense, RNN_MAX_DENSE, rnn_activation");
static_assert(std::is_standard_layout<rnn_model_desc>::value, "plain C struct");

int main() {
    rnn_config c = {RNN_CELL_GRU, 2, 8, 1, 0, RNN_OUTPUT_IDENTITY};
    rnn_model *m = nullptr;
    rnn_state *s = nullptr;
    float x[2] = {0.5f, -0.25f}, y[8];
    if (rnn_model_new(&c, 1, &m) != RNN_OK || rnn_state_new(m, 1, &s) != RNN_OK) {
        std::fprintf(stderr, "%s\n", rnn_last_error());
        return 1;
    }
    rnn_status st = rnn_model_step(m, s, x, 2, y, 8);
    rnn_status bad = rnn_model_step(m, s, x, 3, y, 8);
    std::printf("C++: rnncore %s, step %s, wrong x_len: %s\n", rnn_version(), rnn_status_str(st),
                rnn_last_error());
    rnn_state_free(s);
    rnn_model_free(m);
    return st == RNN_OK && bad == RNN_ERR_INVALID && std::strstr(rnn_last_error(), "x_len") ? 0 : 1;
}
