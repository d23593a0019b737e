/* model.c - resolving a model name to a config and weights (see model.h). */
#include "model/model.h"

#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"

int fl_load_format_parse(const char *s, fl_load_format *out, fl_error *err)
{
    if (strcmp(s, "auto") == 0 || strcmp(s, "safetensors") == 0)
        *out = FL_LOAD_AUTO;
    else if (strcmp(s, "dummy") == 0)
        *out = FL_LOAD_DUMMY;
    else
        return fl_fail(err, "--load-format: '%s' is not one of auto, safetensors, dummy", s);
    return 0;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fl_model_load(fl_model *m, const char *name, fl_load_format format, uint64_t seed,
                  fl_error *err)
{
    memset(m, 0, sizeof *m);
    const int dummy = format != FL_LOAD_AUTO;
    const char *builtin = is_directory(name) ? NULL : fl_builtin_config_json(name);
    int rc;
    if (builtin && dummy)
        rc = fl_model_config_parse(&m->cfg, builtin, name, err);
    else if (is_directory(name))
        rc = fl_model_config_load_dir(&m->cfg, name, err);
    else if (builtin)
        return fl_fail(err, "model '%s': no such directory; the built-in config of that name "
                       "runs with --load-format dummy", name);
    else
        return fl_fail(err, "model '%s': no such directory (and not a built-in model name)", name);
    if (rc != 0)
        return -1;
    if (format == FL_LOAD_AUTO)
        rc = fl_weights_load(&m->weights, &m->cfg, name, err);
    else if (format == FL_LOAD_DUMMY)
        rc = fl_weights_init_dummy(&m->weights, &m->cfg, seed, err);
    else
        fl_weights_init_shapes(&m->weights, &m->cfg);
    if (rc != 0)
        return -1;
    m->name = fl_strdup(name);
    m->builtin = builtin != NULL;
    m->format = format;
    return 0;
}

void fl_model_free(fl_model *m)
{
    fl_weights_free(&m->weights);
    free(m->name);
    memset(m, 0, sizeof *m);
}
