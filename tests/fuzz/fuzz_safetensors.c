/* fuzz_safetensors.c - a .safetensors file (model/safetensors.c): header
 * and offsets validated, every tensor it accepts lies inside the file. */
#include <stdint.h>

#include "fuzz_common.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.safetensors", data, size);
    fl_safetensors st;
    fl_error err;
    if (fl_safetensors_open_file(&st, path, &err) != 0)
        return 0;
    volatile uint8_t sum = 0;
    for (int i = 0; i < st.num_tensors; i++) {
        const fl_tensor *t = &st.tensors[i];
        if (t->nbytes && t->data) /* touch both ends: ASan says if outside the mapping */
            sum ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    fl_safetensors_free(&st);
    return 0;
}
