/* cli_args.c - vLLM's spellings of a command line, rewritten for getopt_long
 * (see cli_args.h). The --config file is read with libyaml. */
#include "cli/cli_args.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/mapped_file.h"

typedef struct arg_list {
    char **v;
    int n, cap;
} arg_list;

static void push(arg_list *l, char *s) /* takes s */
{
    if (l->n + 2 > l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = fl_realloc(l->v, (size_t)l->cap * sizeof(char *));
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL;
}

static char *concat3(const char *a, const char *b, const char *c)
{
    const size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = fl_malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static const struct option *find_option(const struct option *opts, const char *name, size_t len)
{
    for (const struct option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int is_nargs(const char *const *nargs, const char *name)
{
    for (int i = 0; nargs && nargs[i]; i++)
        if (strcmp(nargs[i], name) == 0)
            return 1;
    return 0;
}

/* `--max_model_len=5` -> `--max-model-len=5`: dashes in the name only. */
static char *dash_name(const char *arg)
{
    char *s = fl_strdup(arg);
    for (char *c = s + 2; *c && *c != '='; c++)
        if (*c == '_')
            *c = '-';
    return s;
}

/* vLLM's short aliases of long flags. */
static const struct {
    const char *alias, *name;
} short_aliases[] = {
    { "-tp", "--tensor-parallel-size" },
    { "-pp", "--pipeline-parallel-size" },
    { "-dp", "--data-parallel-size" },
    { "-q", "--quantization" },
};

static char *expand_alias(const char *arg)
{
    for (size_t i = 0; i < sizeof short_aliases / sizeof short_aliases[0]; i++) {
        const size_t n = strlen(short_aliases[i].alias);
        if (strncmp(arg, short_aliases[i].alias, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
            return concat3(short_aliases[i].name, arg + n, "");
    }
    return NULL;
}

/* ---- the --config file ---- */

static int is_true(const char *s)
{
    return !strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "yes") ||
           !strcmp(s, "on");
}

static int is_false(const char *s)
{
    return !strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE") || !strcmp(s, "no") ||
           !strcmp(s, "off");
}

/* One `key: value` of the file as flags, appended to l. */
static int config_entry(yaml_document_t *doc, yaml_node_t *key, yaml_node_t *value, const char *path,
                        const struct option *opts, const char *const *nargs, fl_cli_args *out,
                        arg_list *l, fl_error *err)
{
    const int line = (int)key->start_mark.line + 1;
    if (key->type != YAML_SCALAR_NODE)
        return fl_fail(err, "--config %s: line %d: a key must be a flag name", path, line);
    char *name = concat3("--", (const char *)key->data.scalar.value, "");
    for (char *c = name + 2; *c; c++)
        if (*c == '_')
            *c = '-';
    const char *bare = name + 2;
    int rc = 0;
    const struct option *o = find_option(opts, bare, strlen(bare));
    if (!o || strchr(bare, '=')) {
        rc = fl_fail(err, "--config %s: line %d: '%s' is not a flag of this command", path, line, bare);
    } else if (value->type == YAML_MAPPING_NODE) {
        rc = fl_fail(err, "--config %s: line %d: '%s': a mapping is not a value flashlm takes", path,
                     line, bare);
    } else if (value->type == YAML_SEQUENCE_NODE) {
        if (!is_nargs(nargs, bare) && o->has_arg != required_argument) {
            rc = fl_fail(err, "--config %s: line %d: '%s' takes one value, not a list", path, line, bare);
        } else {
            int i = 0;
            for (yaml_node_item_t *it = value->data.sequence.items.start;
                 it < value->data.sequence.items.top; it++, i++) {
                yaml_node_t *v = yaml_document_get_node(doc, *it);
                if (v->type != YAML_SCALAR_NODE) {
                    rc = fl_fail(err, "--config %s: line %d: '%s': a list of plain values only", path,
                                 (int)v->start_mark.line + 1, bare);
                    break;
                }
                if (i > 0 && !is_nargs(nargs, bare)) {
                    rc = fl_fail(err, "--config %s: line %d: '%s' takes one value, not a list", path,
                                 line, bare);
                    break;
                }
                push(l, concat3(name, i ? FL_CLI_MORE_SUFFIX "=" : "=", (const char *)v->data.scalar.value));
            }
            if (rc == 0 && i == 0)
                rc = fl_fail(err, "--config %s: line %d: '%s': an empty list", path, line, bare);
        }
    } else {
        const char *text = (const char *)value->data.scalar.value;
        const int plain = value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (o->has_arg == no_argument) {
            char no[256];
            snprintf(no, sizeof no, "no-%s", bare);
            if (plain && is_true(text))
                push(l, fl_strdup(name));
            else if (plain && is_false(text)) {
                if (find_option(opts, no, strlen(no)))
                    push(l, concat3("--", no, ""));
                /* else false is the default of a store-true flag: nothing to pass */
            } else
                rc = fl_fail(err, "--config %s: line %d: '%s' takes true or false, not '%s'", path, line,
                             bare, text);
        } else if (strcmp(bare, "model") == 0) {
            out->config_model = fl_strdup(text);
        } else {
            push(l, concat3(name, "=", text));
        }
    }
    free(name);
    return rc;
}

static int read_config(const char *path, const struct option *opts, const char *const *nargs,
                       fl_cli_args *out, arg_list *l, fl_error *err)
{
    size_t len;
    char *text = fl_read_text_file(path, &len, err);
    if (!text)
        return fl_fail_prefix(err, "--config");
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fl_fail(err, "--config %s: line %d: not valid YAML: %s", path,
                     (int)parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
        yaml_parser_delete(&parser);
        free(text);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = fl_fail(err, "--config %s: line %d: the file must be a mapping of flag names to values",
                     path, root ? (int)root->start_mark.line + 1 : 1);
    } else {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; rc == 0 && p < root->data.mapping.pairs.top;
             p++)
            rc = config_entry(&doc, yaml_document_get_node(&doc, p->key),
                              yaml_document_get_node(&doc, p->value), path, opts, nargs, out, l, err);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    return rc;
}

/* ---- the command line ---- */

int fl_cli_args_prepare(fl_cli_args *out, int argc, char **argv, const struct option *opts,
                        const char *const *nargs, fl_error *err)
{
    memset(out, 0, sizeof *out);
    arg_list cmd = { 0 }, all = { 0 };
    int rc = 0, positional_only = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (positional_only || a[0] != '-' || strcmp(a, "--") == 0 || strcmp(a, "-") == 0) {
            positional_only |= strcmp(a, "--") == 0;
            push(&cmd, fl_strdup(a));
            continue;
        }
        char *s = a[1] == '-' ? dash_name(a) : expand_alias(a);
        if (!s)
            s = fl_strdup(a);
        if (strcmp(s, "--config") == 0 || strncmp(s, "--config=", 9) == 0) {
            const char *path = s[8] == '=' ? s + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path)
                rc = fl_fail(err, "option '--config' needs a value");
            else if (out->config_file)
                rc = fl_fail(err, "--config: given twice ('%s' and '%s')", out->config_file, path);
            else
                out->config_file = fl_strdup(path);
            free(s);
            continue;
        }
        push(&cmd, s);
        if (s[1] == '-' && is_nargs(nargs, s + 2)) { /* `--NAME v1 v2 ...` */
            if (i + 1 < argc)
                push(&cmd, fl_strdup(argv[++i]));
            while (i + 1 < argc && argv[i + 1][0] != '-')
                push(&cmd, concat3(s, FL_CLI_MORE_SUFFIX "=", argv[++i]));
        }
    }
    push(&all, fl_strdup(argv[0]));
    if (rc == 0 && out->config_file)
        rc = read_config(out->config_file, opts, nargs, out, &all, err);
    for (int i = 0; i < cmd.n; i++)
        push(&all, cmd.v[i]);
    free(cmd.v);
    out->argc = all.n;
    out->argv = all.v;
    if (rc != 0)
        fl_cli_args_free(out);
    return rc;
}

void fl_cli_args_free(fl_cli_args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    free((char *)a->config_model);
    free((char *)a->config_file);
    memset(a, 0, sizeof *a);
}
