/* structured.c - structured output's request fields, as the vLLM of
 * tests/fixtures/vllm_request_fields.json reads them, into one constraint
 * (grammar/token_mask.h) on the request's sampling parameters.
 *
 *   structured_outputs   {json, regex, choice, grammar, json_object} (one of
 *                        them) and the options disable_any_whitespace,
 *                        whitespace_pattern, disable_fallback (no fallback
 *                        exists: accepted), disable_additional_properties
 *                        (the guidance backend's: xgrammar's default here
 *                        already); structural_tag is refused
 *   response_format      json_object -> json_object; json_schema ->
 *                        json = json_schema.schema (name required, strict
 *                        accepted: the schema is enforced either way, as
 *                        vLLM does); text -> nothing
 *   guided_json, guided_regex, guided_choice, guided_grammar,
 *   guided_whitespace_pattern
 *                        vLLM 0.11's deprecated spellings, used when
 *                        structured_outputs is not given
 *   guided_decoding_backend
 *                        "auto" or "xgrammar" (whose rules this follows);
 *                        another backend's name is refused
 *
 * Where vLLM would quietly pick one of two constraints (structured_outputs
 * with response_format, or with guided_*) the request is refused. The
 * compiled constraint is cached by its spec (token_mask.h), so requests
 * with one schema share its automaton and masks. */
#include <jansson.h>
#include <string.h>

#include "base/alloc.h"
#include "grammar/token_mask.h"
#include "server/openai.h"

/* The server's vocabulary and cache of constraints, made on first use. */
static fl_constraint_cache *constraints(fl_server *srv)
{
    pthread_mutex_lock(&srv->structured_lock);
    if (!srv->constraints) {
        srv->vocab = fl_malloc(sizeof *srv->vocab);
        fl_token_vocab_init(srv->vocab, srv->tok, srv->vocab_size);
        srv->constraints = fl_malloc(sizeof *srv->constraints);
        fl_constraint_cache_init(srv->constraints, srv->vocab);
    }
    pthread_mutex_unlock(&srv->structured_lock);
    return srv->constraints;
}

void fl_api_structured_free(fl_server *srv)
{
    if (srv->constraints) {
        fl_constraint_cache_free(srv->constraints); /* before the vocabulary it points to */
        free(srv->constraints);
        fl_token_vocab_free(srv->vocab);
        free(srv->vocab);
    }
    srv->constraints = NULL;
    srv->vocab = NULL;
}

/* What the fields ask for, before it is compiled. */
typedef struct wanted {
    const char *field;          /* the field that gave the constraint, for messages */
    fl_grammar_kind kind;
    int set;
    json_t *json;               /* the schema (a string or an object), kept */
    const char *text;
    size_t len;
    json_t *choice;
    int any_whitespace;
    const char *whitespace_pattern;
    const char *ws_field;
} wanted;

static int is_set(json_t *v)
{
    return v && !json_is_null(v);
}

static int set_constraint(wanted *w, const char *field, fl_grammar_kind kind, fl_api_error *err)
{
    if (w->set)
        return fl_api_fail(err, 400, field, "'%s' and '%s' both constrain the output: give one (vLLM allows one "
                           "kind of structured output constraint)", w->field, field);
    w->set = 1;
    w->field = field;
    w->kind = kind;
    return 0;
}

static int want_string(wanted *w, json_t *v, const char *field, fl_grammar_kind kind, fl_api_error *err)
{
    if (!json_is_string(v))
        return fl_api_fail(err, 400, field, "'%s' must be a string", field);
    if (set_constraint(w, field, kind, err) != 0)
        return -1;
    w->text = json_string_value(v);
    w->len = json_string_length(v);
    return 0;
}

static int want_schema(wanted *w, json_t *v, const char *field, fl_api_error *err)
{
    if (!json_is_string(v) && !json_is_object(v) && !json_is_boolean(v))
        return fl_api_fail(err, 400, field, "'%s' must be a JSON schema (an object, or one as a string)", field);
    if (set_constraint(w, field, FL_GRAMMAR_JSON_SCHEMA, err) != 0)
        return -1;
    w->json = v;
    return 0;
}

static int want_choice(wanted *w, json_t *v, const char *field, fl_api_error *err)
{
    size_t i;
    json_t *c;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fl_api_fail(err, 400, field, "'%s' must be a non-empty list of strings", field);
    json_array_foreach(v, i, c)
        if (!json_is_string(c))
            return fl_api_fail(err, 400, field, "'%s'[%zu] is not a string", field, i);
    if (set_constraint(w, field, FL_GRAMMAR_CHOICE, err) != 0)
        return -1;
    w->choice = v;
    return 0;
}

static int want_ws(wanted *w, json_t *v, const char *field, fl_api_error *err)
{
    if (!is_set(v))
        return 0;
    if (!json_is_string(v))
        return fl_api_fail(err, 400, field, "'%s' must be a string (a regex)", field);
    w->whitespace_pattern = json_string_value(v);
    w->ws_field = field;
    return 0;
}

static int get_flag(json_t *obj, const char *key, const char *field, int *out, fl_api_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!is_set(v))
        return 0;
    if (!json_is_boolean(v))
        return fl_api_fail(err, 400, field, "'%s'.%s must be true or false", field, key);
    *out = json_is_true(v);
    return 0;
}

static int read_structured_outputs(wanted *w, json_t *so, fl_api_error *err)
{
    static const char f[] = "structured_outputs";
    if (!json_is_object(so))
        return fl_api_fail(err, 400, f, "'structured_outputs' must be an object");
    static const char *const known[] = { "json", "regex", "choice", "grammar", "json_object", "structural_tag",
                                         "disable_fallback", "disable_any_whitespace",
                                         "disable_additional_properties", "whitespace_pattern" };
    const char *key;
    json_t *v;
    json_object_foreach(so, key, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(key, known[i]) != 0)
            i++;
        if (i == sizeof known / sizeof known[0])
            return fl_api_fail(err, 400, f, "'structured_outputs'.%s is not a field of vLLM's "
                               "StructuredOutputsParams", key);
    }
    if (is_set(json_object_get(so, "structural_tag")))
        return fl_api_fail(err, 400, f, "'structured_outputs'.structural_tag: structural tags are not "
                           "implemented yet");
    if ((is_set(json_object_get(so, "json")) && want_schema(w, json_object_get(so, "json"), f, err)) ||
        (is_set(json_object_get(so, "regex")) && want_string(w, json_object_get(so, "regex"), f, FL_GRAMMAR_REGEX, err)) ||
        (is_set(json_object_get(so, "choice")) && want_choice(w, json_object_get(so, "choice"), f, err)) ||
        (is_set(json_object_get(so, "grammar")) && want_string(w, json_object_get(so, "grammar"), f, FL_GRAMMAR_EBNF, err)))
        return -1;
    int json_object = 0, flag = 0, no_ws = 0;
    if (get_flag(so, "json_object", f, &json_object, err) || get_flag(so, "disable_fallback", f, &flag, err) ||
        get_flag(so, "disable_additional_properties", f, &flag, err) ||
        get_flag(so, "disable_any_whitespace", f, &no_ws, err))
        return -1;
    if (is_set(json_object_get(so, "json_object"))) {
        if (!json_object) /* vLLM would constrain to an object anyway (any value counts as set) */
            return fl_api_fail(err, 400, f, "'structured_outputs'.json_object must be true (false asks for nothing)");
        if (set_constraint(w, f, FL_GRAMMAR_JSON_OBJECT, err) != 0)
            return -1;
    }
    w->any_whitespace = !no_ws;
    return want_ws(w, json_object_get(so, "whitespace_pattern"), f, err);
}

static int read_response_format(wanted *w, json_t *rf, fl_api_error *err)
{
    static const char f[] = "response_format";
    json_t *type = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
    if (!json_is_string(type))
        return fl_api_fail(err, 400, f, "'response_format' must be an object with a 'type'");
    const char *t = json_string_value(type);
    if (strcmp(t, "text") == 0)
        return 0;
    if (strcmp(t, "json_object") == 0)
        return set_constraint(w, f, FL_GRAMMAR_JSON_OBJECT, err);
    if (strcmp(t, "structural_tag") == 0)
        return fl_api_fail(err, 400, f, "'response_format' of type 'structural_tag': structural tags are not "
                           "implemented yet");
    if (strcmp(t, "json_schema") != 0)
        return fl_api_fail(err, 400, f, "'response_format'.type must be text, json_object, json_schema or "
                           "structural_tag");
    json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js))
        return fl_api_fail(err, 400, f, "'response_format' of type 'json_schema' needs a 'json_schema' object");
    json_t *name = json_object_get(js, "name"), *strict = json_object_get(js, "strict");
    if (!json_is_string(name))
        return fl_api_fail(err, 400, f, "'response_format'.json_schema.name is required (a string)");
    if (is_set(strict) && !json_is_boolean(strict))
        return fl_api_fail(err, 400, f, "'response_format'.json_schema.strict must be true or false");
    json_t *schema = json_object_get(js, "schema");
    if (!is_set(schema))
        return fl_api_fail(err, 400, f, "'response_format'.json_schema.schema is required");
    return want_schema(w, schema, f, err);
}

static int read_guided(wanted *w, json_t *body, fl_api_error *err)
{
    json_t *v;
    if ((is_set(v = json_object_get(body, "guided_json")) && want_schema(w, v, "guided_json", err)) ||
        (is_set(v = json_object_get(body, "guided_regex")) && want_string(w, v, "guided_regex", FL_GRAMMAR_REGEX, err)) ||
        (is_set(v = json_object_get(body, "guided_choice")) && want_choice(w, v, "guided_choice", err)) ||
        (is_set(v = json_object_get(body, "guided_grammar")) && want_string(w, v, "guided_grammar", FL_GRAMMAR_EBNF, err)))
        return -1;
    return want_ws(w, json_object_get(body, "guided_whitespace_pattern"), "guided_whitespace_pattern", err);
}

static int has_guided(json_t *body)
{
    static const char *const fields[] = { "guided_json", "guided_regex", "guided_choice", "guided_grammar",
                                          "guided_whitespace_pattern" };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (is_set(json_object_get(body, fields[i])))
            return 1;
    return 0;
}

int fl_api_structured_output(fl_server *srv, json_t *body, fl_sampling_params *sp, fl_api_error *err)
{
    wanted w = { .any_whitespace = 1 };
    json_t *backend = json_object_get(body, "guided_decoding_backend");
    if (is_set(backend)) {
        const char *b = json_string_value(backend);
        if (!b || (strcmp(b, "auto") != 0 && strcmp(b, "xgrammar") != 0))
            return fl_api_fail(err, 400, "guided_decoding_backend", "'guided_decoding_backend': flashlm has one "
                               "grammar engine, which follows xgrammar's rules: only \"auto\" or \"xgrammar\"");
    }
    json_t *so = json_object_get(body, "structured_outputs");
    if (is_set(so)) {
        if (has_guided(body))
            return fl_api_fail(err, 400, "structured_outputs", "'structured_outputs' with the deprecated guided_* "
                               "fields: give one of them (vLLM would drop the guided_* fields)");
        if (read_structured_outputs(&w, so, err) != 0)
            return -1;
    } else if (read_guided(&w, body, err) != 0) {
        return -1;
    }
    json_t *rf = json_object_get(body, "response_format");
    if (is_set(rf) && read_response_format(&w, rf, err) != 0)
        return -1;
    if (!w.set) {
        if (w.whitespace_pattern)
            return fl_api_fail(err, 400, w.ws_field, "'%s' without a JSON constraint has nothing to apply to",
                               w.ws_field);
        return 0;
    }
    const int json_kind = w.kind == FL_GRAMMAR_JSON_SCHEMA || w.kind == FL_GRAMMAR_JSON_OBJECT;
    if (w.whitespace_pattern && (!json_kind || !w.any_whitespace))
        return fl_api_fail(err, 400, w.ws_field, !json_kind ? "'%s' applies to JSON constraints only"
                                                            : "'%s' with disable_any_whitespace: give one",
                           w.ws_field);
    fl_grammar_spec spec = { .kind = w.kind, .text = w.text, .len = w.len, .any_whitespace = w.any_whitespace,
                             .whitespace_pattern = w.whitespace_pattern };
    char *schema_text = NULL;
    const char **choices = NULL;
    size_t *lens = NULL;
    if (w.json && json_is_string(w.json)) {
        spec.text = json_string_value(w.json);
        spec.len = json_string_length(w.json);
    } else if (w.json) {
        schema_text = json_dumps(w.json, JSON_COMPACT | JSON_ENCODE_ANY);
        spec.text = schema_text;
        spec.len = schema_text ? strlen(schema_text) : 0;
    }
    if (w.choice) {
        spec.num_choices = (int)json_array_size(w.choice);
        choices = fl_malloc((size_t)spec.num_choices * sizeof *choices);
        lens = fl_malloc((size_t)spec.num_choices * sizeof *lens);
        for (int i = 0; i < spec.num_choices; i++) {
            choices[i] = json_string_value(json_array_get(w.choice, (size_t)i));
            lens[i] = json_string_length(json_array_get(w.choice, (size_t)i));
        }
        spec.choices = choices;
        spec.choice_lens = lens;
    }
    fl_error gerr;
    sp->constraint = fl_constraint_cache_get(constraints(srv), &spec, &gerr);
    free(schema_text), free(choices), free(lens);
    if (!sp->constraint)
        return fl_api_fail(err, 400, w.field, "'%s': %s", w.field, gerr.msg);
    return 0;
}
