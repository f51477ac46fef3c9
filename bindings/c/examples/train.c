/* Training: teach a small LSTM to echo its input one step late, printing the falling
 * loss, then save the trained model.
 *
 *   train [out.safetensors]
 */
#include <stdio.h>
#include <stdlib.h>

#include "rnncore.h"

#define BATCH 8
#define SEQ 12
#define STEPS 200

static int fail(const char *what, rnn_status s) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, rnn_status_str(s), rnn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    rnn_config c = {RNN_CELL_LSTM, 1, 16, 1, 1, RNN_OUTPUT_IDENTITY};
    rnn_train_config tc = {RNN_OPT_ADAM, 0.02f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f};
    rnn_model *model = NULL;
    rnn_trainer *trainer = NULL;
    float x[BATCH * SEQ], target[BATCH * SEQ], loss = 0.0f, first = 0.0f;
    unsigned seed = 1;
    int step, i;
    rnn_status s;

    /* x: [BATCH][SEQ][1] random bits; target: x delayed by one step */
    for (i = 0; i < BATCH * SEQ; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 16) & 1);
    }
    for (i = 0; i < BATCH * SEQ; i++) target[i] = i % SEQ == 0 ? 0.0f : x[i - 1];

    if ((s = rnn_model_new(&c, 3, &model)) != RNN_OK) return fail("rnn_model_new", s);
    /* the trainer keeps `model` and updates it: free the trainer first */
    if ((s = rnn_trainer_new(model, &tc, &trainer)) != RNN_OK) return fail("rnn_trainer_new", s);
    for (step = 0; step < STEPS; step++) {
        s = rnn_trainer_step_mse(trainer, NULL, x, BATCH, SEQ, target, BATCH * SEQ,
                                 RNN_TARGETS_EVERY_STEP, &loss);
        if (s != RNN_OK) return fail("rnn_trainer_step_mse", s);
        if (step == 0) first = loss;
        if (step % 20 == 0 || step == STEPS - 1) printf("step %3d  loss %.6f\n", step, loss);
    }
    rnn_trainer_free(trainer);
    if (argc > 1) {
        if ((s = rnn_model_save(model, argv[1])) != RNN_OK) return fail("rnn_model_save", s);
        printf("saved %s\n", argv[1]);
    }
    rnn_model_free(model);
    if (!(loss < 0.1f * first)) {
        fprintf(stderr, "the loss did not fall enough: %g -> %g\n", first, loss);
        return 1;
    }
    return 0;
}
