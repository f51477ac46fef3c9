/* Inference: run whole sequences through a model and print the last step's outputs.
 *
 *   infer                 a fresh LSTM (seeded), 2 sequences of 5 steps
 *   infer model.safetensors   a model saved by rnncore or PyTorch (safetensors)
 */
#include <stdio.h>
#include <stdlib.h>

#include "rnncore.h"

static int fail(const char *what, rnn_status s) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, rnn_status_str(s), rnn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    rnn_model *model = NULL;
    rnn_config cfg;
    rnn_status s;
    size_t batch = 2, seq_len = 5, out_size, i, b, t;
    float *x, *y;

    if (rnn_abi_version() < RNN_ABI_VERSION) {
        fprintf(stderr, "the library is older than its header (ABI version)\n");
        return 1;
    }
    if (argc > 1) {
        s = rnn_model_load(argv[1], &model);
        if (s != RNN_OK) return fail("rnn_model_load", s);
    } else {
        rnn_config c = {RNN_CELL_LSTM, 4, 16, 2, 3, RNN_OUTPUT_SOFTMAX};
        s = rnn_model_new(&c, 42, &model);
        if (s != RNN_OK) return fail("rnn_model_new", s);
    }
    rnn_model_config(model, &cfg);
    out_size = rnn_model_output_size(model);
    printf("rnncore %s: cell %u, %u -> %u x %u layers -> %zu outputs\n", rnn_version(),
           (unsigned)cfg.cell, (unsigned)cfg.input_size, (unsigned)cfg.hidden_size,
           (unsigned)cfg.num_layers, out_size);

    /* x: [batch][seq_len][input_size], y: [batch][seq_len][output size] */
    x = malloc(batch * seq_len * cfg.input_size * sizeof *x);
    y = malloc(batch * seq_len * out_size * sizeof *y);
    if (!x || !y) return 1;
    for (i = 0; i < batch * seq_len * cfg.input_size; i++) x[i] = (float)((i % 7) - 3) / 3.0f;

    s = rnn_model_forward(model, x, batch, seq_len, y, batch * seq_len * out_size);
    if (s != RNN_OK) return fail("rnn_model_forward", s);
    for (b = 0; b < batch; b++) {
        t = seq_len - 1;
        printf("sequence %zu, last step:", b);
        for (i = 0; i < out_size && i < 8; i++) printf(" %.4f", y[(b * seq_len + t) * out_size + i]);
        printf("%s\n", out_size > 8 ? " ..." : "");
    }
    free(x);
    free(y);
    rnn_model_free(model);
    return 0;
}
