/* fuzz_config.c - config.json (model/config.c): any bytes give a config
 * or an error, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    fl_model_config cfg;
    fl_error err;
    if (fl_model_config_parse(&cfg, text, "config.json", &err) == 0)
        (void)fl_model_config_kv_bytes_per_token(&cfg, cfg.dtype);
    free(text);
    return 0;
}
