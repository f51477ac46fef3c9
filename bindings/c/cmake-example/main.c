/* The smallest rnncore program: make a model, step it once, print the output. */
#include <stdio.h>

#include "rnncore.h"

int main(void) {
    rnn_config c = {RNN_CELL_LSTM, 1, 4, 1, 1, RNN_OUTPUT_IDENTITY};
    rnn_model *model = NULL;
    rnn_state *state = NULL;
    float x = 1.0f, y = 0.0f;
    if (rnn_model_new(&c, 1, &model) != RNN_OK || rnn_state_new(model, 1, &state) != RNN_OK ||
        rnn_model_step(model, state, &x, 1, &y, 1) != RNN_OK) {
        fprintf(stderr, "rnncore: %s\n", rnn_last_error());
        return 1;
    }
    printf("rnncore %s: y = %f\n", rnn_version(), y);
    rnn_state_free(state);
    rnn_model_free(model);
    return 0;
}
