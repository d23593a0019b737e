/* json_file.c - see json_file.h. */
#include "base/json_file.h"

#include <stdlib.h>

#include "base/mapped_file.h"

json_t *fl_json_load_file(const char *path, size_t flags, fl_error *err)
{
    size_t len;
    char *text = fl_read_text_file(path, &len, err);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, flags, &jerr);
    free(text);
    if (!root)
        fl_fail(err, "%s: malformed JSON (%s, line %d)", path, jerr.text, jerr.line);
    return root;
}
